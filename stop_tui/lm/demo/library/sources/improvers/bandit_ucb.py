import math

from helpers import extract_code


def improve_algorithm(initial_solution, utility, language_model):
    """A multi-armed bandit over prompt styles, chosen by upper confidence bound.

    Each arm is a different hint ("different algorithm", "faster", "handle edge
    cases", ...). A response's reward is how much it beats the best score so
    far (0 if it does not). Every call fills its responses with the arms of
    highest UCB value, and the best solution seen is returned.
    """
    expertise = "You are an expert programmer and researcher."
    hints = [
        "Replace the core approach with a fundamentally better algorithm.",
        "Keep the approach but make it much faster, so it can do more work in the time limit.",
        "Look for inputs where it fails or scores badly and handle them.",
        "Use vectorised numpy operations instead of Python loops where possible.",
        "Add a cheap local search or repair step after the main computation.",
    ]
    pulls = [0] * len(hints)
    rewards = [0.0] * len(hints)
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
        total = sum(pulls) + 1

        def ucb(arm, total=total):
            if pulls[arm] == 0:
                return float("inf")
            return rewards[arm] / pulls[arm] + math.sqrt(2 * math.log(total) / pulls[arm])

        n_messages = min(language_model.max_responses_per_call, evaluations_left)
        arms = sorted(range(len(hints)), key=ucb, reverse=True)
        chosen = [arms[i % len(arms)] for i in range(n_messages)]
        messages = [
            f"""Improve this solution (score {best_score:.4f}):
```python
{best}
```

Score function:
```python
{utility.str}
```

Hint: {hints[arm]}
Give the complete improved code."""
            for arm in chosen
        ]
        calls_left -= 1
        try:
            responses = language_model.batch_prompt(expertise, messages, temperature=0.7)
        except Exception:
            continue
        baseline = best_score
        for arm, candidate in zip(chosen, extract_code(list(responses)), strict=False):
            pulls[arm] += 1
            if not candidate or evaluations_left <= 0:
                continue
            score = evaluate(candidate)
            rewards[arm] += max(0.0, score - baseline)
            if score > best_score:
                best, best_score = candidate, score
    return best
