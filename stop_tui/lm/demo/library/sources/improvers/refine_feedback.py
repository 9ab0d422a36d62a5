from helpers import extract_code


def improve_algorithm(initial_solution, utility, language_model):
    """Iterative refinement: show the model its last attempts and their scores.

    Each round sends the best solution with its score, plus the scores of the
    previous round's attempts, so the model learns what did not work. Only
    improvements replace the best solution.
    """
    expertise = "You are a meticulous algorithm engineer who learns from measured feedback."
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
    best_solution, best_score = initial_solution, evaluate(initial_solution)
    feedback = "This is the first round."
    while calls_left > 0 and evaluations_left > 0:
        per_call = max(1, min(language_model.max_responses_per_call, evaluations_left, 3))
        message = f"""Current best solution (score {best_score:.4f}):
```python
{best_solution}
```

Score function:
```python
{utility.str}
```

Feedback from the previous round: {feedback}
Explain briefly what limits the current score, then write an improved complete solution."""
        calls_left -= 1
        try:
            responses = language_model.prompt(
                expertise, message, n_responses=per_call, temperature=0.7
            )
        except Exception:
            continue
        notes = []
        for candidate in extract_code(list(responses)):
            if not candidate or evaluations_left <= 0:
                continue
            score = evaluate(candidate)
            notes.append(f"{score:.4f}")
            if score > best_score:
                best_solution, best_score = candidate, score
        if notes:
            feedback = (
                f"your attempts scored {', '.join(notes)} against a best of {best_score:.4f}; "
                "try a different approach if none improved."
            )
        else:
            feedback = "no attempt contained a usable code block; answer with one ```python block."
    return best_solution
