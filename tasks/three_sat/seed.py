import random


def random_walk_solver(formula, max_iter, p):
    n = max(abs(lit) for clause in formula for lit in clause)
    assignment = [False] * (n + 1)

    for _ in range(max_iter):
        unsatisfied = [
            clause for clause in formula
            if not any(assignment[abs(lit)] == (lit > 0) for lit in clause)
        ]
        if not unsatisfied:
            return assignment

        clause = random.choice(unsatisfied)
        if random.random() < p:
            lit = random.choice(clause)
        else:
            # Flip the literal that appears in the fewest clauses it satisfies.
            lit = min(
                clause,
                key=lambda l: sum(
                    assignment[abs(l)] == (l > 0) for other in formula if l in other
                ),
            )
        assignment[abs(lit)] = not assignment[abs(lit)]

    return None


def algorithm(formula):
    return random_walk_solver(formula, max_iter=1000, p=0.4)
