#!/usr/bin/env python3
"""Benchmarks: idpwrap against the raw tools it drives, measured in the same run.

Each timed figure is the ratio of medians over alternating runs (idpwrap, raw, idpwrap, raw,
...), so that drift of the machine hits both sides alike. Writes BENCHMARKS.md unless --quick.

    scripts/bench             # 11 runs of each, rewrites BENCHMARKS.md
    scripts/bench --quick     # 1 run of each, smaller images, writes nothing (the suite runs it)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The repository root holds the ``testing`` package (throwaway registries), which is not
# installed (the wheel has idpwrap only); run as a file, Python puts only scripts/ on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import benchcache
from benchreport import write_report

from idpwrap.tools import limits
from testing.registry import distribution
from testing.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
IDPWRAP = str(VENV_BIN / "idpwrap")
MIB = 1024 * 1024


@dataclass
class Figure:
    name: str
    ours: list[float]
    theirs: list[float]
    goal: str
    unit: str = "ms"  # "ms" for times (stored in seconds), "MB" for sizes, "MB/s" for rates
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ours) / statistics.median(self.theirs)

    def shown(self, values: list[float]) -> str:
        median = statistics.median(values)
        if self.unit == "ms":
            return f"{median * 1000:.1f} ms"
        if self.unit == "MB/s":
            return f"{median / 1e6:.1f} MB/s"
        return f"{median / 1e6:.2f} MB"


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, check=True, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - start


def alternate(
    runs: int, ours: Callable[[], float], theirs: Callable[[], float]
) -> tuple[list[float], list[float]]:
    # Dirty pages of what was just built are written back first, and each side runs once
    # unmeasured: the first run of anything pays for cold caches that the others do not.
    subprocess.run(["sync"], check=False)
    if runs > 1:
        ours()
        theirs()
    mine: list[float] = []
    raw: list[float] = []
    for run in range(runs):
        # ABBA order: neither side always goes first after a registry restart
        if run % 2:
            raw.append(theirs())
            mine.append(ours())
        else:
            mine.append(ours())
            raw.append(theirs())
    return mine, raw


class Bench:
    """The shared setup: a store, one registry on a fixed port restarted with fresh storage."""

    def __init__(self, work: Path, runs: int, payload: int) -> None:
        self.work = work
        self.runs = runs
        self.payload = payload
        self.store = work / "store"
        self.env = {**os.environ, "IDPWRAP_STORE": str(self.store)}
        self.registry_dir = work / "registry"
        self.password = "bench-" + os.urandom(8).hex()
        self.port = free_port()
        # The registry's storage in memory where there is a tmpfs: the disk's writeback of the
        # previous run's blobs otherwise lands on whichever side runs next.
        shm = Path("/dev/shm")
        self.storage_base = (
            Path(tempfile.mkdtemp(prefix="idpwrap-bench-", dir=shm))
            if (shm.is_dir() and os.access(shm, os.W_OK))
            else work
        )
        self.storage_count = 0
        self.registry = distribution.start(
            self.registry_dir, "giteaAdmin", self.password, port=self.port,
            storage=self.storage_base / "storage-0",
        )  # fmt: skip
        self.certs = work / "certs"
        self.certs.mkdir()
        shutil.copyfile(self.registry.ca_file, self.certs / "ca.crt")
        self.authfile = work / "auth.json"
        token = base64.b64encode(f"giteaAdmin:{self.password}".encode()).decode()
        self.authfile.write_text(json.dumps({"auths": {self.registry.host: {"auth": token}}}))
        self.authfile.chmod(0o600)
        self.push_env = {**self.env, "GITEA_USERNAME": "giteaAdmin", "GITEA_TOKEN": self.password}
        self.facts: dict[str, str] = {}

    def close(self) -> None:
        self.registry.stop()
        if self.storage_base != self.work:
            shutil.rmtree(self.storage_base, ignore_errors=True)

    def fresh_registry(self) -> None:
        """The same port and credentials, empty storage: no blob is there yet."""
        self.registry.stop()
        shutil.rmtree(self.storage_base / f"storage-{self.storage_count}", ignore_errors=True)
        self.storage_count += 1
        self.registry = distribution.start(
            self.registry_dir, "giteaAdmin", self.password, port=self.port,
            storage=self.storage_base / f"storage-{self.storage_count}",
        )  # fmt: skip
        shutil.copyfile(self.registry.ca_file, self.certs / "ca.crt")

    def build(self, context: Path, tag: str) -> dict:
        subprocess.run(
            [IDPWRAP, "build", "-q", "--context", str(context), "--tag", tag],
            check=True, env=self.env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        return self.manifest(tag)

    def manifest(self, tag: str) -> dict:
        index = json.loads((self.store / "index.json").read_text())
        for entry in index["manifests"]:
            if entry["annotations"]["org.opencontainers.image.ref.name"] == tag:
                blob = self.store / "blobs/sha256" / entry["digest"].split(":")[1]
                return json.loads(blob.read_text())
        raise KeyError(tag)

    def idpwrap_push(self, tag: str, repository: str) -> float:
        return timed(
            [IDPWRAP, "push", "--progress", "plain", "--registry", self.registry.url,
             "--cert-dir", str(self.certs), tag, f"{repository}:{tag.split(':')[1]}"],
            env=self.push_env,
        )  # fmt: skip

    def skopeo_push(self, tag: str, repository: str) -> float:
        return timed(
            ["skopeo", "copy", "--authfile", str(self.authfile), "--dest-cert-dir",
             str(self.certs), "--digestfile", str(self.work / "digest"), f"oci:{self.store}:{tag}",
             f"docker://{self.registry.host}/{repository}:{tag.split(':')[1]}"],
        )  # fmt: skip


def shared_library_context(directory: Path, payload: int) -> Path:
    """A context of real shared libraries (about ``payload`` bytes; a third once gzipped)."""
    context = directory
    libs = context / "libs"
    libs.mkdir(parents=True)
    total = 0
    for path in sorted(Path("/usr/lib").rglob("*.so*")):
        if total >= payload:
            break
        if path.is_symlink() or not path.is_file():
            continue
        target = libs / f"{total}-{path.name}"
        shutil.copyfile(path, target)
        total += target.stat().st_size
    shutil.copy(shutil.which("busybox") or "/usr/bin/busybox", context / "busybox")
    (context / "Containerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY libs /usr/lib/bench\n"
    )
    return context


def random_context(directory: Path, sizes: list[int], steps: str = "") -> Path:
    """Incompressible layers of the given sizes, one COPY each."""
    directory.mkdir(parents=True)
    shutil.copy(shutil.which("busybox") or "/usr/bin/busybox", directory / "busybox")
    lines = ["FROM scratch", "COPY busybox /bin/busybox"]
    for number, size in enumerate(sizes):
        (directory / f"layer{number}.bin").write_bytes(os.urandom(size))
        lines.append(f"COPY layer{number}.bin /layer{number}.bin")
    (directory / "Containerfile").write_text("\n".join(lines) + "\n" + steps)
    return directory


def startup(bench: Bench) -> Figure:
    python = str(VENV_BIN / "python3")
    ours, theirs = alternate(
        max(bench.runs, 5) * 4,
        lambda: timed([IDPWRAP, "--version"]),
        lambda: timed([python, "-c", "pass"]),
    )
    return Figure("`idpwrap --version` / `python3 -c pass`", ours, theirs, "<= 1.5")


def push_overhead(bench: Bench) -> Figure:
    context = shared_library_context(bench.work / "libs-context", bench.payload)
    manifest = bench.build(context, "bench:v1")
    compressed = sum(layer["size"] for layer in manifest["layers"])
    bench.facts["push image"] = (
        f"{bench.payload / 1e6:.0f} MB of shared libraries, {compressed / 1e6:.1f} MB compressed"
    )

    def ours() -> float:
        bench.fresh_registry()
        return bench.idpwrap_push("bench:v1", "giteaadmin/bench")

    def theirs() -> float:
        bench.fresh_registry()
        return bench.skopeo_push("bench:v1", "giteaadmin/bench")

    mine, raw = alternate(bench.runs, ours, theirs)
    return Figure(
        "`idpwrap push` / raw `skopeo copy` of the same stored image, fresh registry storage",
        mine, raw, "<= 1.10",
    )  # fmt: skip


def podman_push(bench: Bench) -> Figure | None:
    if shutil.which("podman") is None:
        return None
    quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    # Pushed by the name given here: choosing "the image with bench or none in its line" from
    # `podman images` picked whatever dangling image tests had left in root's storage.
    name = "localhost/idpwrap-bench:v1"
    pulled = subprocess.run(
        ["podman", "pull", "-q", f"oci:{bench.store}:bench:v1"],
        capture_output=True, text=True, check=True,
    ).stdout.split()[-1]  # fmt: skip
    subprocess.run(["podman", "tag", pulled, name], **quiet)

    def ours() -> float:
        bench.fresh_registry()
        return bench.idpwrap_push("bench:v1", "giteaadmin/bench")

    def theirs() -> float:
        bench.fresh_registry()
        return timed(
            ["podman", "push", "--authfile", str(bench.authfile), "--cert-dir", str(bench.certs),
             name, f"docker://{bench.registry.host}/giteaadmin/bench:v1"],
        )  # fmt: skip

    try:
        mine, raw = alternate(bench.runs, ours, theirs)
    finally:
        subprocess.run(
            ["podman", "rmi", "-f", pulled],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return Figure(
        "`idpwrap push` / `podman push` of the same image from containers-storage",
        mine, raw, "<= 0.3",
        notes=["podman compresses the layers on the way out; idpwrap's are stored compressed"],
    )  # fmt: skip


def repush(bench: Bench) -> Figure:
    sizes = [30 * MIB, 20 * MIB, 10 * MIB] if bench.runs > 1 else [3 * MIB, 2 * MIB, 1 * MIB]
    bench.build(random_context(bench.work / "repush-context", sizes), "repush:v1")
    again: list[float] = []
    first: list[float] = []
    for _ in range(bench.runs):
        bench.fresh_registry()
        first.append(bench.idpwrap_push("repush:v1", "giteaadmin/repush"))
        again.append(bench.idpwrap_push("repush:v1", "giteaadmin/repush"))
    return Figure(
        f"re-push of an image the registry has / first push ({sum(sizes) // MIB} MiB image)",
        again, first, "<= 0.2",
    )  # fmt: skip


def build_overhead(bench: Bench) -> Figure:
    """Cold builds: a new random file in the context every run, so no layer is cached."""
    size = 40 * MIB if bench.runs > 1 else 4 * MIB
    context = random_context(bench.work / "build-context", [size], 'RUN ["/bin/busybox", "true"]\n')
    counter = [0]

    def touch() -> None:
        counter[0] += 1
        (context / "layer0.bin").write_bytes(os.urandom(size))

    def ours() -> float:
        touch()
        return timed(
            [IDPWRAP, "build", "-q", "--context", str(context), "--tag", f"cold:{counter[0]}"],
            env=bench.env,
        )

    # The --ulimit flags idpwrap adds for buildah 1.39 as root under low hard limits: without
    # them raw buildah's RUN step fails there.
    ulimits = limits.buildah_ulimits("buildah")
    # raw buildah's own storage under the work directory, as idpwrap has its own: in root's
    # default storage every run would leave an image behind
    raw_storage = [
        "--root",
        str(bench.work / "raw-buildah"),
        "--runroot",
        str(bench.work / "raw-run"),
    ]

    def theirs() -> float:
        touch()
        layout = bench.work / f"raw-layout-{counter[0]}"
        return timed(
            ["buildah", *raw_storage, "bud", "--isolation", "chroot", "--disable-compression=false",
             "--force-rm", "--layers", "-q", *ulimits, "-t", f"oci:{layout}:cold", str(context)]
        )  # fmt: skip

    mine, raw = alternate(bench.runs, ours, theirs)
    return Figure("`idpwrap build` / raw `buildah bud`, same options, cold", mine, raw, "<= 1.05")


def warm_rebuild(bench: Bench) -> Figure:
    size = 64 * MIB if bench.runs > 1 else 4 * MIB
    steps = 'RUN ["/bin/busybox", "sh", "-c", "echo built > /built.txt"]\n'
    context = random_context(bench.work / "warm-context", [size], steps)
    cold: list[float] = []
    warm: list[float] = []
    for run in range(bench.runs):
        (context / "layer0.bin").write_bytes(os.urandom(size))
        cold.append(
            timed(
                [IDPWRAP, "build", "-q", "--context", str(context), "--tag", f"warm:{run}"],
                env=bench.env,
            )
        )
        warm.append(
            timed(
                [IDPWRAP, "build", "-q", "--context", str(context), "--tag", f"warm:{run}"],
                env=bench.env,
            )
        )
    return Figure(
        f"warm rebuild of an unchanged 3-step context ({size // MIB} MiB) / cold build",
        warm, cold, "<= 0.2",
    )  # fmt: skip


def four_layer_push(bench: Bench) -> Figure:
    """The re-push image (busybox and three incompressible layers): skopeo copies each layer
    as its own blob, and newer skopeo may schedule them differently from 1.9's."""
    layers = len(bench.manifest("repush:v1")["layers"])

    def ours() -> float:
        bench.fresh_registry()
        return bench.idpwrap_push("repush:v1", "giteaadmin/four")

    def theirs() -> float:
        bench.fresh_registry()
        return bench.skopeo_push("repush:v1", "giteaadmin/four")

    mine, raw = alternate(bench.runs, ours, theirs)
    return Figure(
        f"`idpwrap push` / raw `skopeo copy` of a {layers}-layer image, fresh registry storage",
        mine, raw, "<= 1.10",
    )  # fmt: skip


def throughput(bench: Bench) -> Figure:
    """Bytes per second of a push against a plain curl upload of the same blob."""
    manifest = bench.manifest("repush:v1")
    layer = max(manifest["layers"], key=lambda item: item["size"])
    digest, size = layer["digest"], layer["size"]
    blob = bench.store / "blobs/sha256" / digest.split(":")[1]
    total = sum(item["size"] for item in manifest["layers"]) + manifest["config"]["size"]
    credentials = f'user = "giteaAdmin:{bench.password}"\n'

    def curl_upload() -> float:
        bench.fresh_registry()
        url = f"{bench.registry.url}/v2/giteaadmin/curl/blobs/uploads/"
        request = urllib.request.Request(url, method="POST")
        request.add_header(
            "Authorization",
            "Basic " + base64.b64encode(f"giteaAdmin:{bench.password}".encode()).decode(),
        )
        import ssl

        context = ssl.create_default_context(cafile=str(bench.certs / "ca.crt"))
        with urllib.request.urlopen(request, context=context) as response:
            location = response.headers["Location"]
        if location.startswith("/"):
            location = bench.registry.url + location
        separator = "&" if "?" in location else "?"
        start = time.perf_counter()
        subprocess.run(
            ["curl", "-sS", "-f", "-K", "-", "--cacert", str(bench.certs / "ca.crt"), "-X", "PUT",
             "-H", "Content-Type: application/octet-stream", "--data-binary", f"@{blob}",
             f"{location}{separator}digest={digest}"],
            input=credentials.encode(), check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        return size / (time.perf_counter() - start)

    def ours() -> float:
        bench.fresh_registry()
        return total / bench.idpwrap_push("repush:v1", "giteaadmin/rate")

    mine, raw = alternate(bench.runs, ours, curl_upload)
    return Figure(
        "push throughput: `idpwrap push` bytes/s / `curl --data-binary` upload of its largest"
        " layer", mine, raw, "loopback limit; higher is better", unit="MB/s",
    )  # fmt: skip


def disk_use(directory: Path) -> int:
    """Bytes of disk the tree takes (allocated blocks, each file once), as du counts them."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for path in directory.rglob("*"):
        info = path.lstat()
        if (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
    return total


def store_sharing(bench: Bench) -> Figure:
    """Disk use of a store holding two images built FROM one stored 50 MB base, against the
    same store holding one of them: the base's layers are stored once."""
    size = 50 * MIB if bench.runs > 1 else 5 * MIB
    store = bench.work / "sharing-store"
    env = {**bench.env, "IDPWRAP_STORE": str(store)}
    base = random_context(bench.work / "sharing-base", [size])

    def build(context: Path, tag: str) -> None:
        subprocess.run([IDPWRAP, "build", "-q", "--context", str(context), "--tag", tag],
                       check=True, env=env, stdout=subprocess.DEVNULL)  # fmt: skip

    build(base, "base:v1")
    for name in ("one", "two"):
        app = bench.work / f"sharing-{name}"
        app.mkdir()
        (app / "app.txt").write_text(f"app {name}\n")
        (app / "Containerfile").write_text(
            f"FROM base:v1\nCOPY app.txt /app.txt\nLABEL app={name}\n"
        )
        build(app, f"app-{name}:v1")
    subprocess.run([IDPWRAP, "rmi", "base:v1"], check=True, env=env, stdout=subprocess.DEVNULL)
    two = disk_use(store)
    subprocess.run([IDPWRAP, "rmi", "app-two:v1"], check=True, env=env, stdout=subprocess.DEVNULL)
    one = disk_use(store)
    bench.facts["store sharing"] = (
        f"a {size // MIB} MiB incompressible base; app-one and app-two each add a COPY and a"
        f" LABEL on it; disk use (allocated blocks) of the whole store: {two} B for both,"
        f" {one} B for one"
    )
    return Figure(
        f"store disk use: two images sharing a {size // MIB} MiB base / one of them alone",
        [float(two)], [float(one)], "<= 1.05", unit="MB",
    )  # fmt: skip


def registry_cache_whole_build(bench: Bench) -> Figure:
    cached, cold = benchcache.measure(bench, change_after_run=False)
    return Figure(
        "fresh runner, unchanged source, filled registry cache (whole-build hit) / cold build",
        cached, cold, "<= 0.10",
    )  # fmt: skip


def registry_cache_layers(bench: Bench) -> Figure:
    cached, cold = benchcache.measure(bench, change_after_run=True)
    return Figure(
        "fresh runner, a file changed after the expensive RUN, filled registry cache / cold build",
        cached, cold, "<= 0.35",
    )  # fmt: skip


FIGURES: list[Callable[[Bench], Figure | None]] = [
    startup,
    push_overhead,
    podman_push,
    repush,
    four_layer_push,
    throughput,
    build_overhead,
    warm_rebuild,
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
    with tempfile.TemporaryDirectory(prefix="idpwrap-bench-") as directory:
        bench = Bench(Path(directory), runs, payload)
        try:
            for measure in FIGURES:
                if args.only and args.only not in measure.__name__:
                    continue
                figure = measure(bench)
                if figure is None:
                    continue
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
