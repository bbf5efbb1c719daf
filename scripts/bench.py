#!/usr/bin/env python3
"""Benchmarks: idpwrap against the raw tools it drives, measured in the same run.

Each timed figure is the ratio of medians over alternating runs (idpwrap, raw, idpwrap, raw,
...), so that drift of the machine hits both sides alike. Writes BENCHMARKS.md unless --quick.
The cases are benchpush.py, benchbuild.py and benchcache.py; what they share is benchlib.py.

    scripts/bench             # 11 runs of each, rewrites BENCHMARKS.md
    scripts/bench --quick     # 1 run of each, smaller images, writes nothing (the suite runs it)
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchbuild import (
    build_floor,
    build_overhead,
    large_context_rebuilds,
    store_sharing,
    warm_rebuild,
)
from benchcache import registry_cache_layers, registry_cache_whole_build
from benchlib import MIB, Bench, Figure
from benchpush import (
    four_layer_push,
    podman_push,
    push_floor,
    push_overhead,
    repush,
    startup,
    throughput,
)
from benchreport import write_report

FIGURES: list[Callable[[Bench], Figure | list[Figure] | None]] = [
    startup,
    push_overhead,
    push_floor,
    podman_push,
    repush,
    four_layer_push,
    throughput,
    build_overhead,
    build_floor,
    warm_rebuild,
    large_context_rebuilds,
    store_sharing,
    registry_cache_whole_build,
    registry_cache_layers,
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run each, write nothing")
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--only", help="run only the figures whose function name contains this")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    payload = 12 * MIB if args.quick else 120 * MIB
    started = time.perf_counter()
    figures: list[Figure] = []
    # Hex only: podman takes the store's path into an image reference, where a name from
    # tempfile's alphabet (a trailing "_", "___") is refused.
    directory = Path(tempfile.gettempdir()) / f"idpwrap-bench-{secrets.token_hex(6)}"
    directory.mkdir(mode=0o700)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, directory, ignore_errors=True)
        bench = Bench(directory, runs, payload)
        try:
            for measure in FIGURES:
                if args.only and args.only not in measure.__name__:
                    continue
                found = measure(bench)
                for figure in found if isinstance(found, list) else [found] if found else []:
                    figures.append(figure)
                    print(f"{figure.ratio:6.2f}  (goal {figure.goal})  {figure.name}", flush=True)
        finally:
            bench.close()
    if not args.quick and not args.only:
        write_report(figures, bench.facts, runs, time.perf_counter() - started)
        print("wrote BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
