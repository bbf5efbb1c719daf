"""The build cache in a registry (issue 18), for scripts/bench: a fresh CI runner's build
with a filled cache over a fresh runner's cold build, for a context whose RUN step takes real
time (a CPU-bound loop, then random bytes).

Each run uses new content (so no earlier run's entries help) and new runners: a HOME, a store
and a buildah storage (XDG_DATA_HOME) of their own, as a CI job starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchlib import Bench, Figure

EXPENSIVE = (
    'RUN ["/bin/busybox", "sh", "-c", "i=0; while [ $i -lt {loops} ]; do i=$((i+1)); done;'
    ' /bin/busybox head -c 1048576 /dev/urandom > /random"]\n'
)


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


def _build(bench: Bench, context: Path, env: dict[str, str], cache: str | None) -> float:
    idpwrap = str(Path(sys.executable).parent / "idpwrap")
    argv = [idpwrap, "build", "-q", str(context), "-t", "cached:v1"]
    if cache:
        argv += ["--cache", f"{bench.registry.host}/giteaadmin/{cache}", "--cert-dir",
                 str(bench.certs)]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def measure(bench: Bench, change_after_run: bool) -> tuple[list[float], list[float]]:
    loops = 600_000 if bench.runs > 1 else 100_000
    kind = "layers" if change_after_run else "whole"
    cached: list[float] = []
    cold: list[float] = []
    for run in range(bench.runs):
        stamp = f"{kind}-{run}-{time.monotonic_ns()}"
        context = _context(bench.work / f"cache-{stamp}", loops)
        cold.append(_build(bench, context, _runner(bench, f"cold-{stamp}"), None))
        _build(bench, context, _runner(bench, f"fill-{stamp}"), f"bench-{stamp}")
        if change_after_run:
            (context / "app.txt").write_text("two\n")
        cached.append(_build(bench, context, _runner(bench, f"hit-{stamp}"), f"bench-{stamp}"))
    return cached, cold


def registry_cache_whole_build(bench: Bench) -> Figure:
    cached, cold = measure(bench, change_after_run=False)
    return Figure(
        "fresh runner, unchanged source, filled registry cache (whole-build hit) / cold build",
        cached, cold, "<= 0.10",
    )  # fmt: skip


def registry_cache_layers(bench: Bench) -> Figure:
    cached, cold = measure(bench, change_after_run=True)
    return Figure(
        "fresh runner, a file changed after the expensive RUN, filled registry cache / cold build",
        cached, cold, "<= 0.35",
    )  # fmt: skip
