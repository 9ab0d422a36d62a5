"""The meta-utility's public text: what an improver sees as ``utility.str``
when it is improving an improver (as in the paper, the LM reads a utility
function, not the hidden evaluator). It states the real limits of the run."""

from __future__ import annotations

META_UTILITY_TEMPLATE = '''\
from algorithm import algorithm_str            # the {task} task's seed solution
from task_utility import utility               # the {task} task's utility (see below)
from language_model import LanguageModel

def meta_utility(improve_str: str):
    """
    Evaluates the improver defined in improve_str (a function
    improve_algorithm(initial_solution, utility, language_model)) by using it to
    improve algorithm_str, the seed solution of a downstream task, and scoring the
    result with that task's utility on held-out instances. Returns a number in [0, 1].
    This meta-utility function can only be called {meta_utility_budget} times.
    """
    n_tests = {meta_utility_tests}
    expected_utility = 0
    for _ in range(n_tests):
        exec(improve_str, globals())  # defines improve_algorithm (runs in an isolated sandbox)
        # A fresh budget for every test: at most {lm_budget} calls to the language model,
        # at most {max_responses_per_call} responses per call, at most {utility_budget} calls to utility.
        language_model = LanguageModel(budget={lm_budget}, max_responses_per_call={max_responses_per_call})
        utility.budget = {utility_budget}
        improved_algorithm_str = improve_algorithm(algorithm_str, utility, language_model)
        expected_utility += utility(improved_algorithm_str) / n_tests
    return expected_utility

# The downstream utility, {task}:
{task_utility}
'''


def meta_utility_text(
    *,
    task: str,
    task_utility: str,
    meta_utility_budget: int,
    meta_utility_tests: int,
    lm_budget: int,
    max_responses_per_call: int,
    utility_budget: int,
) -> str:
    indented = "\n".join(f"# {line}" if line else "#" for line in task_utility.splitlines())
    return META_UTILITY_TEMPLATE.format(
        task=task,
        task_utility=indented,
        meta_utility_budget=meta_utility_budget,
        meta_utility_tests=meta_utility_tests,
        lm_budget=lm_budget,
        max_responses_per_call=max_responses_per_call,
        utility_budget=utility_budget,
    )
