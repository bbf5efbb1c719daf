"""idpwrap run as another user (nobody, a user a test creates), from any checkout.

The checkout and its venv may sit where that user cannot enter: under /root, a 0700 home or a
``mktemp -d`` directory. So the user runs a world-readable copy: this checkout's ``idpwrap``
package and the installed distributions it depends on (from the venv, found through their
metadata), under a 0755 directory in /tmp, with an interpreter that user may execute.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from testing.paths import DEFAULT_PATH, ROOT

# A requirement's name: "rich (>=13)", "jaraco.classes", "SecretStorage>=3.2; ...".
REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class ReadableInstall:
    """A copy of idpwrap and its dependencies that every user may read, under ``lib``."""

    lib: Path

    def environment(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.lib), "PYTHONDONTWRITEBYTECODE": "1"}

    def argv(self, python: str, *args: str) -> list[str]:
        return [python, "-m", "idpwrap", *args]


def dependencies(name: str = "idpwrap") -> list[importlib.metadata.Distribution]:
    """The installed distributions ``name`` needs, transitively; extras left out, and a
    requirement for another platform (not installed here) skipped."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    pending = [
        requirement
        for requirement in importlib.metadata.distribution(name).requires or []
        if "extra ==" not in requirement
    ]
    while pending:
        match = REQUIREMENT_NAME.match(pending.pop())
        if match is None:
            continue
        key = re.sub(r"[-_.]+", "-", match.group(1)).lower()
        if key in seen:
            continue
        try:
            distribution = importlib.metadata.distribution(key)
        except importlib.metadata.PackageNotFoundError:
            continue  # e.g. pywin32-ctypes, for Windows only
        seen[key] = distribution
        pending += [req for req in distribution.requires or [] if "extra ==" not in req]
    return list(seen.values())


def readable_install(base: Path) -> ReadableInstall:
    """Copy idpwrap (from this checkout) and its dependencies into ``base/lib``, readable by
    all; ``base`` itself is made 0755, so it must be a directory of the caller's own."""
    lib = base / "lib"
    shutil.copytree(ROOT / "idpwrap", lib / "idpwrap", ignore=shutil.ignore_patterns("__pycache__"))
    for distribution in dependencies():
        root = Path(str(distribution.locate_file("")))
        for file in distribution.files or []:
            relative = Path(str(file))
            if relative.is_absolute() or ".." in relative.parts or "__pycache__" in relative.parts:
                continue  # scripts in bin/, byte code
            source = root / relative
            if source.is_file():
                target = lib / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
    for path in (base, lib, *lib.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return ReadableInstall(lib)


def make_readable_install() -> ReadableInstall:
    """A fresh readable install in its own directory under /tmp (not $TMPDIR, which may be
    private); the caller removes ``lib.parent`` when done."""
    return readable_install(Path(tempfile.mkdtemp(prefix="idpwrap-readable-", dir="/tmp")))


def usable_python(uid: int, gid: int, install: ReadableInstall | None = None) -> str | None:
    """An interpreter (3.11 or later) the user may run, the venv's own version first (its
    compiled extensions match it); with ``install``, one that imports idpwrap from it."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        os.path.realpath(sys.executable),
        f"/usr/bin/{version}",
        f"/usr/local/bin/{version}",
        "/usr/bin/python3",
    ]
    check = "import sys; assert sys.version_info >= (3, 11)"
    if install is not None:
        check += "; import idpwrap.cli, yaml, rich"
    env = {"PATH": DEFAULT_PATH, **(install.environment() if install else {})}
    for candidate in dict.fromkeys(candidates):
        if not os.path.exists(candidate):
            continue
        done = subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", candidate, "-c",
             check],
            capture_output=True, env=env, cwd="/", check=False,
        )  # fmt: skip
        if done.returncode == 0:
            return candidate
    return None
