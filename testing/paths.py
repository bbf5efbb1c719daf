"""Where things are: the repository, its virtual environment, and this machine's static busybox."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX = Path(shutil.which("busybox") or "/usr/bin/busybox")


def python_script_header() -> str:
    """The first lines of an executable Python script run by this venv's Python, from any
    checkout: a ``#!`` line cannot hold a path with a space (the kernel splits it there), so
    ``/bin/sh`` starts it and hands it over. The second line is a shell ``exec`` and, to
    Python, a harmless expression of three adjacent string literals."""
    python = sys.executable.replace("'", "'\\''")
    return f"#!/bin/sh\n'exec' '{python}' \"$0\" \"$@\"\n"
