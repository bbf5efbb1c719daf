"""scripts/bench in its quick mode (one run of each figure), so that the harness cannot rot."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def test_bench_quick_mode_measures_every_figure():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if "(goal" in line]
    names = "\n".join(lines)
    for figure in (
        "--version",
        "raw `skopeo copy`",
        "re-push",
        "throughput",
        "raw `buildah bud`",
        "warm rebuild",
        "floor:",
        "file context: one file changed / cold build",
        "file context: unchanged rebuild",
    ):
        assert figure in names, names
    for line in lines:
        assert float(line.split()[0]) > 0
