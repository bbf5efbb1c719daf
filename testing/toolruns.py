"""Which outside tool a command started, seen for real: a wrapper of the same name earlier on
the command's PATH writes its first argument (the verb: ``copy``, ``inspect``) to a log, then
runs the real tool with the same arguments and exits with its code."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def logging_wrapper(base: Path, tool: str = "skopeo", pause: bool = False) -> Path:
    """A directory holding ``tool``: logs each run to base/<tool>-runs, then runs the real one;
    with ``pause``, after a successful ``copy`` it creates base/copied and waits for a line on
    the FIFO base/go (a racing push made deterministic)."""
    real = shutil.which(tool)
    assert real, f"{tool} is not installed"
    directory = base / "wrapper"
    directory.mkdir(parents=True, exist_ok=True)
    script = [
        "#!/bin/sh",
        f'echo "$1" >> "{base}/{tool}-runs"',
        f'"{real}" "$@"',
        "code=$?",
    ]
    if pause:
        os.mkfifo(base / "go")
        script += [
            'if [ "$1" = copy ] && [ "$code" = 0 ]; then',
            f'  : > "{base}/copied"; read line < "{base}/go"',
            "fi",
        ]
    script.append('exit "$code"')
    wrapper = directory / tool
    wrapper.write_text("\n".join(script) + "\n")
    wrapper.chmod(0o755)
    return directory


def started(base: Path, tool: str = "skopeo") -> list[str]:
    """The verbs the wrapper in ``base`` saw, in order."""
    log = base / f"{tool}-runs"
    return log.read_text().split() if log.exists() else []


def on_path(directory: Path) -> dict[str, str]:
    """The environment entry that puts the wrapper's directory first on PATH."""
    return {"PATH": f"{directory}{os.pathsep}{os.environ.get('PATH', '')}"}
