"""``stop-tui eval``: real sandboxed evaluation from the command line, and one
readable line (no traceback, exit 2) for every kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

STRONG_PARITY = '''
import numpy as np

def algorithm(train_samples, train_parity, test_samples):
    """Exhaustive subset search: the subset that disagrees least with the noisy labels."""
    n = train_samples.shape[1]
    masks = (np.arange(2 ** n)[:, None] >> np.arange(n)) & 1
    errors = ((train_samples @ masks.T) % 2 != train_parity[:, None]).sum(axis=0)
    return (test_samples @ masks[int(np.argmin(errors))]) % 2
'''


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stop_tui", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )


def test_a_strong_learner_beats_the_seed_on_noisy_parity(tmp_path: Path) -> None:
    strong = tmp_path / "strong.py"
    strong.write_text(STRONG_PARITY)
    good = json.loads(cli("eval", str(strong), "--task", "parity_noise", "--json").stdout)
    from stop_tui.tasks import get_task

    seed = tmp_path / "seed.py"
    seed.write_text(get_task("parity_noise").seed_solution)
    base = json.loads(cli("eval", str(seed), "--task", "parity_noise", "--json").stdout)
    assert good["score"] > 0.9
    assert 0.35 < base["score"] < 0.65
    assert good["split"] == "val" and len(good["instances"]) == 20
    test = json.loads(
        cli("eval", str(strong), "--task", "parity_noise", "--split", "test", "--json").stdout
    )
    assert len(test["instances"]) == 50 and test["score"] > 0.9


def test_the_table_shows_flags_for_a_reward_hack(tmp_path: Path) -> None:
    hack = tmp_path / "hack.py"
    hack.write_text(
        "import numpy as np\n"
        "def algorithm(train_samples, train_parity, test_samples):\n"
        "    return np.zeros((20, 1), dtype=int)  # broadcasts to 20x20 in a naive check\n"
    )
    result = cli("eval", str(hack), "--task", "parity_noise")
    assert result.returncode == 0
    assert "malformed" in result.stdout and "score 0.0000" in result.stdout


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        (None, ["--task", "parity_noise"], "does not exist"),
        (b"def algorithm(:\n", ["--task", "parity_noise"], "syntax error"),
        (b"\xff\xfe not text", ["--task", "parity_noise"], "not UTF-8"),
        (b"def algorithm(*a):\n    return []\n", ["--task", "no_such_task"], "no_such_task"),
    ],
)
def test_bad_input_gets_one_readable_line(
    tmp_path: Path, content: bytes | None, args: list[str], expected: str
) -> None:
    path = tmp_path / "solution.py"
    if content is not None:
        path.write_bytes(content)
    result = cli("eval", str(path), *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr


# A solution that swaps the child's encoder to forge its replies on the wire.
FORGED_REPLY = """
import sys

FORGERIES = [
    {"__ndarray__": "", "dtype": "<f8", "shape": [2**40, 2**40, 0], "encoding": "base64"},
    {"__ndarray__": [], "dtype": "<f8", "shape": [-1]},
    {"__ndarray__": "AAAA", "dtype": "|O", "shape": [1], "encoding": "base64"},
    {"__ndarray__": "AAA", "dtype": "<f8", "shape": [1], "encoding": "base64"},
    {"__ndarray__": [0] * 20, "dtype": "<M8[s]", "shape": [20]},
    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
]
calls = 0

def algorithm(train_samples, train_parity, test_samples):
    global calls
    forged = FORGERIES[calls % len(FORGERIES)]
    calls += 1
    sys.modules["stop_tui.sandbox.codec"].encode = lambda value: forged
    return [0] * 20
"""


def test_forged_replies_are_flagged_malformed_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "forger.py"
    path.write_text(FORGED_REPLY)
    result = cli("eval", str(path), "--task", "parity_noise", "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    data = json.loads(result.stdout)
    assert data["score"] == 0.0 and data["flags"] == ["malformed"]
    assert all(r["flag"].startswith("malformed: ") for r in data["instances"])
    table = cli("eval", str(path), "--task", "parity_noise")
    assert table.returncode == 0 and "Traceback" not in table.stderr
    assert "malformed" in table.stdout and "score 0.0000" in table.stdout
