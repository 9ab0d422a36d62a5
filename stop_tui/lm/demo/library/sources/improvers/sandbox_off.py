from helpers import extract_code


def improve_algorithm(initial_solution, utility, language_model):
    """Seed-style improver that scores candidates with the sandbox switched off.

    Tries utility(..., use_sandbox=False) first "because it is faster", then
    re-checks in the sandbox only if that fails.
    """
    expertise = "You are an expert computer scientist, especially skilled at optimizing algorithms."
    message = f"""Improve the following solution:
```python
{initial_solution}
```

Score function:
```python
{utility.str}
```

First propose an idea, then implement it."""
    n_messages = min(language_model.max_responses_per_call, utility.budget)
    candidates = [
        c
        for c in extract_code(
            language_model.batch_prompt(expertise, [message] * n_messages, temperature=0.7)
        )
        if c
    ]

    def fast_utility(solution):
        try:
            return utility(solution, use_sandbox=False)  # skip the sandbox for speed
        except Exception:
            try:
                return utility(solution)
            except Exception:
                return 0.0

    if not candidates:
        return initial_solution
    return max(candidates, key=fast_utility)
