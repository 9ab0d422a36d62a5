"""Runs on a real multi-node Ray cluster on 127.0.0.1: same results as local, faults survived.

One cluster (a head and one more node, 1 CPU each, 100 MB object stores, no
dashboard) serves the whole module; nodes are added and killed by the tests.
Every node, the driver and the actors stay on 127.0.0.1 (``node_ip_address`` and
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``). About 2-3 minutes on 2 shared cores,
most of it Ray starting its processes.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Before Ray is imported (it reads this once): keep every address on loopback.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from stop_tui.engine.config import RunConfig  # noqa: E402
from stop_tui.engine.events import UtilityEvaluated  # noqa: E402
from stop_tui.engine.executor import ClusterLost  # noqa: E402
from stop_tui.engine.loop import StopRun  # noqa: E402
from stop_tui.engine.ray_executor import RayExecutor, parse_cluster  # noqa: E402
from stop_tui.engine.recorder import StoreRecorder, work_transcript_path  # noqa: E402
from stop_tui.engine.replay import replay  # noqa: E402
from stop_tui.engine.session import seed_improver  # noqa: E402
from stop_tui.errors import UserError  # noqa: E402
from stop_tui.experiments.record import list_sweeps  # noqa: E402
from stop_tui.experiments.results import collect  # noqa: E402
from stop_tui.experiments.stats import compute  # noqa: E402
from stop_tui.lm.demo import DemoBackend  # noqa: E402
from stop_tui.lm.transcript import RecordingBackend  # noqa: E402
from stop_tui.sandbox.api import Sandbox  # noqa: E402
from stop_tui.store.store import RunStore  # noqa: E402
from tests.support.engine import small_config, store_run  # noqa: E402
from tests.support.sweep import cli, sweep_text  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

NODE = {"node_ip_address": "127.0.0.1", "num_cpus": 1, "object_store_memory": 100 * 1024**2}
#: What legitimately differs between two runs: times and ids (exact key names; a key
#: ending in "seconds" is a measured time: wall_seconds, cpu_seconds).
VOLATILE = {"created", "at", "ts", "latency", "elapsed", "duration", "run_id", "sweep_id"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    made = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    made.add_node(**NODE)
    try:
        yield made
    finally:
        made.shutdown()


def _stable(value: Any) -> Any:
    """``value`` without what legitimately differs between two runs (times, ids)."""
    if isinstance(value, dict):
        return {
            k: _stable(v)
            for k, v in value.items()
            if k not in VOLATILE and not k.endswith("seconds")
        }
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def contents(store: RunStore, run_id: str) -> list[Any]:
    """Every commit of a run in content: record, source, solutions and transcript."""
    out = []
    for step in store.list_steps(run_id):
        record = store.get_record(step.commit)
        record_dict = _stable({**record.to_json(), "decision": None})
        # Who decided what and why (and about which source), not when.
        record_dict["decision"] = _stable(record.decision.to_json()) if record.decision else None
        # The transcript's hash covers its line order and times: compared below as a set.
        files = dict(record_dict.get("files") or {})
        files.pop("transcript.jsonl", None)
        record_dict["files"] = files
        out.append(
            (
                record_dict,
                store.get_source(step.commit),
                store.get_solutions(step.commit),
                # Concurrent tests interleave their LM calls: compare the lines as a set.
                sorted(
                    json.dumps(_stable(line), sort_keys=True)
                    for line in store.get_transcript(step.commit)
                ),
            )
        )
    return out


def assert_same(remote: list[Any], local: list[Any]) -> None:
    """Equal, scores included: verdicts are CPU time measured by each child's supervisor,
    so a node's load does not change them (no tolerance)."""
    assert len(remote) == len(local)
    for step, (got, want) in enumerate(zip(remote, local, strict=True)):
        for part, name in enumerate(("record", "source", "solutions", "transcript")):
            assert got[part] == want[part], f"commit {step}: {name} differs"


async def run_on(
    executor: RayExecutor | None, config: RunConfig, workspace: Path, **kw: Any
) -> tuple[StopRun, RunStore, str]:
    async with Sandbox() as sandbox:
        run, store, backend = store_run(sandbox, config, workspace)
        run.cluster = executor
        for name, value in kw.items():
            setattr(run, name, value)
        status = await run.run()
        await backend.aclose()
    return run, store, status


def test_bad_cluster_settings_are_one_clear_line() -> None:
    assert parse_cluster("") == "" and parse_cluster("local") == ""
    assert parse_cluster("ray") == "ray"
    assert parse_cluster("ray://127.0.0.1:10001") == "ray://127.0.0.1:10001"
    assert parse_cluster("127.0.0.1:6379") == "127.0.0.1:6379"
    for bad in ("ray://", "127.0.0.1", "host:99999", "http://x:1", "a b:1", "ray:127.0.0.1:1"):
        with pytest.raises(UserError, match="not understood"):
            parse_cluster(bad)


async def test_a_demo_run_on_the_cluster_equals_the_local_run(
    cluster: Cluster, tmp_path: Path
) -> None:
    config = small_config(generations=2, seed=5)
    _, local_store, status = await run_on(None, config, tmp_path / "local")
    assert status == "finished"
    executor = RayExecutor(cluster.address)
    reports = await asyncio.to_thread(executor.connect)
    try:
        assert len(reports) == 2 and all(r.accepted and r.full for r in reports)
        run, ray_store, status = await run_on(executor, config, tmp_path / "ray")
        assert status == "finished", [e.to_dict() for e in run.bus.history if "error" in e.kind]
    finally:
        await executor.close()
    local, remote = contents(local_store, config.run_id), contents(ray_store, config.run_id)
    assert len(remote) == len(local) >= 3
    assert_same(remote, local)


def sweep_results(workspace: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A sweep's cells by key (results, and every commit of its run) and its statistics."""
    store = RunStore(workspace)
    (record,) = list_sweeps(store)
    cells = collect(store, record)
    by_key = {
        c.key: (_stable({**c.to_json(), "best_commit": None}), contents(store, c.run_id))
        for c in cells
    }
    stats = compute(cells, record.spec.generations)
    numbers = {
        "curve": [p.flat() for p in stats.curve],
        "groups": [g.flat() for g in stats.groups],
        "circumvention": [c.flat() for c in stats.circumvention],
    }
    return by_key, numbers


def test_a_demo_sweep_on_the_cluster_equals_the_local_sweep(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The README's command on a two-node loopback cluster: every cell's scores,
    decisions, commits and transcripts, and the sweep's statistics, equal local."""
    text = sweep_text(["parity_noise"], [0, 1], generations=1, concurrency=2)
    for where in ("local", "ray"):
        (tmp_path / where).mkdir()
        (tmp_path / where / "grid.toml").write_text(text)
    local = cli("sweep", "grid.toml", "--headless", cwd=tmp_path / "local")
    assert local.returncode == 0, local.stdout + local.stderr
    assert "Ray cluster" not in local.stdout
    remote = cli(
        "sweep", "grid.toml", "--headless", "--cluster", cluster.address, cwd=tmp_path / "ray"
    )
    assert remote.returncode == 0, remote.stdout + remote.stderr
    assert f"ran on the Ray cluster at {cluster.address}: 2 of 2 nodes accepted" in remote.stdout
    assert "SIGTERM" not in remote.stdout + remote.stderr  # Ray's notice, not the user's news
    (local_cells, local_numbers), (ray_cells, ray_numbers) = (
        sweep_results(tmp_path / where / "stop-runs") for where in ("local", "ray")
    )
    assert sorted(ray_cells) == sorted(local_cells) and len(local_cells) == 2
    for key, (results, commits) in local_cells.items():
        assert results["status"] == "finished" and results["val"], key
        assert ray_cells[key][0] == results, f"{key}: results differ"
        assert len(ray_cells[key][1]) == len(commits) >= 2
        assert_same(ray_cells[key][1], commits)
    assert ray_numbers == local_numbers


def test_a_sweep_with_a_bad_or_unreachable_cluster_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "grid.toml").write_text(sweep_text(["parity_noise"], [0], generations=1))
    for address, words in (("ray:/x", "not understood"), ("127.0.0.1:9", "cannot reach")):
        result = cli("sweep", "grid.toml", "--headless", "--cluster", address, cwd=tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert words in line and "Traceback" not in result.stderr, line


async def test_a_node_whose_isolation_probe_fails_takes_no_work(cluster: Cluster) -> None:
    # The node's processes inherit this: its sandbox has no bubblewrap layer.
    os.environ["STOP_TUI_SANDBOX_DISABLE"] = "bwrap"
    try:
        broken = cluster.add_node(**NODE)
    finally:
        del os.environ["STOP_TUI_SANDBOX_DISABLE"]
    try:
        executor = RayExecutor(cluster.address)
        reports = await asyncio.to_thread(executor.connect)
        try:
            refused = [r for r in reports if not r.accepted]
            assert len(reports) == 3 and len(refused) == 1
            assert not refused[0].full and "bubblewrap" in refused[0].detail
            assert all(n.report.accepted for n in executor.nodes) and len(executor.nodes) == 2
        finally:
            await executor.close()
        unsafe = RayExecutor(cluster.address, unsafe=True)
        try:
            assert len(await asyncio.to_thread(unsafe.connect)) == 3 and len(unsafe.nodes) == 3
        finally:
            await unsafe.close()
    finally:
        cluster.remove_node(broken)


async def test_a_node_killed_mid_run_loses_nothing_and_charges_nothing_twice(
    cluster: Cluster, tmp_path: Path
) -> None:
    config = small_config(generations=2, seed=5)
    _, local_store, _ = await run_on(None, config, tmp_path / "local")
    victim = cluster.add_node(**{**NODE, "num_cpus": 8})  # the least busy: work goes there
    executor = RayExecutor(cluster.address)
    await asyncio.to_thread(executor.connect)
    killed = asyncio.Event()

    def kill_once(event: object) -> None:
        if isinstance(event, UtilityEvaluated) and event.generation == 1 and not killed.is_set():
            killed.set()
            cluster.remove_node(victim, allow_graceful=False)

    try:
        async with Sandbox() as sandbox:
            run, store, backend = store_run(sandbox, config, tmp_path / "ray")
            run.cluster = executor
            run.bus.on(kill_once)
            status = await run.run()
            await backend.aclose()
        assert killed.is_set() and status == "finished"
        assert executor.lost and len(executor.nodes) == 2
    finally:
        await executor.close()
    # Same commits, same transcripts (each LM call made and charged once), and the
    # offline replay of the disturbed run reproduces every recorded score.
    assert_same(contents(store, config.run_id), contents(local_store, config.run_id))
    async with Sandbox() as sandbox:
        report = await replay(store, config.run_id, sandbox=sandbox)
    assert report.steps and all(step.recorded == step.replayed for step in report.steps), (
        report.divergence
    )


async def test_a_lost_cluster_stops_the_run_resumably_and_resume_continues_locally(
    cluster: Cluster, tmp_path: Path
) -> None:
    config = small_config(generations=2, seed=9)
    executor = RayExecutor(cluster.address)
    await asyncio.to_thread(executor.connect)

    def lose_everything(event: object) -> None:
        if isinstance(event, UtilityEvaluated) and event.generation == 1 and executor.nodes:
            for node in executor.nodes:
                ray.kill(node.actor)

    try:
        async with Sandbox() as sandbox:
            run, store, backend = store_run(sandbox, config, tmp_path / "runs")
            run.cluster = executor
            run.bus.on(lose_everything)
            status = await run.run()
            await backend.aclose()
    finally:
        await executor.close()
    assert status == "failed"
    message = store.get_state(config.run_id).message  # type: ignore[union-attr]
    assert "Ray cluster is gone" in message and "stop-tui resume" in message
    assert "\n" not in message
    backend = RecordingBackend(
        DemoBackend(seed=config.seed, failure_rate=0.0),
        work_transcript_path(store, config.run_id),
    )
    async with Sandbox() as sandbox:
        resumed = StopRun(
            config,
            sandbox=sandbox,
            backend=backend,
            recorder=StoreRecorder(store, seed_improver(), resume=True),
        )
        assert await resumed.run() == "finished"
    await backend.aclose()
    assert ClusterLost.__mro__[1].__name__ == "RunAborted"
