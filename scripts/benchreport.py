"""BENCHMARKS.md from scripts/bench's figures: a section per toolchain, others kept."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def tool_version(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not found"


def short_version(command: list[str]) -> str:
    """``buildah version 1.39.3 (image-spec ...)`` -> ``buildah 1.39.3``."""
    return tool_version(command).split(" (")[0].replace(" version ", " ")


def toolchain_name() -> str:
    """``Debian GNU/Linux 13 (trixie)``: the section of the figures this run rewrites."""
    try:
        with open("/etc/os-release") as release:
            for line in release:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


HEADER = [
    "# Benchmarks",
    "",
    "Produced by `scripts/bench` (the command behind every figure here) on each toolchain of"
    " the test matrix: on the host (Debian 12) and inside the Debian 13 environment"
    " (`scripts/env trixie scripts/bench`); a run rewrites its own toolchain's section only."
    " Each ratio is idpwrap's median over the raw tool's median, measured in alternating runs"
    " of the same invocation, each push to fresh registry storage unless it says otherwise.",
]
SECTION = re.compile(r"<!-- toolchain: (.+?) -->\n.*?<!-- end of toolchain -->\n", re.S)
# What the figures mean and where the time goes: written by hand below the sections and kept
# as it is by every run.
EXPLANATION = re.compile(r"<!-- explanation -->\n.*", re.S)


def write_report(figures: list[Any], facts: dict[str, str], runs: int, seconds: float) -> None:
    name = toolchain_name()
    lines = [
        f"<!-- toolchain: {name} -->",
        f"## {name}: {short_version(['buildah', '--version'])},"
        f" {short_version(['skopeo', '--version'])}, Python {platform.python_version()}",
        "",
        "| figure | idpwrap (median) | compared with (median) | ratio | goal |",
        "| --- | --- | --- | --- | --- |",
    ]
    for figure in figures:
        lines.append(
            f"| {figure.name} | {figure.shown(figure.ours)} | {figure.shown(figure.theirs)} |"
            f" {figure.ratio:.2f} | {figure.goal} |"
        )
    notes = [note for figure in figures for note in figure.notes]
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    lines += ["", "Machine:", ""]
    machine = {
        "runs per side": str(runs),
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "buildah": tool_version(["buildah", "--version"]),
        "skopeo": tool_version(["skopeo", "--version"]),
        "podman": tool_version(["podman", "--version"]),
        "docker-registry": tool_version(["docker-registry", "--version"]),
        **facts,
        "whole run": f"{seconds:.0f} s",
    }
    lines += [f"- {key}: {value}" for key, value in machine.items()]
    lines += ["<!-- end of toolchain -->", ""]
    report = ROOT / "BENCHMARKS.md"
    old = report.read_text() if report.exists() else ""
    sections = {match.group(1): match.group(0) for match in SECTION.finditer(old)}
    sections[name] = "\n".join(lines)
    body = "\n".join(sections[key] for key in sorted(sections))
    explanation = EXPLANATION.search(old)
    if explanation:
        body += "\n" + explanation.group(0)
    report.write_text("\n".join(HEADER) + "\n\n" + body)
