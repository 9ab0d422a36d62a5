import math
import random

from helpers import extract_code


def improve_algorithm(initial_solution, utility, language_model):
    """Simulated annealing over solutions, with the model proposing the moves.

    Each call proposes rewrites of the current solution. A better proposal is
    always accepted; a worse one with probability exp(delta / temperature), so
    early on the search can leave a local optimum. The temperature decreases
    each round. The best solution seen is returned.
    """
    expertise = "You are an expert algorithm designer."
    rng = random.Random(0)
    calls_left = language_model.budget
    evaluations_left = utility.budget

    def evaluate(solution):
        nonlocal evaluations_left
        evaluations_left -= 1
        try:
            return float(utility(solution))
        except Exception:
            return 0.0

    if evaluations_left <= 0:
        return initial_solution
    current, current_score = initial_solution, evaluate(initial_solution)
    best, best_score = current, current_score
    temperature = 0.05
    while calls_left > 0 and evaluations_left > 0:
        n_responses = max(1, min(language_model.max_responses_per_call, evaluations_left, 3))
        message = f"""Propose a modified version of this solution:
```python
{current}
```

Score function:
```python
{utility.str}
```

Make one substantial change that could raise the score. Give the complete code."""
        calls_left -= 1
        try:
            responses = language_model.prompt(
                expertise, message, n_responses=n_responses, temperature=0.9
            )
        except Exception:
            continue
        for candidate in extract_code(list(responses)):
            if not candidate or evaluations_left <= 0:
                continue
            score = evaluate(candidate)
            if score > best_score:
                best, best_score = candidate, score
            delta = score - current_score
            if delta >= 0 or rng.random() < math.exp(delta / max(temperature, 1e-9)):
                current, current_score = candidate, score
        temperature *= 0.5
    return best
