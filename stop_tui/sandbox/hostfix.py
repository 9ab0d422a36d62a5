"""What to install or enable on this host to get a missing isolation layer.

``stop-tui doctor`` and the refusal to run with weak isolation name one fix per
missing layer; this module makes that fix the exact command for this machine:
the package manager of its distribution (``/etc/os-release``) and the kernel
switch that actually blocks user namespaces here (``/proc/sys``): Ubuntu's
AppArmor restriction (23.10 and later, 24.04 included), Debian's older
``kernel.unprivileged_userns_clone``, or ``user.max_user_namespaces = 0``.

Everything is read from files so that tests can hand in another host's facts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

# Distribution family -> the command that installs bubblewrap.
INSTALL = {
    "debian": "apt-get install bubblewrap",
    "fedora": "dnf install bubblewrap",
    "suse": "zypper install bubblewrap",
    "arch": "pacman -S bubblewrap",
    "alpine": "apk add bubblewrap",
}
# IDs (and ID_LIKE words) of /etc/os-release -> family.
FAMILY = {
    "debian": "debian",
    "ubuntu": "debian",
    "linuxmint": "debian",
    "pop": "debian",
    "fedora": "fedora",
    "rhel": "fedora",
    "centos": "fedora",
    "rocky": "fedora",
    "almalinux": "fedora",
    "opensuse": "suse",
    "suse": "suse",
    "sles": "suse",
    "arch": "arch",
    "manjaro": "arch",
    "alpine": "alpine",
}

APPARMOR_SYSCTL = "kernel.apparmor_restrict_unprivileged_userns"
CLONE_SYSCTL = "kernel.unprivileged_userns_clone"
MAX_USERNS_SYSCTL = "user.max_user_namespaces"
SYSCTL_FILE = "/etc/sysctl.d/60-stop-tui-userns.conf"
APPARMOR_PROFILE = (
    "an AppArmor profile that lets bwrap create user namespaces: /etc/apparmor.d/bwrap with "
    "'abi <abi/4.0>, include <tunables/global> profile bwrap /usr/bin/bwrap "
    "flags=(unconfined) { userns, }', then apparmor_parser -r /etc/apparmor.d/bwrap"
)

GENERIC = {
    "landlock": "use Linux >= 5.13 with Landlock enabled (lsm=landlock)",
    "seccomp": "use a Linux kernel with seccomp filters on x86_64 or aarch64",
    "limits": "use Linux",
}


def read_os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    """The ``KEY=value`` pairs of os-release (empty when there is none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            out[key.strip()] = value.strip().strip("\"'")
    return out


def read_sysctl(name: str) -> str | None:
    """The value of a sysctl (``kernel.x`` is ``/proc/sys/kernel/x``), None if absent."""
    try:
        return Path("/proc/sys", *name.split(".")).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def family(release: Mapping[str, str]) -> str | None:
    """The distribution family (a key of :data:`INSTALL`), None when unknown."""
    words = [release.get("ID", ""), *release.get("ID_LIKE", "").split()]
    for word in words:
        if word.lower() in FAMILY:
            return FAMILY[word.lower()]
    return None


def _as_admin(command: str, root: bool) -> str:
    return command if root else f"sudo {command}"


def install_bubblewrap(release: Mapping[str, str], root: bool) -> str:
    found = family(release)
    if found is None:
        name = release.get("PRETTY_NAME") or "this system"
        return f"install the package 'bubblewrap' with the package manager of {name}"
    return _as_admin(INSTALL[found], root)


def enable_userns(
    release: Mapping[str, str], sysctl: Callable[[str], str | None], root: bool
) -> str:
    """The switch that blocks unprivileged user namespaces here, and how to flip it."""

    def setting(name: str, value: str) -> str:
        return (
            f"{_as_admin(f'sysctl -w {name}={value}', root)} "
            f"(to keep it after a reboot, put '{name}={value}' in {SYSCTL_FILE})"
        )

    fixes = []
    if sysctl(APPARMOR_SYSCTL) == "1":
        fixes.append(
            f"AppArmor blocks unprivileged user namespaces ({APPARMOR_SYSCTL}=1, Ubuntu 23.10+): "
            f"{setting(APPARMOR_SYSCTL, '0')}, or add {APPARMOR_PROFILE}"
        )
    if sysctl(CLONE_SYSCTL) == "0":
        fixes.append(f"user namespaces are switched off: {setting(CLONE_SYSCTL, '1')}")
    if sysctl(MAX_USERNS_SYSCTL) == "0":
        fixes.append(f"user namespaces are limited to 0: {setting(MAX_USERNS_SYSCTL, '10000')}")
    if fixes:
        return "; ".join(fixes)
    return (
        "allow unprivileged user namespaces: "
        f"{setting(MAX_USERNS_SYSCTL, '10000')}; where they exist, also "
        f"{CLONE_SYSCTL}=1 and {APPARMOR_SYSCTL}=0"
    )


def fix_for(
    layer: str,
    *,
    release: Mapping[str, str] | None = None,
    sysctl: Callable[[str], str | None] = read_sysctl,
    bwrap_blocked: bool = False,
    root: bool | None = None,
) -> str:
    """The exact fix for a missing ``layer`` on this host (or on the host described);
    ``bwrap_blocked``: bubblewrap is installed but cannot create its namespaces."""
    release = read_os_release() if release is None else release
    root = (hasattr(os, "geteuid") and os.geteuid() == 0) if root is None else root
    if layer == "bwrap":
        if not bwrap_blocked:
            return install_bubblewrap(release, root)
        return enable_userns(release, sysctl, root)
    if layer == "userns":
        return enable_userns(release, sysctl, root)
    return GENERIC.get(layer, f"see 'stop-tui doctor' for the layer {layer}")
