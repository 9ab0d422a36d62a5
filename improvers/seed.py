from helpers import extract_code


def improve_algorithm(initial_solution, utility, language_model):
    """Improve a solution by sampling rewrites and keeping the best one.

    One batch of min(max_responses_per_call, utility.budget) samples of the same
    prompt at temperature 0.7; each answer's code is scored by the utility and
    the highest-scoring candidate is returned.
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
    n_messages = min(language_model.max_responses_per_call, utility.budget)
    try:
        responses = language_model.batch_prompt(expertise, [message] * n_messages, temperature=0.7)
    except Exception:  # e.g. the model is unavailable: keep what we have
        return initial_solution
    new_solutions = [code for code in extract_code(responses) if code]
    if not new_solutions:
        return initial_solution

    def score(solution):
        try:
            return utility(solution)
        except Exception:
            return float("-inf")

    best_solution = max(new_solutions, key=score)
    return best_solution
