"""Per-job isolation: no job can reach, starve or kill another (real confined children).

Two hostile jobs run side by side (and one after the other): System V shared
memory, message queues and semaphores, POSIX message queues, abstract and
pathname unix sockets and ``/dev/shm`` must not carry anything from one to the
other; a job that fills its scratch (bytes or inodes) or leaves a tree built to
stall its clean-up (deep, wide, FIFOs, no permissions, symlinks out) must not
make a concurrent or later job fail, nor delay its own status report.
"""

from __future__ import annotations

import asyncio
import errno
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from stop_tui.sandbox import Child, Limits, Sandbox, codec
from stop_tui.sandbox.guest.zygote import remove_tree
from stop_tui.sandbox.layers import probe

pytestmark = pytest.mark.skipif(
    not probe().full, reason="the full isolation stack is not available"
)

IPC = r"""
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
KEY = 0x5709

def _try(fn):
    try:
        result = fn()
    except OSError as exc:
        return "failed: " + errno.errorcode.get(exc.errno, str(exc.errno))
    return result

def _c(result):
    if result == -1:
        raise OSError(ctypes.get_errno(), "")
    return "ok"

def _mq(flags):
    libc.mq_open.restype = ctypes.c_int
    return _c(libc.mq_open(b"/stop-tui-mq", flags, 0o600, None))

_keep = []

def make():
    out = {}
    out["shm"] = _try(lambda: _c(libc.shmget(KEY, 4096, 0o1000 | 0o666)))
    out["msg"] = _try(lambda: _c(libc.msgget(KEY, 0o1000 | 0o666)))
    out["sem"] = _try(lambda: _c(libc.semget(KEY, 1, 0o1000 | 0o666)))
    out["mq"] = _try(lambda: _mq(os.O_CREAT | os.O_RDWR))
    def abstract():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind("\0stop-tui-abstract")
        s.listen(1)
        _keep.append(s)
        return "ok"
    out["abstract"] = _try(abstract)
    def path_socket():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(os.path.abspath("sock"))
        s.listen(1)
        _keep.append(s)
        return "ok"
    out["path_socket"] = _try(path_socket)
    def devshm():
        with open("/dev/shm/stop-tui-note", "w") as f:
            f.write("x")
        return "ok"
    out["devshm"] = _try(devshm)
    return out

def find(sock_path):
    out = {}
    out["shm"] = _try(lambda: _c(libc.shmget(KEY, 0, 0)))
    out["msg"] = _try(lambda: _c(libc.msgget(KEY, 0)))
    out["sem"] = _try(lambda: _c(libc.semget(KEY, 0, 0)))
    out["mq"] = _try(lambda: _mq(os.O_RDWR))
    def connect(address):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(address)
        return "ok"
    out["abstract"] = _try(lambda: connect("\0stop-tui-abstract"))
    out["path_socket"] = _try(lambda: connect(sock_path))
    out["devshm"] = _try(lambda: open("/dev/shm/stop-tui-note").read() and "ok")
    return out

def attack(op, arg=None):
    return make() if op == "make" else find(arg)
"""

FILL = r"""
import os
def attack(op, arg=None):
    if op == "fill":
        written, files, codes = 0, 0, []
        try:
            with open("big", "wb") as f:
                while written < (1 << 30):
                    f.write(b"x" * (1 << 20))
                    f.flush()
                    written += 1 << 20
        except OSError as exc:
            codes.append(exc.errno)
        try:
            while files < 10**6:
                open(f"f{files}", "w").close()
                files += 1
        except OSError as exc:
            codes.append(exc.errno)
        return [written, files, codes]
    if op == "work":
        with open("data", "wb") as f:
            f.write(b"y" * (1 << 20))
        for i in range(100):
            with open(f"n{i}", "w") as f:
                f.write(str(i))
        return sum(1 for _ in os.scandir(".")) + os.path.getsize("data")
    if op == "sleep":
        import time
        time.sleep(arg)
        return "awake"
"""

TANGLE = r"""
import os, socket, stat
def attack(outside):
    made = {"depth": 0, "files": 0, "refused": []}
    tricks = {
        "fifo": lambda: os.mkfifo("fifo"),  # seccomp refuses mknod: recorded, not needed
        "symlink out": lambda: os.symlink(outside, "out"),  # clean-up must not follow it
        "symlink loop": lambda: os.symlink("loop", "loop"),
        "socket": lambda: socket.socket(socket.AF_UNIX).bind(os.path.abspath("sock")),
        "hard link": lambda: (open("h", "w").close(), os.link("h", "h2")),
    }
    for name, trick in tricks.items():
        try:
            trick()
        except OSError:
            made["refused"].append(name)
    os.mkdir("wide")
    try:
        for i in range(8000):  # (the private tmpfs allows 20000 inodes in this test)
            open(f"wide/{i}", "w").close()
            made["files"] += 1
    except OSError:
        pass
    os.mkdir("deep")
    os.chdir("deep")
    try:
        for i in range(5000):  # deeper than PATH_MAX and Python's recursion limit
            os.mkdir("d")
            os.chdir("d")
            made["depth"] += 1
    except OSError:
        pass
    os.chmod(".", 0)
    os.chdir(os.environ["HOME"])  # the job's scratch
    os.chmod("wide", 0)
    os.chmod("deep", 0)
    return made
"""


async def start(sb: Sandbox, source: str, limits: Limits | None = None) -> Child:
    payload = {"source": textwrap.dedent(source), "entry_point": "attack"}
    child = await sb.spawn("solution", payload, limits)
    assert await child.recv(30) == {"ready": True}, child.exit_info
    return child


async def ask(child: Child, *args: Any, timeout: float = 60) -> Any:
    reply = await child.request({"call": codec.encode(list(args))}, timeout=timeout)
    assert reply.message is not None and "ok" in reply.message, (reply, child.exit_info)
    return reply.message["ok"]


@pytest.mark.parametrize(
    "disable",
    [(), ("seccomp",), ("userns",)],
    ids=["full", "namespaces-alone", "seccomp-alone"],
)
@pytest.mark.parametrize("zygote", [True, False], ids=["zygote", "cold"])
async def test_no_ipc_between_concurrent_jobs(zygote: bool, disable: tuple[str, ...]) -> None:
    if disable and not zygote:
        pytest.skip("the layers alone are checked with the zygote")
    async with Sandbox(zygote=zygote, unsafe=bool(disable), disable=disable) as sb:
        maker = await start(sb, IPC)
        finder = await start(sb, IPC)
        async with maker, finder:
            made = await ask(maker, "make")
            found = await ask(finder, "find", "/scratch/sock")
    assert made["path_socket"] == "ok" and made["abstract"] == "ok", made
    if not disable:  # seccomp refuses the System V and POSIX IPC calls outright
        assert all(made[k] == "failed: EPERM" for k in ("shm", "msg", "sem", "mq")), made
    if disable == ("seccomp",):  # the job's own IPC namespace: it makes them, no one else sees
        assert all(made[k] == "ok" for k in ("shm", "msg", "sem")), made
    assert made["devshm"].startswith("failed"), made
    assert all(str(value).startswith("failed") for value in found.values()), found


async def test_a_job_filling_its_scratch_starves_no_one() -> None:
    small = Limits(scratch_mb=8, scratch_files=300)
    async with Sandbox() as sb:
        hog = await start(sb, FILL, small)
        bystander = await start(sb, FILL)
        async with hog:
            written, files, codes = await ask(hog, "fill")
            # a concurrent job (the hog still holds its full scratch) and a later one work
            assert await ask(bystander, "work") == (1 << 20) + 101
            await bystander.kill()
        later = await start(sb, FILL, small)
        async with later:
            assert await ask(later, "work") == (1 << 20) + 101
    assert written <= 8 << 20 and files < 300, (written, files)
    assert codes == [errno.ENOSPC, errno.ENOSPC], codes
    assert hog.exit_info is not None and hog.exit_info.error is None, hog.exit_info


@pytest.mark.parametrize("disable", [(), ("userns",)], ids=["private-tmpfs", "host-scratch"])
async def test_a_clean_up_bomb_kills_no_innocent_job(
    disable: tuple[str, ...], tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("mine")
    limits = Limits(scratch_files=20_000, scratch_mb=64, wall_time=120)
    async with Sandbox(unsafe=bool(disable), disable=disable) as sb:
        innocent = await start(sb, FILL)
        bomb = await start(sb, TANGLE, limits)
        made = await ask(bomb, str(outside), timeout=100)
        sleeping = asyncio.ensure_future(ask(innocent, "sleep", 1.0))
        await asyncio.sleep(0.2)  # the innocent job is in the middle of a call
        info = await bomb.kill()
        assert await sleeping == "awake"
        assert await ask(innocent, "work") == (1 << 20) + 101
        await innocent.kill()
        host_scratch = sb._host_scratch
    assert made["depth"] == 5000 and made["files"] == 8000, made
    assert info.error is None and info.stopped, info  # reported, no supervisor reset
    assert innocent.exit_info is not None and innocent.exit_info.error is None
    assert (outside / "keep").read_text() == "mine"
    if host_scratch is not None:
        assert not os.path.exists(host_scratch)


def test_remove_tree_is_bounded_and_follows_nothing(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("mine")
    root = tmp_path / "scratch"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    for _ in range(3000):  # deeper than Python's recursion limit and PATH_MAX
        os.mkdir("d", dir_fd=fd)
        fd, old = os.open("d", os.O_RDONLY, dir_fd=fd), fd
        os.close(old)
    os.close(fd)
    os.mkfifo(root / "fifo")
    (root / "out").symlink_to(outside)
    (root / "d" / "f").write_text("x")
    os.chmod(root / "d" / "f", 0)
    os.chmod(root / "d", 0)
    assert remove_tree(str(root), 60) is True
    assert not root.exists() and (outside / "keep").read_text() == "mine"
    # A deadline that has passed gives up at once instead of walking on.
    wide = tmp_path / "wide"
    wide.mkdir()
    for i in range(50):
        (wide / str(i)).mkdir()
    assert remove_tree(str(wide), -1) is False


async def test_no_secret_environment_reaches_a_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-in-a-child")
    monkeypatch.setenv("STOP_TUI_API_KEY", "never-in-a-child")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "never-in-a-child")
    async with Sandbox() as sb:
        child = await start(
            sb,
            """
            import os
            def attack():
                out = dict(os.environ)
                for path in ("/proc/self/environ", "/proc/1/environ"):
                    try:
                        out[path] = open(path, "rb").read().decode("latin-1")
                    except OSError as exc:
                        out[path] = "refused"
                return out
            """,
        )
        async with child:
            env = await ask(child)
    assert "never-in-a-child" not in repr(env)
    assert not [key for key in env if key.startswith(("OPENAI", "STOP_TUI", "AWS"))], env
