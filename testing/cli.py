"""Running the idpwrap CLI as a real process with a clean environment, and reading its
``--progress json`` records."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testing.paths import DEFAULT_PATH, VENV_BIN


def idpwrap_command() -> list[str]:
    """How to start the CLI: ``$IDPWRAP_TEST_COMMAND`` (shell words) if set, else the venv's
    console script, else ``python -m idpwrap`` with this interpreter."""
    override = os.environ.get("IDPWRAP_TEST_COMMAND")
    if override:
        return shlex.split(override)
    script = VENV_BIN / "idpwrap"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "idpwrap"]


def python_module_command() -> list[str]:
    """The CLI by the absolute path of an interpreter: works with no PATH at all."""
    override = os.environ.get("IDPWRAP_TEST_COMMAND")
    if override:
        return shlex.split(override)
    python = VENV_BIN / "python"
    return [str(python if python.exists() else Path(sys.executable)), "-m", "idpwrap"]


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("idpwrap: error:")]

    def describe(self) -> str:
        """For assertion messages. Never call it on a run whose output may hold a secret."""
        return (
            f"argv={self.argv[1:]} exit={self.returncode} ({self.seconds:.1f}s)\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


@dataclass
class Cli:
    """The idpwrap command with a clean environment: a private store, HOME and TMPDIR.

    Nothing of the caller's environment leaks in but PATH (no GITEA_TOKEN from a developer's
    shell); credentials go in through ``credentials=`` as GITEA_USERNAME/GITEA_TOKEN, never argv.
    """

    store: Path
    home: Path
    tmpdir: Path
    cwd: Path
    command: list[str] = field(default_factory=idpwrap_command)

    def environment(
        self,
        credentials: tuple[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH") or DEFAULT_PATH,
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.tmpdir),
            "IDPWRAP_STORE": str(self.store),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            # buildah's state (idpwrap's --runroot) in the test's own place, not in /run
            "XDG_RUNTIME_DIR": str(self.runtime_dir()),
            # No desktop keyring here: a lookup must find nothing rather than hang or prompt.
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        }
        if credentials is not None:
            env["GITEA_USERNAME"], env["GITEA_TOKEN"] = credentials
        env.update(extra or {})
        return env

    def runtime_dir(self) -> Path:
        runtime = self.home / ".run"
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        return runtime

    def argv(self, args: Sequence[str], command: Sequence[str] | None = None) -> list[str]:
        return [*(command or self.command), *args]

    def run(
        self,
        *args: str,
        credentials: tuple[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        stdin: str | None = None,
        timeout: float = 120,
    ) -> Result:
        argv = self.argv(args, command)
        started = time.monotonic()
        completed = subprocess.run(
            argv,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=self.environment(credentials, env),
            cwd=self.cwd,
            timeout=timeout,
            check=False,
        )
        return Result(
            argv,
            completed.returncode,
            completed.stdout,
            completed.stderr,
            time.monotonic() - started,
        )

    def popen(
        self,
        *args: str,
        credentials: tuple[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.environment(credentials, env),
            cwd=self.cwd,
        )


def make_cli(base: Path, store: Path) -> Cli:
    for name in ("home", "tmp", "work"):
        (base / name).mkdir(parents=True, exist_ok=True)
    return Cli(store=store, home=base / "home", tmpdir=base / "tmp", cwd=base / "work")


def json_events(stderr: str) -> list[dict[str, Any]]:
    """The ``--progress json`` records among stderr's lines (notices are plain text)."""
    events = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def check_progress_events(events: list[dict], blobs: dict[str, int]) -> None:
    """What every successful ``--progress json`` push must show."""
    kinds = [event["event"] for event in events]
    assert kinds[0] == "start", kinds
    assert kinds.count("complete") == 1, kinds
    assert kinds.count("pushed") == 1, kinds
    assert kinds.index("complete") > max(
        index for index, kind in enumerate(kinds) if kind in ("progress", "blob_done")
    ), kinds
    start = events[0]
    assert start["total"] == sum(blobs.values())
    assert {blob["blob"]: blob["total"] for blob in start["blobs"]} == blobs

    percents = [(event["event"], event["percent"]) for event in events if "percent" in event]
    values = [percent for _, percent in percents]
    assert values == sorted(values), f"percent fell: {values}"
    assert percents[-1] == ("complete", 100), percents
    assert all(percent < 100 for _, percent in percents[:-1]), (
        f"100% before the manifest was written: {percents}"
    )
    complete = events[kinds.index("complete")]
    assert complete["done"] == complete["total"] == sum(blobs.values())
