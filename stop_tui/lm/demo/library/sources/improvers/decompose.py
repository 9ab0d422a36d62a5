import re

from helpers import extract_code


def improve_algorithm(initial_solution, utility, language_model):
    """Decompose the solution into its functions and improve them one at a time.

    Finds the top-level functions of the best solution and asks, in one
    batch, for a rewrite that focuses on each part (keeping the others). The
    best result becomes the base for the next round. Never worse than the
    initial solution.
    """
    expertise = "You are an expert software engineer who improves programs part by part."
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
    best, best_score = initial_solution, evaluate(initial_solution)
    while calls_left > 0 and evaluations_left > 0:
        parts = re.findall(r"^def (\w+)\s*\(", best, flags=re.MULTILINE) or ["the whole program"]
        parts.append("the overall strategy")
        n_messages = min(language_model.max_responses_per_call, evaluations_left)
        messages = []
        for i in range(n_messages):
            part = parts[i % len(parts)]
            messages.append(f"""This program is scored by the function below.
```python
{best}
```

Score function:
```python
{utility.str}
```

Focus only on {part}: rewrite it to raise the score and keep the rest working.
Return the complete program in one code block.""")
        calls_left -= 1
        try:
            responses = language_model.batch_prompt(expertise, messages, temperature=0.7)
        except Exception:
            continue
        for candidate in extract_code(list(responses)):
            if not candidate or evaluations_left <= 0:
                continue
            score = evaluate(candidate)
            if score > best_score:
                best, best_score = candidate, score
    return best
