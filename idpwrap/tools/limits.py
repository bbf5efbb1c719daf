"""Resource limits for buildah's RUN steps where buildah's own defaults cannot be set.

buildah 1.39 running as root sets RLIMIT_NOFILE and RLIMIT_NPROC to 1048576 for every RUN
step, and fails ("setting RLIMIT_NOFILE ... operation not permitted") where the hard limits
are lower and the process lacks CAP_SYS_RESOURCE, as inside most containers and CI runners.
``--ulimit TYPE=H:H`` with our own hard limits is the documented way to give RUN steps other
limits (containers.conf ``default_ulimits`` is the same setting, machine-wide): a RUN step
then gets everything this process may have. Older buildah (1.28) lowers the limits to 1024
files and 32768 processes instead, and an ``--ulimit`` above those then fails the same way, so
the flags go only to a buildah known to raise them. Rootless buildah keeps what it inherits.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable

BUILDAH_ROOT_LIMIT = 1048576  # what buildah 1.39 asks as root for both
RAISES_SINCE = (1, 39)  # the first buildah seen raising them (1.28 lowers them)
NAMES = ("nofile", "nproc")
CAP_SYS_RESOURCE = 24


def _hard_limits() -> dict[str, int]:
    import resource

    found: dict[str, int] = {}
    for name, which in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        hard = resource.getrlimit(which)[1]
        if hard != resource.RLIM_INFINITY:
            found[name] = hard
    return found


def _can_raise_limits() -> bool:
    """CAP_SYS_RESOURCE in this process's effective set (containers usually drop it)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    except (OSError, ValueError):
        pass
    return False


def low_hard_limits(
    euid: int | None = None,
    hard_limits: Callable[[], dict[str, int]] = _hard_limits,
    can_raise: Callable[[], bool] = _can_raise_limits,
) -> dict[str, int]:
    """The hard limits (of nofile, nproc) below what root's buildah asks and that it cannot
    raise; {} when rootless or when it may raise them."""
    if (os.geteuid() if euid is None else euid) != 0 or can_raise():
        return {}
    return {name: hard for name, hard in hard_limits().items() if hard < BUILDAH_ROOT_LIMIT}


def raises_limits(version_text: str) -> bool:
    """Whether a ``buildah --version`` line names a buildah that raises the limits as root."""
    match = re.search(r"version (\d+)\.(\d+)", version_text)
    return bool(match) and (int(match.group(1)), int(match.group(2))) >= RAISES_SINCE


def ulimit_arguments(limits: dict[str, int]) -> list[str]:
    """``{"nofile": 20000}`` -> ``["--ulimit", "nofile=20000:20000"]``, in NAMES order."""
    argv: list[str] = []
    for name in NAMES:
        if name in limits:
            argv += ["--ulimit", f"{name}={limits[name]}:{limits[name]}"]
    return argv


def buildah_ulimits(buildah: str, version: Callable[[str], str] | None = None) -> list[str]:
    """The ``--ulimit`` flags this process must give ``buildah`` (a path); usually none.
    buildah's version is asked only when the limits are low."""
    low = low_hard_limits()
    if not low:
        return []
    return ulimit_arguments(low) if raises_limits((version or _version)(buildah)) else []


def remembered_version(buildah: str, cache_file: str) -> str:
    """``buildah --version``, asked once per buildah binary: the answer is kept in
    ``cache_file`` under the binary's path, inode, size and change time, so a build does not
    start a whole buildah process (50 to 120 ms here) before its real one. A new or replaced
    binary changes the key; an unreadable or torn file only means asking again."""
    from idpwrap.tools import procs

    program = procs.find_program(buildah)
    if program is None:
        return ""
    try:
        info = os.stat(program)
    except OSError:
        return _version(buildah)
    key = f"{program} {info.st_ino} {info.st_size} {info.st_mtime_ns} {info.st_ctime_ns}"
    try:
        with open(cache_file, encoding="utf-8") as handle:
            kept_key, _, kept = handle.read().partition("\n")
        if kept_key == key and kept.strip():
            return kept.strip()
    except (OSError, UnicodeDecodeError):
        pass
    version = _version(program)
    if version.strip():
        temporary = f"{cache_file}.{os.getpid()}.tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(f"{key}\n{version.strip()}\n")
            os.replace(temporary, cache_file)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
    return version


def _version(buildah: str) -> str:
    from idpwrap.errors import ToolNotRun
    from idpwrap.tools import procs

    try:
        return procs.run([buildah, "--version"], timeout=20).stdout
    except ToolNotRun:
        return ""


def describe(limits: dict[str, int], buildah_version: str) -> str:
    shown = ", ".join(f"{name} {limits[name]}" for name in NAMES if name in limits)
    said = (
        f"hard limits {shown} are below the {BUILDAH_ROOT_LIMIT} that buildah 1.39+ sets for"
        " RUN steps as root, and there is no CAP_SYS_RESOURCE to raise them"
    )
    if raises_limits(buildah_version):
        return f"{said}: idpwrap passes {' '.join(ulimit_arguments(limits))}"
    return f"{said}: this buildah does not raise them, so none are passed"
