import random


def random_walk_solver(formula, max_iter, p):
    n = max(abs(lit) for clause in formula for lit in clause)
    assignment = [False] * (n + 1)

    for _ in range(max_iter):
        unsatisfied = [
            clause
            for clause in formula
            if not any(assignment[abs(lit)] == (lit > 0) for lit in clause)
        ]
        if not unsatisfied:
            return assignment

        clause = random.choice(unsatisfied)
        if random.random() < p:
            lit = random.choice(clause)
        else:
            # Greedy choice, as in the paper's seed solution.
            lit = min(
                clause,
                key=lambda candidate: sum(
                    assignment[abs(candidate)] == (candidate > 0)
                    for other in formula
                    if candidate in other
                ),
            )
        assignment[abs(lit)] = not assignment[abs(lit)]

    return None


def algorithm(formula):
    return random_walk_solver(formula, max_iter=1000, p=0.4)
