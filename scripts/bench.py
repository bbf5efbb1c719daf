#!/usr/bin/env python3
"""Benchmarks: idpwrap against the raw tools it drives, measured in the same run.

Each figure is a ratio of medians over alternating runs (idpwrap, raw, idpwrap, raw, ...), so
that drift of the machine hits both sides alike. Writes BENCHMARKS.md unless --quick.

    scripts/bench             # 7 runs of each, rewrites BENCHMARKS.md
    scripts/bench --quick     # 1 run of each, writes nothing (the test suite runs this)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import localregistry  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
IDPWRAP = str(VENV_BIN / "idpwrap")
PUSH_PAYLOAD_BYTES = 120 * 1024 * 1024  # shared libraries: about 40 MB once gzipped


@dataclass
class Figure:
    name: str
    ours: list[float]
    theirs: list[float]
    goal: str
    theirs_label: str

    @property
    def ratio(self) -> float:
        return statistics.median(self.ours) / statistics.median(self.theirs)


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def alternate(runs: int, ours: Callable[[], float], theirs: Callable[[], float]) -> tuple[list[float], list[float]]:
    mine, raw = [], []
    for _ in range(runs):
        mine.append(ours())
        raw.append(theirs())
    return mine, raw


def startup(runs: int) -> Figure:
    python = str(VENV_BIN / "python3")
    ours, theirs = alternate(
        max(runs, 5) * 4,
        lambda: timed([IDPWRAP, "--version"]),
        lambda: timed([python, "-c", "pass"]),
    )
    return Figure("`idpwrap --version` / `python3 -c pass`", ours, theirs, "<= 1.5", "python3 -c pass")


def shared_library_context(directory: Path) -> Path:
    """A context of real shared libraries, about PUSH_PAYLOAD_BYTES, FROM scratch."""
    context = directory / "context"
    libs = context / "libs"
    libs.mkdir(parents=True)
    total = 0
    for path in sorted(Path("/usr/lib/x86_64-linux-gnu").rglob("*.so*")):
        if total >= PUSH_PAYLOAD_BYTES:
            break
        if path.is_symlink() or not path.is_file():
            continue
        target = libs / f"{total}-{path.name}"
        shutil.copyfile(path, target)
        total += target.stat().st_size
    shutil.copyfile(shutil.which("busybox") or "/usr/bin/busybox", context / "busybox")
    (context / "Containerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY libs /usr/lib/bench\n"
    )
    return context


def push_overhead(runs: int, work: Path) -> tuple[Figure, dict[str, str]]:
    store = work / "store"
    env = {**os.environ, "IDPWRAP_STORE": str(store)}
    context = shared_library_context(work)
    subprocess.run([IDPWRAP, "build", "-q", "--context", str(context), "--tag", "bench:v1"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    index = json.loads((store / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((store / "blobs/sha256" / manifest_digest.split(":")[1]).read_text())
    compressed = sum(layer["size"] for layer in manifest["layers"])

    registry_dir = work / "registry"
    registry = localregistry.start(registry_dir, "giteaAdmin")
    port, password = registry.port, registry.password
    certs = work / "certs"
    certs.mkdir()
    shutil.copyfile(registry.ca_file, certs / "ca.crt")
    authfile = work / "auth.json"
    token = base64.b64encode(f"giteaAdmin:{password}".encode()).decode()
    authfile.write_text(json.dumps({"auths": {registry.host: {"auth": token}}}))
    authfile.chmod(0o600)
    state = {"registry": registry, "storage": 0}

    def fresh_registry() -> None:
        state["registry"].stop()
        state["storage"] += 1
        state["registry"] = localregistry.start(
            registry_dir, "giteaAdmin", password, port=port,
            storage=work / f"storage-{state['storage']}",
        )
        shutil.copyfile(state["registry"].ca_file, certs / "ca.crt")

    def ours() -> float:
        fresh_registry()
        push_env = {**env, "GITEA_USERNAME": "giteaAdmin", "GITEA_TOKEN": password}
        return timed([IDPWRAP, "push", "--progress", "plain", "--registry", registry.url,
                      "--cert-dir", str(certs), "bench:v1"], env=push_env)

    def theirs() -> float:
        fresh_registry()
        return timed(["skopeo", "copy", "--authfile", str(authfile), "--dest-cert-dir", str(certs),
                      "--digestfile", str(work / "digest"), f"oci:{store}:bench:v1",
                      f"docker://{registry.host}/giteaadmin/bench:v1"])

    try:
        mine, raw = alternate(runs, ours, theirs)
    finally:
        state["registry"].stop()
    facts = {"push image": f"{compressed / 1e6:.1f} MB compressed in {len(manifest['layers'])} layers"}
    figure = Figure("`idpwrap push` / raw `skopeo copy`, fresh registry storage each run",
                    mine, raw, "<= 1.10", "skopeo copy")
    return figure, facts


def tool_version(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not found"


def write_report(figures: list[Figure], facts: dict[str, str], runs: int) -> None:
    lines = [
        "# Benchmarks",
        "",
        "Written by `scripts/bench` (the command that produced every figure here); each figure is"
        " the ratio of medians over alternating runs in the same invocation.",
        "",
        "| figure | idpwrap (median) | raw (median) | ratio | goal |",
        "| --- | --- | --- | --- | --- |",
    ]
    for figure in figures:
        lines.append(
            f"| {figure.name} | {statistics.median(figure.ours) * 1000:.1f} ms |"
            f" {statistics.median(figure.theirs) * 1000:.1f} ms | {figure.ratio:.2f} | {figure.goal} |"
        )
    lines += ["", "## Machine", ""]
    machine = {
        "runs per side": str(runs),
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "buildah": tool_version(["buildah", "--version"]),
        "skopeo": tool_version(["skopeo", "--version"]),
        "docker-registry": tool_version(["docker-registry", "--version"]),
        **facts,
    }
    lines += [f"- {key}: {value}" for key, value in machine.items()]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run each, write nothing")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    with tempfile.TemporaryDirectory(prefix="idpwrap-bench-") as directory:
        work = Path(directory)
        figures = [startup(runs)]
        push, facts = push_overhead(runs, work)
        figures.append(push)
    for figure in figures:
        print(f"{figure.ratio:6.2f}  (goal {figure.goal})  {figure.name}")
    if not args.quick:
        write_report(figures, facts, runs)
        print("wrote BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
