from helpers import extract_code


def improve_algorithm(initial_solution, utility, language_model):
    """Hill climbing that varies the sampling temperature from call to call.

    Early calls sample hot (diverse, exploratory rewrites), later calls sample
    cold (careful refinements of the best solution so far). The initial
    solution is scored first, so the result is never worse than it.
    """
    expertise = "You are an expert programmer who improves algorithms step by step."
    calls_left = language_model.budget
    evaluations_left = utility.budget
    scores: dict[str, float] = {}

    def evaluate(solution):
        nonlocal evaluations_left
        if solution in scores:
            return scores[solution]
        if evaluations_left <= 0:
            return None
        evaluations_left -= 1
        try:
            scores[solution] = float(utility(solution))
        except Exception:
            scores[solution] = 0.0
        return scores[solution]

    best_solution = initial_solution
    best_score = evaluate(initial_solution)
    if best_score is None:
        return initial_solution
    temperatures = [1.1, 0.9, 0.7, 0.5, 0.3]
    round_index = 0
    while calls_left > 0 and evaluations_left > 0:
        temperature = temperatures[min(round_index, len(temperatures) - 1)]
        round_index += 1
        message = f"""Improve this solution (current score: {best_score:.4f}):
```python
{best_solution}
```

Score function:
```python
{utility.str}
```

Propose one concrete idea that should raise the score, then give the complete code."""
        n_responses = max(1, min(language_model.max_responses_per_call, evaluations_left))
        calls_left -= 1
        try:
            responses = language_model.prompt(
                expertise, message, n_responses=n_responses, temperature=temperature
            )
        except Exception:
            continue
        for candidate in extract_code(list(responses)):
            if not candidate:
                continue
            score = evaluate(candidate)
            if score is not None and score > best_score:
                best_solution, best_score = candidate, score
    return best_solution
