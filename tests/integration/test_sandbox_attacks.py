"""Hostile programs against the full isolation stack (real confined child processes).

Each attack must leave the host untouched, the parent alive, no process of the
attack running afterwards (checked by scanning /proc for a process name the
attack gives itself), and be reported with the limit that fired.
"""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from stop_tui.sandbox import Child, Limits, Sandbox, codec
from stop_tui.sandbox.launch import package_root
from stop_tui.sandbox.layers import probe
from tests.support.sandbox import SET_COMM, marked, new_marker, sandbox_processes, wait_gone

pytestmark = pytest.mark.skipif(
    not probe().full, reason="the full isolation stack is not available"
)

ROOT = str(package_root())


@pytest.fixture(params=["zygote", "cold"])
async def sandbox(request: pytest.FixtureRequest) -> Any:
    async with Sandbox(zygote=request.param == "zygote") as sb:
        yield sb


@pytest.fixture
async def warm() -> Any:
    async with Sandbox() as sb:
        yield sb


async def start(sb: Sandbox, source: str, limits: Limits | None = None) -> Child:
    source = SET_COMM + textwrap.dedent(source)
    child = await sb.spawn("solution", {"source": source, "entry_point": "attack"}, limits)
    ready = await child.recv(timeout=30)
    assert ready == {"ready": True}, ready
    return child


async def call(child: Child, *args: Any, timeout: float = 30) -> dict[str, Any] | None:
    reply = await child.request({"call": codec.encode(list(args))}, timeout=timeout)
    return reply.message


async def test_fork_bomb_is_refused(sandbox: Sandbox) -> None:
    marker = new_marker()
    child = await start(
        sandbox,
        """
        import os
        def attack(marker):
            _mark(marker)
            n = 0
            for _ in range(10000):
                pid = os.fork()
                if pid == 0:
                    _mark(marker)
                    import time
                    time.sleep(60)
                n += 1
            return n
        """,
    )
    async with child:
        reply = await call(child, marker)
        assert reply is not None and reply["error"].startswith("PermissionError"), reply
        assert len(marked(marker)) == 1  # only the job itself
        # The host can still start processes.
        assert subprocess.run(["true"], check=False).returncode == 0
    assert wait_gone(marker) == []


async def test_memory_bomb_hits_the_memory_limit(sandbox: Sandbox) -> None:
    child = await start(
        sandbox,
        """
        def attack():
            block = bytearray(3 * 1024 ** 3)
            return len(block)
        """,
        Limits(memory_mb=512),
    )
    async with child:
        reply = await call(child)
        assert reply is not None and reply["error"].startswith("MemoryError"), reply
    assert child.exit_info is not None and child.exit_info.limit == "memory"


async def test_numpy_memory_bomb_hits_the_memory_limit(warm: Sandbox) -> None:
    child = await start(
        warm,
        """
        import numpy as np
        def attack():
            return float(np.ones((3 * 1024 ** 3) // 8).sum())
        """,
        Limits(memory_mb=512),
    )
    async with child:
        reply = await call(child)
        assert reply is not None and "MemoryError" in reply["error"], reply
    assert child.exit_info is not None and child.exit_info.limit == "memory"


async def test_busy_loop_times_out_and_is_killed(sandbox: Sandbox) -> None:
    marker = new_marker()
    child = await start(
        sandbox,
        """
        def attack(marker):
            _mark(marker)
            while True:
                pass
        """,
    )
    async with child:
        reply = await child.request({"call": [marker]}, timeout=0.5)
        assert reply.timed_out and reply.message is None
    assert child.exit_info is not None and child.exit_info.limit == "timeout"
    assert wait_gone(marker) == []


@pytest.mark.slow
async def test_busy_loop_hits_the_cpu_limit(warm: Sandbox) -> None:
    child = await start(
        warm,
        """
        def attack():
            while True:
                pass
        """,
        Limits(cpu_time=1, wall_time=30),
    )
    async with child:
        reply = await child.request({"call": []}, timeout=25)
        assert reply.message is None and not reply.timed_out
    info = child.exit_info
    assert info is not None and info.limit == "cpu", info
    assert info.signal in (signal.SIGXCPU, signal.SIGKILL)


async def test_endless_sleep_hits_the_wall_limit(sandbox: Sandbox) -> None:
    child = await start(
        sandbox,
        """
        import time
        def attack():
            time.sleep(10 ** 6)
        """,
        Limits(wall_time=1.0),
    )
    async with child:
        reply = await child.request({"call": []}, timeout=30)
        assert reply.message is None and not reply.timed_out
    assert child.exit_info is not None and child.exit_info.limit == "wall"


async def test_writes_outside_scratch_fail(sandbox: Sandbox, tmp_path: Path) -> None:
    targets = [str(tmp_path / "pwned"), "/tmp/stop-tui-pwned", str(Path.home() / "stop-tui-pwned")]
    targets += [os.path.join(ROOT, "stop_tui", "pwned.py"), "/usr/stop-tui-pwned"]
    child = await start(
        sandbox,
        """
        import os
        def attack(targets):
            results = {}
            for path in targets:
                try:
                    with open(path, "w") as f:
                        f.write("pwned")
                    results[path] = "written"
                except OSError as exc:
                    results[path] = type(exc).__name__
            with open("inside-scratch.txt", "w") as f:
                f.write("fine")
            results["scratch"] = open("inside-scratch.txt").read()
            return results
        """,
    )
    async with child:
        reply = await call(child, targets)
    assert reply is not None, child.exit_info
    results = reply["ok"]
    assert results.pop("scratch") == "fine"
    assert "written" not in results.values(), results
    for path in targets:
        assert not os.path.exists(path), path


async def test_hidden_files_cannot_be_read(sandbox: Sandbox, tmp_path: Path) -> None:
    secret_tmp = tmp_path / "hidden.txt"
    secret_tmp.write_text("secret in tmp")
    secret_home = Path.home() / f".stop-tui-secret-{os.getpid()}"
    secret_home.write_text("secret in home")
    try:
        child = await start(
            sandbox,
            """
            def attack(paths):
                out = {}
                for path in paths:
                    try:
                        out[path] = open(path).read()
                    except OSError as exc:
                        out[path] = "refused: " + type(exc).__name__
                return out
            """,
        )
        async with child:
            paths = [str(secret_tmp), str(secret_home), "/etc/shadow", "/proc/1/environ"]
            reply = await call(child, paths)
        assert reply is not None, child.exit_info
        assert all(value.startswith("refused") for value in reply["ok"].values()), reply
    finally:
        secret_home.unlink()


async def test_no_tcp_to_localhost(sandbox: Sandbox) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    connections: list[Any] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connections.append(listener.accept())
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        child = await start(
            sandbox,
            """
            import socket
            def attack(port):
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=2)
                except OSError as exc:
                    return "refused: " + type(exc).__name__
                s.sendall(b"hello")
                return "connected"
            """,
        )
        async with child:
            reply = await call(child, port)
        assert reply is not None and reply["ok"].startswith("refused"), reply
        # The listener really works: a host connection is seen.
        probe_conn = socket.create_connection(("127.0.0.1", port), timeout=2)
        probe_conn.close()
        for _ in range(50):
            if connections:
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert len(connections) == 1  # only the host's own probe connection


async def test_cannot_kill_the_parent(sandbox: Sandbox) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    child = await start(
        sandbox,
        """
        import os, signal
        def attack(pids):
            out = []
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    out.append("sent")
                except OSError as exc:
                    out.append(type(exc).__name__)
            return out
        """,
    )
    try:
        async with child:
            reply = await call(child, [os.getpid(), -1, bystander.pid, os.getppid()])
            assert reply is not None and "sent" not in reply["ok"], reply
        assert bystander.poll() is None  # the bystander process was not touched
    finally:
        bystander.kill()
        bystander.wait()
    # Still alive (we are running) and the sandbox still serves new children.
    again = await start(sandbox, "def attack():\n    return 'fine'\n")
    async with again:
        reply = await call(again)
        assert reply is not None and reply["ok"] == "fine"


async def test_stdout_flood_is_capped_and_killed(sandbox: Sandbox) -> None:
    child = await start(
        sandbox,
        """
        import sys
        def attack():
            chunk = "x" * (1 << 20)
            for _ in range(100):
                sys.stdout.write(chunk)
            sys.stdout.flush()
            return "done"
        """,
        Limits(max_output_bytes=100_000),
    )
    async with child:
        await call(child)
    info = child.exit_info
    assert info is not None and info.limit == "output", info
    assert info.stdout_truncated and len(info.stdout) <= 100_000


async def test_setsid_orphan_dies_with_the_job(sandbox: Sandbox) -> None:
    marker = new_marker()
    child = await start(
        sandbox,
        """
        import os, time
        def attack(marker):
            pid = os.fork()
            if pid == 0:
                os.setsid()
                if os.fork() == 0:
                    _mark(marker)
                    time.sleep(600)
                os._exit(0)
            os.waitpid(pid, 0)
            time.sleep(0.2)
            return "orphan started"
        """,
        Limits(max_processes=4),
    )
    async with child:
        reply = await call(child, marker)
        assert reply is not None and reply["ok"] == "orphan started", reply
        assert len(marked(marker)) == 1  # the orphan really runs
    assert wait_gone(marker) == []


@pytest.mark.slow
def test_everything_dies_with_the_parent(tmp_path: Path) -> None:
    marker = new_marker()
    script = tmp_path / "parent.py"
    source = SET_COMM + f"import time\ndef attack():\n    _mark({marker!r})\n    time.sleep(600)\n"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio, sys
            from stop_tui.sandbox import Sandbox, Limits
            SRC = {source!r}
            async def main():
                sb = Sandbox()
                await sb.start()
                child = await sb.spawn("solution", {{"source": SRC, "entry_point": "attack"}},
                                       Limits(wall_time=600))
                print(await child.recv(30), flush=True)
                await child.send({{"call": [], "id": "x"}})
                await asyncio.sleep(600)
            asyncio.run(main())
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": ROOT}
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert parent.stdout is not None
        assert "ready" in parent.stdout.readline()
        for _ in range(100):
            if marked(marker):
                break
            time.sleep(0.05)
        assert len(marked(marker)) == 1
        zygotes = sandbox_processes(ROOT, owner=parent.pid)
        assert all(_parent_chain(pid, parent.pid) for pid in zygotes)
        assert zygotes
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    assert wait_gone(marker) == []
    for _ in range(100):
        leftovers = [pid for pid in zygotes if _alive(pid)]
        leftovers += sandbox_processes(ROOT, owner=parent.pid)
        if not leftovers:
            break
        time.sleep(0.05)
    assert leftovers == [], [Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid in leftovers]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _parent_chain(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
    return False


async def test_nothing_left_after_close() -> None:
    async with Sandbox() as sb:
        child = await start(sb, "def attack():\n    return 1\n")
        assert len(sandbox_processes(ROOT)) >= 1
        async with child:
            assert (await call(child)) is not None
        await sb.close()
    await asyncio.sleep(0.2)
    assert sandbox_processes(ROOT) == []


async def test_fork_bomb_with_forks_allowed_hits_the_process_limit(sandbox: Sandbox) -> None:
    marker = new_marker()
    child = await start(
        sandbox,
        """
        import os, time
        def attack(marker):
            _mark(marker)
            while True:
                try:
                    if os.fork() == 0:
                        _mark(marker)
                except OSError:
                    time.sleep(0.001)
        """,
        Limits(max_processes=8, wall_time=20),
    )
    async with child:
        reply = await child.request({"call": [marker]}, timeout=15)
        assert reply.message is None and not reply.timed_out
    assert child.exit_info is not None and child.exit_info.limit == "processes", child.exit_info
    assert wait_gone(marker) == []


async def test_hidden_evaluators_secrets_and_parent_code_are_out_of_reach(
    warm: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-never-in-a-child")
    root = package_root()
    targets = [
        str(root / "stop_tui" / "errors.py"),
        str(root / "stop_tui" / "tasks" / "__init__.py"),
        str(root / "tasks"),
        str(root / "stop_tui" / "_data"),
    ]
    child = await start(
        warm,
        """
        import os
        def attack(paths):
            out = {"env": sorted(os.environ)}
            for path in paths:
                try:
                    if os.path.isdir(path):
                        out[path] = os.listdir(path)
                    else:
                        out[path] = open(path).read()[:20]
                except OSError as exc:
                    out[path] = "refused: " + type(exc).__name__
            return out
        """,
    )
    async with child:
        reply = await call(child, targets)
    assert reply is not None, child.exit_info
    out = reply["ok"]
    assert "OPENAI_API_KEY" not in out.pop("env")
    for path, value in out.items():
        assert isinstance(value, str) and value.startswith("refused"), (path, value)


@pytest.mark.parametrize("disable", [("userns",), ("userns", "bwrap")])
async def test_without_pid_namespaces_orphans_still_die(disable: tuple[str, ...]) -> None:
    marker = new_marker()
    async with Sandbox(unsafe=True, disable=disable) as sb:
        child = await start(
            sb,
            """
            import os, time
            def attack(marker):
                pid = os.fork()
                if pid == 0:
                    os.setsid()
                    if os.fork() == 0:
                        _mark(marker)
                        time.sleep(600)
                    os._exit(0)
                os.waitpid(pid, 0)
                time.sleep(0.2)
                return "orphan started"
            """,
            Limits(max_processes=4),
        )
        async with child:
            reply = await call(child, marker)
            assert reply is not None and reply["ok"] == "orphan started", reply
            assert len(marked(marker)) == 1
        assert wait_gone(marker) == []


@pytest.mark.skipif(platform.machine() != "x86_64", reason="raw clone number is x86_64")
@pytest.mark.parametrize("max_processes", [1, 4])
async def test_no_new_namespaces_even_when_forks_are_allowed(
    warm: Sandbox, max_processes: int
) -> None:
    child = await start(
        warm,
        """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        CLONE_NEWUSER, SIGCHLD = 0x10000000, 17
        def attack():
            out = []
            if libc.unshare(CLONE_NEWUSER) == 0:
                out.append("unshare worked")
            else:
                out.append(os.strerror(ctypes.get_errno()))
            pid = libc.syscall(56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)  # raw clone (x86_64)
            if pid == 0:
                os._exit(0)
            out.append("clone worked" if pid > 0 else os.strerror(ctypes.get_errno()))
            return out
        """,
        Limits(max_processes=max_processes),
    )
    async with child:
        reply = await call(child)
    assert reply is not None, child.exit_info
    assert reply["ok"] == ["Operation not permitted"] * 2, reply


async def test_file_size_and_open_file_limits(warm: Sandbox) -> None:
    child = await start(
        warm,
        """
        import os
        def attack():
            out = {}
            try:
                with open("big.bin", "wb") as f:
                    for _ in range(40):
                        f.write(b"x" * (1 << 20))
                out["big"] = "written"
            except OSError as exc:
                out["big"] = os.strerror(exc.errno)
            out["size"] = os.path.getsize("big.bin")
            handles = []
            try:
                for i in range(1000):
                    handles.append(open(f"f{i}", "w"))
                out["files"] = "all open"
            except OSError as exc:
                out["files"] = os.strerror(exc.errno)
            out["opened"] = len(handles)
            return out
        """,
        Limits(max_file_bytes=4_000_000, max_open_files=32),
    )
    async with child:
        reply = await call(child)
    assert reply is not None, child.exit_info
    out = reply["ok"]
    assert out["big"] == "File too large" and out["size"] <= 4_000_000
    assert out["files"] == "Too many open files" and out["opened"] < 32


async def test_threads_still_work_without_fork(warm: Sandbox) -> None:
    child = await start(
        warm,
        """
        import threading
        import numpy as np
        def attack():
            results = []
            workers = [threading.Thread(target=lambda: results.append(int(np.arange(10).sum())))
                       for _ in range(3)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            return results
        """,
    )
    async with child:
        reply = await call(child)
    assert reply is not None and reply["ok"] == [45, 45, 45], reply
