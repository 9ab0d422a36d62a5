from helpers import extract_code


def improve_algorithm(initial_solution, utility, language_model):
    """The seed's prompt, sampled with every allowed call; keep the best answer.

    Spends the whole language-model budget on independent samples of the same
    request (no feedback between calls), scores each answer and the initial
    solution, and returns the best.
    """
    expertise = (
        "You are an expert computer scientist and programmer, especially good at "
        "designing and optimizing algorithms."
    )
    message = f"""Here is a solution to improve:
```python
{initial_solution}
```

It is scored by this utility function:
```python
{utility.str}
```

Return an improved solution. Be as creative as the constraints allow: the main change
must be new and non-trivial. First propose an idea, then implement it in full."""
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
