"""The task loader: folder contract, validation errors, instances, score guards."""

from __future__ import annotations

import ast
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from stop_tui.errors import UserError
from stop_tui.paths import tasks_dir
from stop_tui.tasks import EvaluatorError, Malformed, get_task, list_tasks
from stop_tui.tasks.registry import load_task
from tests.support.paper_tasks import PAPER_TASKS

EXPECTED = set(PAPER_TASKS)


def test_the_six_tasks_are_listed_with_their_contract_fields() -> None:
    tasks = list_tasks()
    assert {task.name for task in tasks} == EXPECTED
    for task in tasks:
        assert task.entry_point == "algorithm"
        assert task.splits["val"].count == 20 and task.splits["test"].count == 50
        assert task.splits["val"].seed != task.splits["test"].seed
        assert 0 < task.time_limit <= 1
        assert task.folder == tasks_dir().resolve() / task.name
        assert task.description and "\n" not in task.description


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_seed_defines_the_entry_point_and_utility_states_the_rules(name: str) -> None:
    task = get_task(name)
    tree = ast.parse(task.seed_solution)
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert task.entry_point in functions
    text = task.public_utility
    assert f"def {task.entry_point}(" in text
    assert f"seconds={task.time_limit:g}" in text  # the limit the evaluator really applies
    assert f"n_instances = {task.splits['val'].count}" in text
    for split in task.splits.values():  # hidden seeds never reach the LM
        assert str(split.seed) not in text


def test_unknown_task_is_a_user_error_naming_the_choices() -> None:
    with pytest.raises(UserError) as info:
        get_task("parity")
    line = info.value.line()
    assert "unknown task 'parity'" in line
    for name in EXPECTED:
        assert name in line


def test_unknown_split_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"no split 'train'.*val, test"):
        get_task("parity_noise").instances("train")


def test_evaluator_is_loaded_by_path_and_never_registered_as_a_module() -> None:
    task = get_task("parity_noise")
    task.instances("val")
    evaluator = task._evaluator()
    assert evaluator.__name__ == "stop_tui_hidden_parity_noise"
    assert Path(evaluator.__file__ or "") == task.folder / "evaluator.py"
    for module in list(sys.modules.values()):
        assert Path(getattr(module, "__file__", None) or "x").name != "evaluator.py"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_instances_are_deterministic_and_splits_differ(name: str) -> None:
    task = get_task(name)
    fresh = load_task(task.folder)  # a second loader with its own cache regenerates
    first, again = task.instances("val"), fresh.instances("val")
    assert len(first) == 20
    assert _same(first, again)
    test = task.instances("test")
    assert len(test) == 50
    assert not _same(first, test[:20])
    # Instances within a split differ from one another.
    assert not _same(first[:1], first[1:2])


def test_instances_are_fresh_copies() -> None:
    task = get_task("maxcut")
    args, _hidden = task.instances("val")[0]
    args[0][:] = 0.0
    assert task.instances("val")[0][0][0].sum() > 0


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.shape == b.shape
            and bool(np.array_equal(a, b))
        )
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


# -- broken task folders --------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(tasks_dir() / "str_grid_dist", tmp_path / "str_grid_dist")
    return tmp_path


def _edit_toml(root: Path, old: str, new: str) -> None:
    path = root / "str_grid_dist" / "task.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_copied_task_loads(root: Path) -> None:
    assert [task.name for task in list_tasks(root)] == ["str_grid_dist"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('title = "', "title = ", "invalid TOML"),
        ("time_limit = 0.1", "time_limit = -1", "time_limit must be a positive number"),
        ("time_limit = 0.1", 'time_limit = "fast"', "time_limit must be a positive number"),
        ('name = "str_grid_dist"', 'name = "other"', "does not match the folder name"),
        ('entry_point = "algorithm"', 'entry_point = "not valid"', "not a Python identifier"),
        ('title = "String grid distance"', 'title = ""', "title must be a non-empty string"),
        ("[splits.test]", "[splits.other]", r"missing \[splits.test\]"),
        ("count = 20", "count = 0", r"\[splits.val\] count must be a positive integer"),
        ("seed = 5678", "seed = 4321", "own seed"),
        ("seed = 4321", "seed = 4321\nsize = 3", r"\[splits.val\] has unknown keys: size"),
        ('name = "', 'colour = "blue"\nname = "', "unknown keys: colour"),
    ],
)
def test_broken_task_toml_is_a_clear_user_error(
    root: Path, old: str, new: str, message: str
) -> None:
    _edit_toml(root, old, new)
    with pytest.raises(UserError, match=message) as info:
        list_tasks(root)
    assert "task.toml" in info.value.line()


def test_missing_file_is_a_clear_user_error(root: Path) -> None:
    (root / "str_grid_dist" / "utility.txt").unlink()
    with pytest.raises(UserError, match=r"str_grid_dist: missing utility\.txt"):
        get_task("str_grid_dist", root)


def _write_evaluator(root: Path, body: str) -> None:
    (root / "str_grid_dist" / "evaluator.py").write_text(body)


def test_evaluator_without_score_is_an_evaluator_error(root: Path) -> None:
    _write_evaluator(root, "def generate(rng):\n    return [1], None\n")
    with pytest.raises(EvaluatorError, match="does not define score"):
        get_task("str_grid_dist", root).instances("val")


def test_evaluator_that_fails_to_import_is_an_evaluator_error(root: Path) -> None:
    _write_evaluator(root, "import no_such_module_here\n")
    with pytest.raises(EvaluatorError, match=r"failed to load.*no_such_module_here"):
        get_task("str_grid_dist", root).instances("val")


def test_generate_must_return_args_and_hidden(root: Path) -> None:
    _write_evaluator(
        root, "def generate(rng):\n    return 3\ndef score(a, h, o):\n    return 0.0\n"
    )
    with pytest.raises(EvaluatorError, match=r"must return \(args: list, hidden\)"):
        get_task("str_grid_dist", root).instances("val")


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ("1.5", "outside"),
        ("-0.25", "outside"),
        ("float('nan')", "outside"),
        ("True", "returned bool"),
        ("'1.0'", "returned str"),
        ("1 / 0", "crashed while scoring.*ZeroDivisionError"),
    ],
)
def test_score_guard_rejects_bad_evaluator_results(root: Path, returned: str, message: str) -> None:
    _write_evaluator(
        root,
        f"def generate(rng):\n    return [1], None\ndef score(a, h, o):\n    return {returned}\n",
    )
    task = get_task("str_grid_dist", root)
    args, hidden = task.instances("val")[0]
    with pytest.raises(EvaluatorError, match=message):
        task.score(args, hidden, "A")


def test_score_passes_malformed_through_and_returns_floats(root: Path) -> None:
    _write_evaluator(
        root,
        "from stop_tui.tasks import Malformed\n"
        "import numpy as np\n"
        "def generate(rng):\n    return [1], None\n"
        "def score(a, h, o):\n"
        "    if o is None:\n        raise Malformed('nothing')\n"
        "    return np.float32(0.5)\n",
    )
    task = get_task("str_grid_dist", root)
    with pytest.raises(Malformed, match="nothing"):
        task.score([1], None, None)
    value = task.score([1], None, "x")
    assert value == 0.5 and type(value) is float


def test_parity_tasks_do_not_share_hidden_subsets() -> None:
    noisy = get_task("parity_noise").instances("val")
    clean = get_task("parity_noiseless").instances("val")
    assert not all(
        np.array_equal(a[1]["subset"], b[1]["subset"]) and np.array_equal(a[0][0], b[0][0])
        for a, b in zip(noisy, clean, strict=True)
    )
