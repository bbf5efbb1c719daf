#!/usr/bin/env python3
"""Where idpwrap's own milliseconds go in a push and a cold build on this toolchain: the
medians of the IDPWRAP_TIMING phase lines over several runs, with raw skopeo's copy, raw
buildah's build and the interpreter's start beside them, as markdown tables on stdout (for
docs/benchmarks.md; scripts/bench measures the ratios).

    scripts/env trixie .venv/bin/python scripts/benchphases.py --runs 7
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import IDPWRAP, MIB, VENV_BIN, Bench, random_context, timed

from idpwrap.tools import limits

PHASE = re.compile(r"^idpwrap: timing:\s+([\d.]+) ms\s+\+([\d.]+) ms\s+(.+)$")


def phases(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """One run's phases (milliseconds since the previous line) by name; repeated names (a
    tool started twice) are numbered."""
    done = subprocess.run(
        argv, env={**env, "IDPWRAP_TIMING": "1"}, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True,
    )  # fmt: skip
    found: dict[str, float] = {}
    for line in done.stderr.splitlines():
        match = PHASE.match(line)
        if match:
            name = match.group(3)
            number = 2
            while name in found:
                name = f"{match.group(3)} ({number})"
                number += 1
            found[name] = float(match.group(2))
    return found


def table(title: str, runs: list[dict[str, float]], beside: dict[str, list[float]]) -> str:
    lines = [f"{title} (medians of {len(runs)} runs)", "", "| phase | ms |", "| --- | --- |"]
    for name in runs[0]:
        values = [run[name] for run in runs if name in run]
        lines.append(f"| {name} | {statistics.median(values):.1f} |")
    for name, values in beside.items():
        lines.append(f"| {name} | {statistics.median(values) * 1000:.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    python = str(VENV_BIN / "python3")
    with tempfile.TemporaryDirectory(prefix="idpwrap-phases-") as directory:
        bench = Bench(Path(directory), args.runs, 0)
        try:
            size = 40 * MIB
            context = random_context(bench.work / "ctx", [size], 'RUN ["/bin/busybox", "true"]\n')
            builds = []
            raw_builds = []
            ulimits = limits.buildah_ulimits("buildah")
            # Unmeasured first: a new buildah storage is emptied for the build time, and
            # buildah's version is asked once and kept beside it.
            subprocess.run([IDPWRAP, "build", "-q", str(context), "-t", "phases:warm"],
                           env=bench.env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
            for run in range(args.runs):
                (context / "layer0.bin").write_bytes(os.urandom(size))
                argv = [IDPWRAP, "build", "-q", str(context), "-t", f"phases:{run}"]
                builds.append(phases(argv, bench.env))
                (context / "layer0.bin").write_bytes(os.urandom(size))
                raw_builds.append(timed(
                    ["buildah", "--root", str(bench.work / "raw"), "--runroot",
                     str(bench.work / "raw-run"), "bud", "--isolation", "chroot",
                     "--disable-compression=false", "--force-rm", "--layers", "-q", "--pull=false",
                     "--timestamp", "0", *ulimits,
                     "-t", f"oci:{bench.work / 'raw-layout'}:{run}", str(context)]
                ))  # fmt: skip
            pushes = []
            raw_pushes = []
            for _ in range(args.runs):
                bench.fresh_registry()
                pushes.append(phases(
                    [IDPWRAP, "push", "--progress", "plain", "--registry", bench.registry.url,
                     "--cert-dir", str(bench.certs), "phases:0", "giteaadmin/phases:v1"],
                    bench.push_env,
                ))  # fmt: skip
                bench.fresh_registry()
                raw_pushes.append(bench.skopeo_push("phases:0", "giteaadmin/phases"))
            bare = [timed([python, "-c", "pass"]) for _ in range(args.runs * 3)]
        finally:
            bench.close()
    print(table("A push of a 40 MiB incompressible image to a fresh docker-registry", pushes,
                {"raw `skopeo copy` of the same image, whole": raw_pushes,
                 "`python3 -c pass` (before the first line)": bare}))  # fmt: skip
    print()
    print(table("A cold build (a new 40 MiB file, COPY and RUN)", builds,
                {"raw `buildah bud`, same options, whole": raw_builds}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
