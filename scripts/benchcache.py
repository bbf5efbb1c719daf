"""The build cache in a registry (issue 18), for scripts/bench: a fresh CI runner's build
with a filled cache over a fresh runner's cold build, for a context whose RUN step takes real
time (a CPU-bound busybox loop calibrated on this machine, then random bytes; no network).

Each run uses new content (so no earlier run's entries help) and new runners: a HOME, a store
and a buildah storage (XDG_DATA_HOME) of their own, as a CI job starts. A runner's time is its
whole ``idpwrap build``, as a CI job waits for it: the whole-build lookup, buildah, the store,
and the cache entries it writes for the next runner.

The layer hits are also measured against raw ``buildah bud --layers --cache-from --cache-to``
with the same cache in a fresh storage of its own, with a change of its own after the
expensive step (so that it, too, runs that step and pushes it): buildah's floor for a layer
hit (each cached step pulled, the new one run and pushed), which no wrapper can go below.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import Bench, Figure, timed

from idpwrap.tools import limits

EXPENSIVE = (
    'RUN ["/bin/busybox", "sh", "-c", "i=0; while [ $i -lt {loops} ]; do i=$((i+1)); done;'
    ' /bin/busybox head -c 1048576 /dev/urandom > /random"]\n'
)
# The expensive step's time alone: the issue asks for RUN steps that take real time, 3 to 5 s
# on this 2-core machine; the quick mode only checks that the harness works.
STEP_SECONDS = 4.0
QUICK_STEP_SECONDS = 0.5


def _loop_seconds(loops: int) -> float:
    busybox = shutil.which("busybox") or "/usr/bin/busybox"
    script = f"i=0; while [ $i -lt {loops} ]; do i=$((i+1)); done"
    return timed([busybox, "sh", "-c", script])


def calibrated_loops(bench: Bench) -> int:
    """Loops of the busybox shell that take about STEP_SECONDS here (the median of three
    timings of a shorter loop, scaled): the same Containerfile is a 4 s step on a fast
    machine and on a slow one."""
    if "cache loops" in bench.facts:
        return int(bench.facts["cache loops"].split()[0])
    target = STEP_SECONDS if bench.runs > 1 else QUICK_STEP_SECONDS
    probe = 100_000
    seconds = statistics.median(_loop_seconds(probe) for _ in range(3))
    loops = max(int(probe * target / max(seconds, 1e-3)), 10_000)
    bench.facts["cache loops"] = (
        f"{loops} iterations of a busybox sh loop in the expensive RUN (about {target:.1f} s"
        f" alone here, calibrated from {probe} in {seconds * 1000:.0f} ms)"
    )
    return loops


def _context(directory: Path, loops: int) -> Path:
    directory.mkdir(parents=True)
    shutil.copy(shutil.which("busybox") or "/usr/bin/busybox", directory / "busybox")
    (directory / "source.txt").write_bytes(os.urandom(16).hex().encode())
    (directory / "app.txt").write_text("one\n")
    (directory / "Containerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY source.txt /source.txt\n"
        + EXPENSIVE.replace("{loops}", str(loops))
        + "COPY app.txt /app.txt\n"
    )
    return directory


def _runner(bench: Bench, name: str) -> dict[str, str]:
    home = bench.work / "runners" / name
    (home / ".run").mkdir(parents=True, mode=0o700)
    return {
        **bench.push_env,
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_RUNTIME_DIR": str(home / ".run"),
        "IDPWRAP_STORE": str(home / "store"),
    }


def _repository(bench: Bench, cache: str) -> str:
    return f"{bench.registry.host}/giteaadmin/{cache}"


def _build(bench: Bench, context: Path, env: dict[str, str], cache: str | None) -> float:
    idpwrap = str(Path(sys.executable).parent / "idpwrap")
    argv = [idpwrap, "build", "-q", str(context), "-t", "cached:v1"]
    if cache:
        argv += ["--cache", _repository(bench, cache), "--cert-dir", str(bench.certs)]
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def _raw_build(bench: Bench, context: Path, name: str, cache: str) -> float:
    """Raw buildah in a fresh storage with the flags idpwrap gives it (the same --timestamp,
    so the same cache keys), reading and writing the same cache repository; into its own
    storage, since buildah 1.28 cannot --cache-to with an oci: destination."""
    root = bench.work / "runners" / name
    repository = _repository(bench, cache)
    return timed(
        ["buildah", "--root", str(root / "storage"), "--runroot", str(root / "run"), "bud",
         "--isolation", "chroot", "--disable-compression=false", "--force-rm", "--pull=false",
         "--layers", "--timestamp", "0", "-q", *limits.buildah_ulimits("buildah"),
         "--cache-from", repository, "--cache-to", repository, "--authfile",
         str(bench.authfile), "--cert-dir", str(bench.certs), "-t", "localhost/raw-cache:v1",
         str(context)],
    )  # fmt: skip


def measure(bench: Bench, change_after_run: bool) -> tuple[list[float], list[float], list[float]]:
    """The hit runner's times, the cold runner's, and (for layer hits) raw buildah's."""
    loops = calibrated_loops(bench)
    kind = "layers" if change_after_run else "whole"
    cached: list[float] = []
    cold: list[float] = []
    raw: list[float] = []
    for run in range(bench.runs):
        stamp = f"{kind}-{run}-{time.monotonic_ns()}"
        context = _context(bench.work / f"cache-{stamp}", loops)
        cold.append(_build(bench, context, _runner(bench, f"cold-{stamp}"), None))
        _build(bench, context, _runner(bench, f"fill-{stamp}"), f"bench-{stamp}")
        if not change_after_run:
            cached.append(_build(bench, context, _runner(bench, f"hit-{stamp}"), f"bench-{stamp}"))
            continue
        # Each side its own change after the expensive step, so each runs the last step and
        # pushes it, and neither finds the other's; which goes first alternates.
        raw_context = bench.work / f"cache-raw-{stamp}"
        shutil.copytree(context, raw_context)
        (context / "app.txt").write_text("two\n")
        (raw_context / "app.txt").write_text("three\n")

        def ours(stamp: str = stamp, context: Path = context) -> None:
            cached.append(_build(bench, context, _runner(bench, f"hit-{stamp}"), f"bench-{stamp}"))

        def theirs(stamp: str = stamp, context: Path = raw_context) -> None:
            raw.append(_raw_build(bench, context, f"raw-{stamp}", f"bench-{stamp}"))

        for side in (theirs, ours) if run % 2 else (ours, theirs):
            side()
    return cached, cold, raw


def registry_cache_whole_build(bench: Bench) -> Figure:
    cached, cold, _ = measure(bench, change_after_run=False)
    return Figure(
        "fresh runner, unchanged source, filled registry cache (whole-build hit) / cold build",
        cached, cold, "<= 0.10",
    )  # fmt: skip


def registry_cache_layers(bench: Bench) -> list[Figure]:
    cached, cold, raw = measure(bench, change_after_run=True)
    return [
        Figure(
            "fresh runner, a file changed after the expensive RUN, filled registry cache / cold"
            " build", cached, cold, "<= 0.35",
        ),
        Figure(
            "the same layer hit, `idpwrap build --cache` / raw `buildah bud --layers"
            " --cache-from --cache-to` (fresh storage, same cache, its own change)", cached, raw,
            "<= 1.05",
        ),
        Figure(
            "floor: raw `buildah bud` layer hit (above) / idpwrap's cold build", raw, cold,
            "the layer-hit ratio's floor",
        ),
    ]  # fmt: skip
