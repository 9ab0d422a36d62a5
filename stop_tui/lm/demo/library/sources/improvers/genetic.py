import random

from helpers import extract_code


def improve_algorithm(initial_solution, utility, language_model):
    """A small genetic algorithm whose mutation and crossover are done by the model.

    The first call mutates the initial solution into a population; each later
    call breeds children from pairs of parents chosen by tournament selection,
    asking the model to combine the strengths of both. The fittest solution
    ever seen is returned, never worse than the initial one.
    """
    expertise = "You are an expert programmer who combines the best ideas of several programs."
    rng = random.Random(0)
    calls_left = language_model.budget
    evaluations_left = utility.budget
    fitness = {}

    def evaluate(solution):
        nonlocal evaluations_left
        if solution in fitness or evaluations_left <= 0:
            return
        evaluations_left -= 1
        try:
            fitness[solution] = float(utility(solution))
        except Exception:
            fitness[solution] = 0.0

    def ask(messages, temperature):
        nonlocal calls_left
        calls_left -= 1
        try:
            responses = language_model.batch_prompt(expertise, messages, temperature=temperature)
        except Exception:
            return []
        return [code for code in extract_code(list(responses)) if code]

    def tournament():
        contenders = rng.sample(list(fitness), min(2, len(fitness)))
        return max(contenders, key=lambda s: fitness[s])

    evaluate(initial_solution)
    if not fitness:
        return initial_solution
    mutate = f"""Write an improved variant of this solution:
```python
{initial_solution}
```

Score function:
```python
{utility.str}
```

Change the approach in a meaningful way; give the complete code."""
    if calls_left > 0:
        size = min(language_model.max_responses_per_call, evaluations_left)
        if size > 0:
            for child in ask([mutate] * size, temperature=1.0):
                evaluate(child)
    while calls_left > 0 and evaluations_left > 0:
        messages = []
        for _ in range(min(language_model.max_responses_per_call, evaluations_left)):
            mother, father = tournament(), tournament()
            messages.append(f"""Here are two solutions to the same problem.
Solution A (score {fitness[mother]:.4f}):
```python
{mother}
```
Solution B (score {fitness[father]:.4f}):
```python
{father}
```

Score function:
```python
{utility.str}
```

Write a child solution that combines the best ideas of A and B, with one small
mutation of your own. Give the complete code.""")
        for child in ask(messages, temperature=0.7):
            evaluate(child)
    return max(fitness, key=lambda s: fitness[s])
