"""Running the git CLI against one workspace repository, and nothing else.

Every call names the repository explicitly (``GIT_DIR``), so a workspace that
sits inside someone's work tree never reaches the enclosing repository. The
user's global and system git configuration is ignored (signing, hooks paths,
aliases and the like must not change what the store writes), and commits carry
the app's fixed identity; the human's identity goes into decision records.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from stop_tui.errors import UserError

APP_NAME = "stop-tui"
APP_EMAIL = "stop-tui@localhost"


class GitError(RuntimeError):
    """A git command failed (a bug or a damaged repository, not a user mistake)."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"git {' '.join(args)} failed ({returncode}): {self.stderr}")


def git_executable() -> str:
    exe = shutil.which("git")
    if exe is None:
        raise UserError("git is not installed", hint="install git (e.g. 'apt-get install git')")
    return exe


def base_env(git_dir: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_AUTHOR_NAME": APP_NAME,
            "GIT_AUTHOR_EMAIL": APP_EMAIL,
            "GIT_COMMITTER_NAME": APP_NAME,
            "GIT_COMMITTER_EMAIL": APP_EMAIL,
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
        }
    )
    if git_dir is not None:
        env["GIT_DIR"] = str(git_dir)
    return env


class Git:
    """Run git commands in one repository (``git_dir``)."""

    def __init__(self, git_dir: Path, work_tree: Path | None = None) -> None:
        self.git_dir = git_dir
        self.exe = git_executable()
        self.env = base_env(git_dir)
        if work_tree is not None:
            self.env["GIT_WORK_TREE"] = str(work_tree)
        self.cwd = str(work_tree or git_dir)

    def run(
        self,
        args: Sequence[str],
        *,
        input: bytes | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        full_env = self.env if env is None else {**self.env, **env}
        proc = subprocess.run(
            [self.exe, *args],
            input=input,
            capture_output=True,
            env=full_env,
            cwd=self.cwd,
            check=False,
        )
        if check and proc.returncode != 0:
            raise GitError(args, proc.returncode, proc.stderr.decode(errors="replace"))
        return proc

    def out(self, args: Sequence[str], *, input: bytes | None = None) -> str:
        return self.run(args, input=input).stdout.decode()

    def line(self, args: Sequence[str], *, input: bytes | None = None) -> str:
        return self.out(args, input=input).strip()

    def rev(self, spec: str) -> str | None:
        """The object id ``spec`` names, or None."""
        proc = self.run(["rev-parse", "--verify", "--quiet", spec], check=False)
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    def cat_check(self, specs: Iterable[str]) -> list[tuple[str, int] | None]:
        """(type, size) of many objects in ONE process (``cat-file --batch-check``)."""
        specs = _object_names(specs)
        if not specs:
            return []
        out = self.run(
            ["cat-file", "--batch-check"], input="".join(s + "\n" for s in specs).encode()
        ).stdout.decode()
        results: list[tuple[str, int] | None] = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2].isdigit():
                results.append((parts[1], int(parts[2])))
            else:
                results.append(None)
        return results

    def cat_batch(self, specs: Iterable[str]) -> list[bytes | None]:
        """Contents of many objects in ONE process (``cat-file --batch``); None when missing."""
        specs = _object_names(specs)
        if not specs:
            return []
        data = self.run(["cat-file", "--batch"], input="".join(s + "\n" for s in specs).encode())
        out = data.stdout
        results: list[bytes | None] = []
        pos = 0
        for _ in specs:
            nl = out.index(b"\n", pos)
            header = out[pos:nl].decode()
            pos = nl + 1
            if header.endswith(" missing") or header.endswith(" ambiguous"):
                results.append(None)
                continue
            size = int(header.rsplit(" ", 1)[1])
            results.append(out[pos : pos + size])
            pos += size + 1  # content is followed by a newline
        return results


#: The user's git settings that decide whether and how commits are signed; nothing else of
#: the user's configuration reaches the store.
SIGNING_KEYS_RE = r"^(commit\.gpgsign|user\.signingkey|gpg\..*)$"


def user_signing_config() -> list[str]:
    """``-c key=value`` arguments carrying the user's signing settings (global and system
    git config, as plain ``git config`` sees them), or [] when the user does not sign.
    Signing is on when ``commit.gpgsign`` is true or ``user.signingkey`` is set."""
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE")}
    proc = subprocess.run(
        [git_executable(), "config", "--null", "--get-regexp", SIGNING_KEYS_RE],
        capture_output=True,
        env=env,
        cwd="/",  # outside any repository: only the user's global and system settings
        check=False,
    )
    if proc.returncode != 0:
        return []
    settings: dict[str, str] = {}
    for item in proc.stdout.decode(errors="replace").split("\0"):
        key, _, value = item.partition("\n")
        if key:
            settings[key.lower()] = value
    gpgsign = settings.get("commit.gpgsign", "").lower() in ("true", "yes", "on", "1")
    if not gpgsign and not settings.get("user.signingkey"):
        return []
    args: list[str] = []
    for key, value in settings.items():
        if key != "commit.gpgsign":
            args += ["-c", f"{key}={value}"]
    return args


def _object_names(specs: Iterable[str]) -> list[str]:
    """Object names for one ``cat-file`` batch (one a line: a newline in a name is refused)."""
    names = list(specs)
    for name in names:
        if "\n" in name:
            raise ValueError(f"bad object name {name!r}")
    return names
