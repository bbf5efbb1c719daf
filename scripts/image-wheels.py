#!/usr/bin/env python3
"""The wheels idpwrap's own image installs, for the image's Python, whatever Python runs this.

    .venv/bin/python scripts/image-wheels.py DIR PYTHON_VERSION     (e.g. .image/wheels 3.11)

``pip download --python-version`` picks wheels for another interpreter but evaluates the
dependencies' environment markers for this one: on Python 3.13 it leaves out keyring's
``importlib_metadata; python_version < "3.12"``, which bookworm's 3.11 needs. So each wheel is
fetched with ``--no-deps`` and the markers are evaluated here, for the target, until every
requirement has its wheel.
"""

from __future__ import annotations

import platform
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def wheel_name(path: Path) -> str:
    return canonicalize_name(path.name.split("-", 1)[0])


def requirements(wheel: Path, environment: dict[str, str]) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
    found = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = Requirement(line.split(":", 1)[1].strip())
        marker: Marker | None = requirement.marker
        if marker is None or marker.evaluate({**environment, "extra": ""}):
            found.append(requirement)
    return found


def download(directory: Path, python: str, specs: list[str]) -> None:
    machine = platform.machine()
    platforms = [f"manylinux2014_{machine}", f"manylinux_2_17_{machine}",
                 f"manylinux_2_28_{machine}", f"linux_{machine}"]  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--dest", str(directory),
         "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
         *[f"--platform={name}" for name in platforms], *specs],
        check=True, stdout=sys.stderr,
    )  # fmt: skip


def main() -> int:
    directory, python = Path(sys.argv[1]), sys.argv[2]
    if not re.fullmatch(r"3\.\d+", python):
        print(f"image-wheels: {python!r} is not a Python version such as 3.11", file=sys.stderr)
        return 2
    environment = {
        "python_version": python, "python_full_version": f"{python}.0",
        "implementation_name": "cpython", "platform_python_implementation": "CPython",
        "sys_platform": "linux", "os_name": "posix", "platform_system": "Linux",
        "platform_machine": platform.machine(),
    }  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir",
                    str(directory), str(ROOT)], check=True, stdout=sys.stderr)  # fmt: skip
    while True:
        have = {wheel_name(path) for path in directory.glob("*.whl")}
        missing = sorted(
            {
                str(requirement).split(";", 1)[0].strip()
                for wheel in directory.glob("*.whl")
                for requirement in requirements(wheel, environment)
                if canonicalize_name(requirement.name) not in have
            }
        )
        if not missing:
            return 0
        download(directory, python, missing)


if __name__ == "__main__":
    sys.exit(main())
