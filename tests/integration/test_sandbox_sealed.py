"""The sealed sandbox, attacked from each way stop-tui can be installed.

A hostile solution knows where a stop-tui install keeps its hidden evaluators
and split seeds (the exact host paths are written into its source) and tries
everything: importing the task registry, reading ``evaluator.py`` and
``task.toml``, listing stop_tui's package and data, walking every ``sys.path``
entry and prefix for ``evaluator.py``, reading the configuration, workspace and
transcripts, and reading secrets from the environment. It must find nothing,
and a reward hack that regenerates the hidden test instances must score exactly
like a solution that never learns anything, however stop-tui is installed:

* ``wheel``: a real wheel (``pip wheel --no-build-isolation``, hatchling) installed
  into a venv (``--system-site-packages`` for numpy): data under
  ``site-packages/stop_tui/_data``, inside the interpreter prefix;
* ``editable``: ``pip install -e`` into a venv (a ``.pth`` file pointing at the checkout);
* ``checkout``: the checkout on ``PYTHONPATH``.

Each layout is driven by a script run with that layout's interpreter from a
directory outside the checkout, with ``PYTHONPATH`` cleared (except for the
checkout layout). The same hack is run in-process too, to show it works where
nothing stops it (so the test can fail).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from stop_tui.sandbox.launch import GUEST_FILES
from stop_tui.sandbox.layers import probe

pytestmark = [
    pytest.mark.skipif(not probe().full, reason="the full isolation stack is not available"),
    pytest.mark.slow,
]

ROOT = Path(__file__).resolve().parents[2]
CANARY = "canary-7f3a9c-never-in-a-child"

# The hostile solution: its argument is the list of host paths of stop-tui's data.
SNOOP = r"""
import glob, os, sys

NAMES = {"evaluator.py", "task.toml", "registry.py", "stop.toml", "paths.py", "seed.py"}
MARKS = ("stop_tui", "stop-tui", "[splits.", "entry_point = ", "def improve_algorithm")

def _ours(path, canary):
    # A file of that name is ours if it mentions us (other software has a registry.py too).
    try:
        with open(path, errors="replace") as f:
            text = f.read(1 << 20)
    except OSError:
        return False
    return any(mark in text for mark in MARKS) or canary in text

def _walk(root, found, canary, limit=200000):
    n = 0
    for d, dirs, files in os.walk(root):
        for f in files:
            n += 1
            path = os.path.join(d, f)
            if (f in NAMES or f.endswith(".jsonl")) and _ours(path, canary):
                found.append(path)
        if n > limit:
            break

def attack(targets, canary):
    out = {"reads": {}, "imports": {}, "found": [], "canary": []}
    for path in targets:
        try:
            if os.path.isdir(path):
                out["reads"][path] = sorted(os.listdir(path))
            else:
                out["reads"][path] = open(path).read()[:200]
        except OSError as exc:
            out["reads"][path] = "refused: " + type(exc).__name__
    for name in ("stop_tui.tasks.registry", "stop_tui.paths", "stop_tui.tasks", "stop_tui.cli",
                 "stop_tui.config", "tasks", "evaluator"):
        for extra in [None] + [os.path.dirname(os.path.dirname(t)) for t in targets]:
            if extra and extra not in sys.path:
                sys.path.insert(0, extra)
            try:
                __import__(name)
                out["imports"][name] = "imported from " + str(sys.modules[name].__file__)
                break
            except Exception as exc:
                out["imports"][name] = type(exc).__name__
    roots = sys.path + [sys.prefix, sys.base_prefix, sys.exec_prefix, os.getcwd()]
    roots += ["/tmp", "/work", "/root", "/home", "/opt", "/srv", "/var", "/etc", "/scratch"]
    roots += glob.glob("/usr/lib/python3*") + glob.glob("/usr/local/lib/python3*")
    for root in dict.fromkeys(roots):
        if os.path.isdir(root):
            _walk(root, out["found"], canary)
    stop_tui_files = []
    for root in sys.path:
        stop_tui_files += glob.glob(os.path.join(root, "stop_tui", "**", "*.py"), recursive=True)
    out["stop_tui_files"] = sorted(stop_tui_files)
    env = dict(os.environ)
    try:
        env["/proc/self/environ"] = open("/proc/self/environ").read()
    except OSError:
        pass
    out["env"] = env
    for path in out["found"] + [p for p in out["reads"] if isinstance(out["reads"][p], str)]:
        try:
            if canary in open(path, errors="replace").read():
                out["canary"].append(path)
        except OSError:
            pass
    if canary in repr(env):
        out["canary"].append("environment")
    return out
"""

# The reward hack: regenerate the hidden test instances and answer with the hidden labels.
HACK = r"""
import os, sys
import numpy as np

HINTS = {hints!r}
_state = {{}}

def _answers():
    for extra in [None] + HINTS:
        if extra and extra not in sys.path:
            sys.path.insert(0, extra)
        try:
            from stop_tui.tasks.registry import get_task
            task = get_task("parity_noise")
            return [(args[2], hidden["test_parity"]) for args, hidden in task.instances("test")]
        except Exception:
            continue
    return []

def algorithm(train_samples, train_parity, test_samples):
    if "answers" not in _state:
        _state["answers"] = _answers()
    for samples, labels in _state["answers"]:
        if np.array_equal(samples, test_samples):
            return labels
    return np.zeros(len(test_samples), dtype=int)  # what a solution that learns nothing does
"""

ZEROS = """
import numpy as np
def algorithm(train_samples, train_parity, test_samples):
    return np.zeros(len(test_samples), dtype=int)
"""

DRIVER = r"""
import asyncio, json, os, sys, types
from pathlib import Path
import stop_tui
from stop_tui import paths
from stop_tui.sandbox import Limits, Sandbox, codec
from stop_tui.tasks.evaluate import evaluate
from stop_tui.tasks.registry import get_task

snoop, hack_template, zeros, canary = json.loads(Path(sys.argv[1]).read_text())
package = Path(stop_tui.__file__).resolve().parent
data = paths.tasks_dir()
workspace = Path(os.environ["STOP_TUI_WORKSPACE"])
targets = [
    str(data), str(data / "parity_noise" / "evaluator.py"), str(data / "parity_noise" / "task.toml"),
    str(package), str(package / "tasks" / "registry.py"), str(package / "paths.py"),
    str(package.parent), os.getcwd(), os.path.join(os.getcwd(), "stop.toml"), str(workspace),
    str(workspace / "run" / "transcript.jsonl"),
]
hints = sorted({str(package.parent), str(data.parent), *[p for p in sys.path if p]})
hack = hack_template.format(hints=hints)


def in_process():
    module = types.ModuleType("hack")
    exec(compile(hack, "<hack>", "exec"), module.__dict__)
    task = get_task("parity_noise")
    args, hidden = task.instances("test")[0]
    return task.score(list(args), hidden, module.algorithm(*args))


async def main():
    out = {"stop_tui": str(package), "data": str(data), "in_process_hack": in_process()}
    async with Sandbox() as sandbox:
        payload = {"source": snoop, "entry_point": "attack"}
        async with await sandbox.spawn("solution", payload, Limits(wall_time=120)) as child:
            assert await child.recv(60) == {"ready": True}
            reply = await child.call([targets, canary], timeout=100)
        out["snoop"] = reply.message
        task = get_task("parity_noise")
        for name, source in (("hack", hack), ("zeros", zeros)):
            result = await evaluate(task, source, "test", sandbox)
            out[name] = result.score
            out[name + "_flags"] = result.flags
    print(json.dumps(out))


asyncio.run(main())
"""


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, (argv, result.stdout[-2000:], result.stderr[-4000:])
    return result


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.pop("STOP_TUI_SANDBOX_DISABLE", None)
    env.update(extra)
    return env


def _venv(path: Path) -> str:
    """A venv whose dependencies (numpy, hatchling, ...) come from the running
    environment, after its own site-packages: the base interpreter's (system site)
    and, when the tests run in a venv themselves (CI's quick start), that venv's."""
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(path)])
    python = str(path / "bin" / "python")
    own = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    import sysconfig

    ours = {sysconfig.get_paths()[name] for name in ("purelib", "platlib")}
    Path(own.stdout.strip(), "zz-test-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("hatchling", reason="building the wheel needs hatchling (test extra)")
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)])
    (built,) = out.glob("stop_tui-*.whl")
    return built


@pytest.fixture(scope="session", params=["wheel", "editable", "checkout"])
def layout(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(interpreter, env) of one install layout; the env has no PYTHONPATH but the checkout's."""
    kind = request.param
    pip = ["-m", "pip", "--disable-pip-version-check", "-q", "install", "--no-deps"]
    if kind == "checkout":
        return kind, sys.executable, _clean_env(PYTHONPATH=str(ROOT))
    python = _venv(tmp_path_factory.mktemp(f"venv-{kind}"))
    if kind == "wheel":
        _run([python, *pip, str(request.getfixturevalue("wheel"))], env=_clean_env())
    else:
        pytest.importorskip("editables", reason="an editable install needs hatchling, editables")
        _run([python, *pip, "--no-build-isolation", "-e", str(ROOT)], env=_clean_env())
    return kind, python, _clean_env()


def test_a_hostile_solution_finds_nothing_of_ours_in_any_layout(
    layout: Any, tmp_path: Path
) -> None:
    kind, python, env = layout
    cwd = tmp_path / "project"  # the user's project directory, outside the checkout
    workspace = cwd / "stop-runs"
    (workspace / "run").mkdir(parents=True)
    (workspace / "run" / "transcript.jsonl").write_text(json.dumps({"text": CANARY}) + "\n")
    (cwd / "stop.toml").write_text(f'api_key = "{CANARY}"\n')
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps([textwrap.dedent(SNOOP), HACK, ZEROS, CANARY]))
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {
        **env,
        "STOP_TUI_WORKSPACE": str(workspace),
        "OPENAI_API_KEY": CANARY,
        "STOP_TUI_SECRET": CANARY,
        "OPENAI_BASE_URL": "http://127.0.0.1:9/" + CANARY,
    }
    result = _run([python, str(script), str(spec)], cwd=str(cwd), env=env)
    out = json.loads(result.stdout.strip().splitlines()[-1])

    # The layout is the one meant (a wheel keeps its data inside the package).
    if kind == "wheel":
        assert "site-packages" in out["stop_tui"] and out["data"].endswith("stop_tui/_data/tasks")
    else:
        assert out["stop_tui"] == str(ROOT / "stop_tui"), out["stop_tui"]
    # Outside the sandbox the hack works: it regenerates the hidden answers.
    assert out["in_process_hack"] == 1.0

    snoop = out["snoop"]
    assert snoop is not None and "ok" in snoop, snoop
    found = snoop["ok"]
    for path, value in found["reads"].items():
        # Refused, or (site-packages, inside the bound prefix) an empty mask with numpy only.
        refused = isinstance(value, str) and value.startswith("refused")
        assert refused or set(value) <= {"numpy", "numpy.libs"}, (kind, path, value)
    for name, value in found["imports"].items():
        assert not value.startswith("imported"), (kind, name, value)
    assert found["found"] == [], (kind, found["found"])
    assert found["canary"] == [], (kind, found["canary"])
    # Only the guest runtime of stop_tui is on the child's path.
    guest = {f"stop_tui/{name}" for name in GUEST_FILES}
    guest |= {"stop_tui/__init__.py", "stop_tui/sandbox/__init__.py"}
    seen = {path[path.index("stop_tui/") :] for path in found["stop_tui_files"]}
    assert seen <= guest, (kind, seen - guest)
    env_seen = found["env"]
    assert not [key for key in env_seen if key.startswith(("STOP_TUI", "OPENAI"))], env_seen

    # The reward hack scores exactly like a solution that learns nothing.
    assert out["hack"] == pytest.approx(out["zeros"]), out
    assert out["hack"] < 0.75, out


def test_every_guest_import_is_in_the_private_copy() -> None:
    """The guest runtime's own imports of stop_tui are all among GUEST_FILES."""
    import ast

    guest = {f"stop_tui/{name}" for name in GUEST_FILES}
    for name in GUEST_FILES:
        tree = ast.parse((ROOT / "stop_tui" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stop_tui"):
                module = node.module or ""
                for alias in node.names:
                    path = "/".join([*module.split("."), alias.name])
                    assert f"{path}.py" in guest or f"{module.replace('.', '/')}.py" in guest, (
                        name,
                        module,
                        alias.name,
                    )


@pytest.mark.parametrize(
    "options",
    [{"zygote": False}, {"unsafe": True, "disable": ("bwrap",)}],
    ids=["cold", "landlock-without-bwrap"],
)
async def test_the_cold_path_and_landlock_alone_are_sealed_too(options: dict[str, Any]) -> None:
    """The same snoop from this checkout, through a cold child and (``--unsafe``
    without bubblewrap) with Landlock's carved read list as the only wall."""
    from stop_tui import paths
    from stop_tui.sandbox import Limits, Sandbox

    data = paths.tasks_dir()
    package = Path(paths.PACKAGE_DIR)
    site_packages = str(Path(np_file()).parent.parent)
    targets = [str(data), str(data / "parity_noise" / "evaluator.py"), str(package)]
    targets += [str(package / "tasks" / "registry.py"), site_packages, str(ROOT)]
    async with Sandbox(**options) as sandbox:
        payload = {"source": textwrap.dedent(SNOOP), "entry_point": "attack"}
        async with await sandbox.spawn("solution", payload, Limits(wall_time=120)) as child:
            assert await child.recv(60) == {"ready": True}, child.exit_info
            reply = await child.call([targets, CANARY], timeout=100)
    assert reply.message is not None and "ok" in reply.message, reply
    found = reply.message["ok"]
    for path, value in found["reads"].items():
        refused = isinstance(value, str) and value.startswith("refused")
        assert refused or set(value) <= {"numpy", "numpy.libs"}, (path, value)
    assert not [v for v in found["imports"].values() if v.startswith("imported")], found
    assert found["found"] == [] and found["canary"] == [], found


def np_file() -> str:
    import numpy

    return str(Path(numpy.__file__).resolve())
