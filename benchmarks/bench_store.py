"""How fast the store reads a big run.

Builds a workspace holding one run of N commits (default 1,000: a seed and
generations of 2 candidates + 1 adopted improver each) plus some small runs,
written in one ``git fast-import`` stream with exactly the store's layout
(same trees, records, commit messages and trailers, same refs), then times:

- ``list_steps(run)`` (one ``git log``) and ``list_runs()`` (one ``git for-each-ref``),
- ``export_scores(run, "csv")`` (one ``git log`` + one ``git cat-file --batch``),
- a naive loop that asks git once per commit, for the ratio,
- a few writes through the real writer API (``commit_step``), per commit.

Usage: PYTHONPATH=. python benchmarks/bench_store.py [--commits 1000] [--runs 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from stop_tui.store import RunConfig, RunState, RunStore, StepRecord
from stop_tui.store.messages import commit_message, json_bytes, state_message
from stop_tui.store.synthetic import SEED_SOURCE, improver_source, step_record

IDENT = "stop-tui <stop-tui@localhost>"


def fast_import_run(
    stream: list[bytes], run_id: str, commits: int, seed: int, when: int, mark: list[int]
) -> None:
    """Append one run (``commits`` improver commits) to a fast-import stream."""
    rng = random.Random(seed)
    config = RunConfig(
        task="parity_noise", model="demo", run_id=run_id, created="2026-11-26T08:00:00Z"
    )
    run_json = json_bytes(config.to_json())

    def data(b: bytes) -> bytes:
        return b"data %d\n" % len(b) + b + b"\n"

    def commit(
        ref: str, rec: StepRecord, source: str, parent: int | None, parent_meta: float | None
    ) -> int:
        rec.run_id, rec.model, rec.created = run_id, "demo", "2026-11-26T08:00:00Z"
        mark[0] += 1
        m = mark[0]
        out = [f"commit {ref}\nmark :{m}\ncommitter {IDENT} {when + m} +0000\n".encode()]
        out.append(data(commit_message(rec, config.task, parent_meta).encode()))
        if parent is not None:
            out.append(f"from :{parent}\n".encode())
        else:
            out.append(b"deleteall\n")
        for path, content in (
            ("improver.py", source.encode()),
            ("run.json", run_json),
            ("record.json", json_bytes(rec.to_json())),
            ("transcript.jsonl", b'{"role": "user", "content": "improve"}\n'),
            ("solutions/test-0.py", b"def algorithm():\n    return 0\n"),
        ):
            out.append(f"M 100644 inline {path}\n".encode() + data(content))
        out.append(b"\n")
        stream.extend(out)
        return m

    branch = f"refs/heads/stop/{run_id}"
    seed_rec = step_record(rng, 0, "seed", None)
    tip = commit(branch, seed_rec, SEED_SOURCE, None, None)
    tip_meta, best, best_meta = seed_rec.meta_utility, tip, seed_rec.meta_utility or 0.0
    written, gen = 1, 0
    while written < commits:
        gen += 1
        made = []
        for n in range(min(2, commits - written)):
            rec = step_record(rng, gen, "candidate", n)
            ref = f"refs/stop/{run_id}/candidates/{gen}/{n}"
            made.append((commit(ref, rec, improver_source(gen, n), tip, tip_meta), rec))
            written += 1
        if written >= commits:
            break
        _, rec = max(made, key=lambda x: x[1].meta_utility or 0.0)
        # (the real writer also records adopted_from, the candidate's commit id, which a
        # fast-import mark cannot give before the stream is imported)
        rec.kind = "adopted"
        tip = commit(branch, rec, improver_source(gen, rec.candidate or 0), tip, tip_meta)
        tip_meta = rec.meta_utility
        written += 1
        if (rec.meta_utility or 0.0) > best_meta:
            best, best_meta = tip, rec.meta_utility or 0.0
    stream.append(f"reset refs/stop/{run_id}/best\nfrom :{best}\n\n".encode())
    state = RunState(status="finished", generation=gen, budget={"cost": 1.5})
    mark[0] += 1
    stream.append(
        f"commit refs/stop/{run_id}/state\nmark :{mark[0]}\ncommitter {IDENT} {when} +0000\n".encode()
        + data(state_message(run_id, state, config).encode())
        + b"deleteall\nM 100644 inline state.json\n"
        + data(json_bytes(state.to_json()))
        + b"\n"
    )


def timed(fn: Callable[[], object], repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commits", type=int, default=1000, help="commits in the big run")
    ap.add_argument("--runs", type=int, default=20, help="extra small runs (10 commits each)")
    ap.add_argument("--keep", type=Path, help="build the workspace here and keep it")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        path = args.keep or Path(tmp) / "ws"
        store = RunStore(path, create=True)
        big = "20261126-080000-b1b1"
        stream: list[bytes] = []
        mark = [0]
        t0 = time.perf_counter()
        fast_import_run(stream, big, args.commits, 1, 1_795_000_000, mark)
        for i in range(args.runs):
            fast_import_run(stream, f"20261125-{i:06d}-s{i:03d}", 10, 100 + i, 1_794_000_000, mark)
        subprocess.run(
            ["git", "fast-import", "--quiet", "--done"],
            input=b"".join(stream) + b"done\n",
            env=store.git.env,
            cwd=store.git.cwd,
            check=True,
        )
        build = time.perf_counter() - t0

        steps = store.list_steps(big)
        assert len(steps) == args.commits, len(steps)
        runs = store.list_runs()
        assert len(runs) == args.runs + 1
        t_steps = timed(lambda: store.list_steps(big))
        t_runs = timed(lambda: store.list_runs())
        t_export = timed(lambda: store.export_scores(big, "csv"), repeat=3)

        def naive() -> None:  # one git process per commit, as a per-commit loop would do
            for s in steps:
                store.git.out(["log", "-1", "--format=%H %P %s%n%(trailers:only,unfold)", s.commit])

        t_naive = timed(naive, repeat=1)

        with store.open_run(big) as w:
            gen = w.generation + 1
            n_writes = 30
            t0 = time.perf_counter()
            for i in range(n_writes):
                w.commit_step(
                    StepRecord(gen, "candidate", f"bench {i}", meta_utility=0.5),
                    SEED_SOURCE,
                    solutions={"test-0.py": "def algorithm():\n    return 0\n"},
                    transcript=[{"role": "user", "content": "improve"}],
                )
            t_write = (time.perf_counter() - t0) / n_writes

        print(f"workspace: 1 run of {args.commits} commits + {args.runs} runs of 10 commits")
        print(f"build (one git fast-import stream):       {build * 1000:8.1f} ms")
        print(f"list_steps({args.commits} commits), one git log:   {t_steps * 1000:8.1f} ms")
        print(f"list_runs({args.runs + 1} runs), one for-each-ref:     {t_runs * 1000:8.1f} ms")
        print(f"export_scores csv (log + cat-file batch): {t_export * 1000:8.1f} ms")
        print(f"naive loop, one git process per commit:   {t_naive * 1000:8.1f} ms"
              f"  ({t_naive / t_steps:.0f}x list_steps)")  # fmt: skip
        print(f"commit_step through the writer API:       {t_write * 1000:8.1f} ms per commit")


if __name__ == "__main__":
    main()
