"""Confinement a forked job child applies to itself (stdlib only, Linux).

Order, as done by :func:`confine_self`:

1. ``PR_SET_PDEATHSIG(SIGKILL)``: the job dies with its supervisor.
2. resource limits (``setrlimit``): CPU, address space, data, file size, open
   files, core dumps off, processes (``RLIMIT_NPROC``; ignored for uid 0 on the
   host, which is why seccomp blocks ``fork`` when only one process is allowed).
3. capabilities: bounding set, ambient set and capability sets are emptied.
4. Landlock (``landlock_create_ruleset``/``add_rule``/``restrict_self`` via
   ctypes): read+execute beneath the given read-only paths, full access beneath
   the scratch directory, nothing else; ABI >= 4 also denies every TCP bind and
   connect, ABI >= 6 scopes signals and abstract unix sockets to the job.
5. seccomp BPF (``prctl(PR_SET_SECCOMP)``): ``clone`` into new namespaces,
   ``clone`` without ``CLONE_THREAD``,
   ``fork``/``vfork`` fail with EPERM when processes are not allowed;
   ``clone3`` fails with ENOSYS so glibc falls back to ``clone``; sockets other
   than AF_UNIX, ``kill``/``tgkill`` of other processes, ``ptrace``, mounts,
   namespaces, module/kexec/bpf/perf/keyring/io_uring calls and System V / POSIX
   IPC (``shmget``, ``semget``, ``msgget``, ``mq_open``) fail with EPERM.

Each layer reports whether it was applied; the probe in
:mod:`stop_tui.sandbox.probe` uses the same functions.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
import signal
import struct
from collections.abc import Iterable

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
if hasattr(_libc, "prctl"):  # Linux only; elsewhere every layer reports unavailable
    _libc.prctl.restype = ctypes.c_int
    _libc.prctl.argtypes = [
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_CAPBSET_DROP = 24
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2

CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_THREAD = 0x00010000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x30000000 | 0x40000000

MACHINE = platform.machine()

# Syscall numbers per architecture (only what the filter and Landlock need).
# fmt: off
_SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {
        "clone": 56, "clone3": 435, "fork": 57, "vfork": 58, "socket": 41,
        "socketpair": 53, "kill": 62, "tkill": 200, "tgkill": 234,
        "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297, "pidfd_send_signal": 424,
        "pidfd_open": 434, "pidfd_getfd": 438, "ptrace": 101, "mount": 165, "umount2": 166,
        "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308, "kexec_load": 246,
        "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176,
        "bpf": 321, "perf_event_open": 298, "keyctl": 250, "add_key": 248, "request_key": 249,
        "userfaultfd": 323, "process_vm_readv": 310, "process_vm_writev": 311, "reboot": 169,
        "swapon": 167, "swapoff": 168, "syslog": 103, "acct": 163, "quotactl": 179,
        "open_by_handle_at": 304, "name_to_handle_at": 303, "settimeofday": 164,
        "clock_settime": 227, "adjtimex": 159, "clock_adjtime": 305, "io_uring_setup": 425,
        "io_uring_enter": 426, "io_uring_register": 427, "fanotify_init": 300,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "mount_setattr": 442, "kcmp": 312, "mknod": 133, "mknodat": 259,
        "landlock_create_ruleset": 444, "landlock_add_rule": 445, "landlock_restrict_self": 446,
        "seccomp": 317, "capset": 126, "shmget": 29, "semget": 64, "msgget": 68,
        "mq_open": 240,
    },
    "aarch64": {
        "clone": 220, "clone3": 435, "socket": 198, "socketpair": 199, "kill": 129,
        "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240,
        "pidfd_send_signal": 424, "pidfd_open": 434, "pidfd_getfd": 438, "ptrace": 117,
        "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51, "unshare": 97, "setns": 268,
        "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273,
        "delete_module": 106, "bpf": 280, "perf_event_open": 241, "keyctl": 219, "add_key": 217,
        "request_key": 218, "userfaultfd": 282, "process_vm_readv": 270,
        "process_vm_writev": 271, "reboot": 142, "swapon": 224, "swapoff": 225, "syslog": 116,
        "acct": 89, "quotactl": 60, "open_by_handle_at": 265, "name_to_handle_at": 264,
        "settimeofday": 170, "clock_settime": 112, "adjtimex": 171, "clock_adjtime": 266,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "fanotify_init": 262, "open_tree": 428, "move_mount": 429, "fsopen": 430,
        "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "kcmp": 272,
        "mknodat": 33, "landlock_create_ruleset": 444, "landlock_add_rule": 445,
        "landlock_restrict_self": 446, "seccomp": 277, "capset": 91, "shmget": 194,
        "semget": 190, "msgget": 186, "mq_open": 180,
    },
}
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
SYSCALLS = _SYSCALLS.get(MACHINE, {})

_DENIED = (
    "ptrace", "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "kexec_load",
    "kexec_file_load", "init_module", "finit_module", "delete_module", "bpf", "perf_event_open",
    "keyctl", "add_key", "request_key", "userfaultfd", "process_vm_readv", "process_vm_writev",
    "reboot", "swapon", "swapoff", "syslog", "acct", "quotactl", "open_by_handle_at",
    "name_to_handle_at", "settimeofday", "clock_settime", "adjtimex", "clock_adjtime",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "fanotify_init", "open_tree",
    "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "kcmp", "mknod",
    "mknodat", "tkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_send_signal",
    "pidfd_open", "pidfd_getfd", "shmget", "semget", "msgget", "mq_open",
)
# fmt: on


class ConfineError(OSError):
    """A confinement layer could not be applied."""


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise ConfineError(err, f"{what}: {os.strerror(err)}")
    return result


def _prctl(option: int, a: int = 0, b: int = 0, c: int = 0, d: int = 0) -> int:
    return _libc.prctl(option, a, b, c, d)


# --------------------------------------------------------------------- process


LINUX = hasattr(_libc, "prctl") and platform.system() == "Linux"


def set_pdeathsig() -> None:
    """Die with SIGKILL when the parent (thread) that forked us goes away (Linux only)."""
    if LINUX:
        _check(_prctl(PR_SET_PDEATHSIG, signal.SIGKILL), "prctl(PR_SET_PDEATHSIG)")


def become_subreaper() -> None:
    """Orphans of our descendants reparent to us instead of escaping to init."""
    if LINUX:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)


def unshare_pid_namespace() -> bool:
    """Put our next child into a fresh user+pid namespace; False if the host refuses.

    The next forked child is pid 1 there: when it dies the kernel kills every
    process in the namespace, including ones that called ``setsid()``.
    """
    return LINUX and bool(_libc.unshare(CLONE_NEWUSER | CLONE_NEWPID) == 0)


CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 1 << 14, 1 << 18


def enter_job_namespaces(scratch: str, size_bytes: int, inodes: int) -> None:
    """Give this process (the job's supervisor) and its next child (the job) their
    own user, pid, mount and IPC namespaces, and mount a private tmpfs of at most
    ``size_bytes`` and ``inodes`` files on ``scratch``.

    Nothing a job leaves behind outlives its namespaces: System V IPC objects and
    POSIX message queues belong to the IPC namespace, the scratch files to the
    tmpfs, which the kernel frees when the supervisor exits (no directory walk
    that a hostile tree could stall). Raises ConfineError when the host refuses.
    """
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC
    _check(_libc.unshare(flags) if LINUX else -1, "unshare(user, pid, mount, ipc)")
    for name, text in (
        ("setgroups", "deny"),
        ("uid_map", f"{uid} {uid} 1"),
        ("gid_map", f"{gid} {gid} 1"),
    ):
        fd = os.open(f"/proc/self/{name}", os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    _libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount(private)")
    options = f"size={int(size_bytes)},nr_inodes={int(inodes)},mode=0700".encode()
    _check(
        _libc.mount(b"tmpfs", scratch.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options),
        "mount(scratch tmpfs)",
    )


# --------------------------------------------------------------------- rlimits


def apply_rlimits(
    *,
    cpu_seconds: float,
    memory_bytes: int,
    file_bytes: int,
    open_files: int,
    processes: int,
) -> None:
    cpu = max(1, int(cpu_seconds + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))


# ---------------------------------------------------------------- capabilities


def drop_capabilities() -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable sets."""
    if not LINUX:
        return
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in range(64):
        if _prctl(PR_CAPBSET_DROP, cap) < 0 and ctypes.get_errno() == errno.EINVAL:
            break
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = bytes(24)  # two __user_cap_data_struct of zeros
    hbuf = ctypes.create_string_buffer(header, len(header))
    dbuf = ctypes.create_string_buffer(data, len(data))
    _check(_libc.syscall(SYSCALLS["capset"], hbuf, dbuf), "capset")


def no_new_privs() -> None:
    if not LINUX:
        return
    _check(_prctl(PR_SET_NO_NEW_PRIVS, 1), "prctl(PR_SET_NO_NEW_PRIVS)")


# -------------------------------------------------------------------- Landlock

_LL_EXECUTE = 1 << 0
_LL_WRITE_FILE = 1 << 1
_LL_READ_FILE = 1 << 2
_LL_READ_DIR = 1 << 3
_LL_TRUNCATE = 1 << 14
_LL_IOCTL_DEV = 1 << 15
_LL_FILE_RIGHTS = _LL_EXECUTE | _LL_WRITE_FILE | _LL_READ_FILE | _LL_TRUNCATE | _LL_IOCTL_DEV


def _landlock_fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1  # EXECUTE .. MAKE_SYM (ABI 1)
    if abi >= 2:
        rights |= 1 << 13  # REFER
    if abi >= 3:
        rights |= _LL_TRUNCATE
    if abi >= 5:
        rights |= _LL_IOCTL_DEV
    return rights


def landlock_abi() -> int:
    """The Landlock ABI version the kernel offers (0 when unavailable)."""
    nr = SYSCALLS.get("landlock_create_ruleset")
    if nr is None:
        return 0
    result = _libc.syscall(nr, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return int(result) if result > 0 else 0


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def apply_landlock(read_paths: Iterable[str], write_paths: Iterable[str]) -> int:
    """Restrict this process to reading ``read_paths`` and writing ``write_paths``.

    Returns the ABI used. Also denies TCP bind/connect (ABI >= 4) and scopes
    signals and abstract unix sockets (ABI >= 6). Raises ConfineError when
    Landlock is missing.
    """
    abi = landlock_abi()
    if abi < 1:
        raise ConfineError(errno.ENOSYS, "Landlock is not available")
    fs = _landlock_fs_rights(abi)
    attr = struct.pack("Q", fs)
    if abi >= 4:
        attr += struct.pack("Q", 0b11)  # handled_access_net: BIND_TCP | CONNECT_TCP
    if abi >= 6:
        attr += struct.pack("Q", 0b11)  # scoped: ABSTRACT_UNIX_SOCKET | SIGNAL
    abuf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _check(
        _libc.syscall(
            SYSCALLS["landlock_create_ruleset"],
            abuf,
            ctypes.c_size_t(len(attr)),
            ctypes.c_uint32(0),
        ),
        "landlock_create_ruleset",
    )
    try:
        read_rights = _LL_EXECUTE | _LL_READ_FILE | _LL_READ_DIR
        for path in read_paths:
            _landlock_add(ruleset, path, read_rights)
        for path in write_paths:
            _landlock_add(ruleset, path, fs)
        no_new_privs()
        _check(
            _libc.syscall(SYSCALLS["landlock_restrict_self"], ruleset, ctypes.c_uint32(0)),
            "landlock_restrict_self",
        )
    finally:
        os.close(ruleset)
    return abi


def _landlock_add(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path this host does not have needs no rule
    try:
        if not os.path.isdir(path):
            rights &= _LL_FILE_RIGHTS
        rule = _PathBeneath(rights, fd)
        _check(
            _libc.syscall(
                SYSCALLS["landlock_add_rule"], ruleset, ctypes.c_int(1), ctypes.byref(rule), 0
            ),
            f"landlock_add_rule({path})",
        )
    finally:
        os.close(fd)


# --------------------------------------------------------------------- seccomp

_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_JSET_K = 0x45
_BPF_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000
_OFF_NR, _OFF_ARCH = 0, 4


def _arg_low(i: int) -> int:
    return 16 + 8 * i  # little-endian low word of args[i]


class _Filter:
    def __init__(self) -> None:
        self.code: list[tuple[int, int, int, int]] = []

    def stmt(self, code: int, k: int) -> None:
        self.code.append((code, 0, 0, k))

    def jump(self, code: int, k: int, jt: int, jf: int) -> None:
        self.code.append((code, jt, jf, k))


def seccomp_available() -> bool:
    return MACHINE in _AUDIT_ARCH and os.path.exists("/proc/sys/kernel/seccomp/actions_avail")


def build_seccomp_filter(*, allow_fork: bool, own_pid: int) -> bytes:
    """The BPF program as bytes (array of ``struct sock_filter``)."""
    sc = SYSCALLS
    f = _Filter()
    eperm = _RET_ERRNO | errno.EPERM
    f.stmt(_BPF_LD_W_ABS, _OFF_ARCH)
    f.jump(_BPF_JEQ_K, _AUDIT_ARCH[MACHINE], 1, 0)
    f.stmt(_BPF_RET_K, _RET_KILL_PROCESS)
    f.stmt(_BPF_LD_W_ABS, _OFF_NR)
    if MACHINE == "x86_64":  # x32 syscalls bypass the numbers below: refuse them
        f.jump(0x35, 0x40000000, 0, 1)  # JGE
        f.stmt(_BPF_RET_K, eperm)
    # Simple denials: "if nr == X return EPERM".
    simple: list[tuple[int, int]] = [(sc["clone3"], _RET_ERRNO | errno.ENOSYS)]
    simple += [(sc[name], eperm) for name in _DENIED if name in sc]
    if not allow_fork:
        simple += [(sc[name], eperm) for name in ("fork", "vfork") if name in sc]
    for nr, action in simple:
        f.jump(_BPF_JEQ_K, nr, 0, 1)
        f.stmt(_BPF_RET_K, action)
    # socket/socketpair: only AF_UNIX.
    for name in ("socket", "socketpair"):
        f.jump(_BPF_JEQ_K, sc[name], 0, 4)
        f.stmt(_BPF_LD_W_ABS, _arg_low(0))
        f.jump(_BPF_JEQ_K, 1, 0, 1)  # AF_UNIX
        f.stmt(_BPF_RET_K, _RET_ALLOW)
        f.stmt(_BPF_RET_K, _RET_ERRNO | errno.EAFNOSUPPORT)
    # kill(pid)/tgkill(tgid): only ourselves (pid or tgid == own pid) or our group (0).
    kill_targets = [sc["kill"], sc["tgkill"]]
    if not allow_fork:
        for nr in kill_targets:
            f.jump(_BPF_JEQ_K, nr, 0, 5)
            f.stmt(_BPF_LD_W_ABS, _arg_low(0))
            f.jump(_BPF_JEQ_K, 0, 2, 0)
            f.jump(_BPF_JEQ_K, own_pid & 0xFFFFFFFF, 1, 0)
            f.stmt(_BPF_RET_K, eperm)
            f.stmt(_BPF_RET_K, _RET_ALLOW)
    # clone: never into new namespaces; threads only, unless processes are allowed.
    f.jump(_BPF_JEQ_K, sc["clone"], 0, 4 if allow_fork else 6)
    f.stmt(_BPF_LD_W_ABS, _arg_low(0))
    f.jump(_BPF_JSET_K, CLONE_NAMESPACES, 0, 1)
    f.stmt(_BPF_RET_K, eperm)
    if not allow_fork:
        f.jump(_BPF_JSET_K, CLONE_THREAD, 1, 0)
        f.stmt(_BPF_RET_K, eperm)
    f.stmt(_BPF_RET_K, _RET_ALLOW)
    f.stmt(_BPF_RET_K, _RET_ALLOW)
    return b"".join(struct.pack("HBBI", *ins) for ins in f.code)


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def apply_seccomp(*, allow_fork: bool) -> None:
    if not seccomp_available():
        raise ConfineError(errno.ENOSYS, f"seccomp filter not supported on {MACHINE}")
    program = build_seccomp_filter(allow_fork=allow_fork, own_pid=os.getpid())
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    no_new_privs()
    _check(
        _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0),
        "prctl(PR_SET_SECCOMP)",
    )
