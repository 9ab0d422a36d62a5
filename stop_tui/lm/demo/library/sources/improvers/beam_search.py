from helpers import extract_code


def improve_algorithm(initial_solution, utility, language_model):
    """Beam search over rewrites.

    Keeps the `beam_width` best solutions found so far; each round asks for
    rewrites of every beam member (splitting the responses of one call among
    them) and keeps the best of old and new. Returns the best solution seen,
    never worse than the initial one.
    """
    expertise = "You are an expert computer science researcher, skilled at optimizing algorithms."
    beam_width = 2
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

    def make_message(solution, score):
        return f"""Improve this solution, which currently scores {score:.4f}:
```python
{solution}
```

Score function:
```python
{utility.str}
```

Describe the idea in one sentence, then give the complete improved code."""

    if evaluate(initial_solution) is None:
        return initial_solution
    beam = [initial_solution]
    while calls_left > 0 and evaluations_left > 0:
        n_messages = min(language_model.max_responses_per_call, evaluations_left)
        messages = [
            make_message(beam[i % len(beam)], scores[beam[i % len(beam)]])
            for i in range(n_messages)
        ]
        calls_left -= 1
        try:
            responses = language_model.batch_prompt(expertise, messages, temperature=0.8)
        except Exception:
            continue
        for candidate in extract_code(list(responses)):
            if candidate:
                evaluate(candidate)
        pool = [s for s in scores if scores[s] is not None]
        beam = sorted(pool, key=lambda s: scores[s], reverse=True)[:beam_width]
    return max(scores, key=lambda s: scores[s])
