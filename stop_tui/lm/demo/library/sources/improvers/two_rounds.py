from helpers import extract_code


def improve_algorithm(initial_solution, utility, language_model):
    """Two rounds of the seed's batch: the second round improves the best of the first.

    Uses two of the allowed language-model calls. The initial solution is scored
    too, so the result is never worse than it.
    """
    expertise = (
        "You are an expert computer scientist and programmer, especially good at "
        "designing and optimizing algorithms."
    )
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
    for _ in range(2):
        if calls_left <= 0 or evaluations_left <= 0:
            break
        message = f"""Here is a solution to improve:
```python
{best}
```

It is scored by this utility function:
```python
{utility.str}
```

Return an improved solution. First propose an idea, then implement it in full."""
        n_messages = min(language_model.max_responses_per_call, evaluations_left)
        calls_left -= 1
        try:
            responses = language_model.batch_prompt(
                expertise, [message] * n_messages, temperature=0.7
            )
        except Exception:
            continue
        for candidate in extract_code(list(responses)):
            if not candidate or evaluations_left <= 0:
                continue
            score = evaluate(candidate)
            if score > best_score:
                best, best_score = candidate, score
    return best
