"""``stop-tui doctor`` names the exact fix for a missing isolation layer on this host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stop_tui.sandbox import hostfix
from stop_tui.sandbox.layers import BWRAP_BLOCKED, Layer

ROOT = Path(__file__).resolve().parents[2]
DEBIAN = {"ID": "debian", "VERSION_ID": "12", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"}
UBUNTU = {"ID": "ubuntu", "ID_LIKE": "debian", "VERSION_ID": "24.04"}
FEDORA = {"ID": "fedora", "VERSION_ID": "40"}


def sysctls(**values: str):
    table = {name.replace("__", "."): value for name, value in values.items()}
    return table.get


def test_bubblewrap_install_command_per_distribution() -> None:
    assert hostfix.fix_for("bwrap", release=DEBIAN, root=False) == (
        "sudo apt-get install bubblewrap"
    )
    assert hostfix.fix_for("bwrap", release=UBUNTU, root=True) == ("apt-get install bubblewrap")
    assert hostfix.fix_for("bwrap", release=FEDORA, root=False) == ("sudo dnf install bubblewrap")
    unknown = hostfix.fix_for("bwrap", release={"PRETTY_NAME": "Gadget OS 1"}, root=False)
    assert "bubblewrap" in unknown and "Gadget OS 1" in unknown


def test_ubuntu_apparmor_restriction_is_named_with_both_fixes() -> None:
    fix = hostfix.fix_for(
        "userns",
        release=UBUNTU,
        sysctl=sysctls(kernel__apparmor_restrict_unprivileged_userns="1"),
        root=False,
    )
    assert "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" in fix
    assert "/etc/sysctl.d/" in fix  # how to keep it after a reboot
    assert "apparmor_parser -r /etc/apparmor.d/bwrap" in fix and "userns," in fix
    # bwrap installed but unable to create namespaces: the same switch, not a reinstall.
    assert (
        hostfix.fix_for(
            "bwrap",
            release=UBUNTU,
            sysctl=sysctls(kernel__apparmor_restrict_unprivileged_userns="1"),
            bwrap_blocked=True,
            root=False,
        )
        == fix
    )


def test_debian_clone_switch_and_zero_namespaces() -> None:
    fix = hostfix.fix_for(
        "userns", release=DEBIAN, sysctl=sysctls(kernel__unprivileged_userns_clone="0"), root=True
    )
    assert fix.startswith("user namespaces are switched off: sysctl -w ")
    assert "kernel.unprivileged_userns_clone=1" in fix and "sudo" not in fix
    fix = hostfix.fix_for(
        "userns", release=DEBIAN, sysctl=sysctls(user__max_user_namespaces="0"), root=False
    )
    assert "sudo sysctl -w user.max_user_namespaces=10000" in fix
    # Nothing visibly off: every switch is named.
    fix = hostfix.fix_for("userns", release=DEBIAN, sysctl=sysctls(), root=False)
    for name in (
        "user.max_user_namespaces",
        "kernel.unprivileged_userns_clone",
        "kernel.apparmor_restrict_unprivileged_userns",
    ):
        assert name in fix


def test_os_release_parsing(tmp_path: Path) -> None:
    path = tmp_path / "os-release"
    path.write_text('# comment\nID=ubuntu\nID_LIKE="debian"\nPRETTY_NAME="Ubuntu 24.04 LTS"\n')
    release = hostfix.read_os_release(path)
    assert release["ID_LIKE"] == "debian" and hostfix.family(release) == "debian"
    assert hostfix.read_os_release(tmp_path / "missing") == {}


def test_doctor_without_bwrap_on_path_says_what_to_install(tmp_path: Path) -> None:
    """A host without bubblewrap (simulated: a PATH that lacks it) is told the exact command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOP_TUI_", "OPENAI_"))}
    env.update(PATH=str(tmp_path), PYTHONPATH=str(ROOT), HOME=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "stop_tui", "doctor", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    sandbox = report["sections"][0]
    bwrap = sandbox["data"]["layers"]["bwrap"]
    assert bwrap["active"] is False and "not found" in bwrap["detail"]
    expected = hostfix.install_bubblewrap(hostfix.read_os_release(), os.geteuid() == 0)
    assert bwrap["fix"] == expected and "bubblewrap" in expected
    assert any(expected in note for note in sandbox["notes"])
    row = next(row for row in sandbox["rows"] if row["name"] == "bubblewrap namespaces")
    assert expected in row["detail"]


def test_the_probe_result_picks_the_bwrap_fix() -> None:
    """Missing or switched off: install it; there but blocked: the user-namespace switch."""
    release = hostfix.read_os_release()
    root = os.geteuid() == 0
    install = hostfix.install_bubblewrap(release, root)
    assert Layer("bwrap", False, "bwrap not found on PATH").fix == install
    assert Layer("bwrap", False, "disabled").fix == install
    blocked = Layer("bwrap", False, f"/usr/bin/bwrap {BWRAP_BLOCKED}")
    assert blocked.fix == hostfix.enable_userns(release, hostfix.read_sysctl, root)
    assert "user.max_user_namespaces" in blocked.fix or "userns" in blocked.fix
