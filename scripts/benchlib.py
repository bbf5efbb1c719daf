"""What every benchmark case shares: a figure, timing in alternating runs, the work directory
with its store and registry, and the build contexts the cases make."""

from __future__ import annotations

import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# The repository root holds the ``testing`` package (throwaway registries), which is not
# installed (the wheel has idpwrap only); run as a file, Python puts only scripts/ on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
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
        # idpwrap's buildah storage (under XDG_DATA_HOME) beside raw buildah's, in the work
        # directory: inside scripts/env the work directory is on a tmpfs /tmp while the home
        # directory is on disk, and the two storages on different filesystems made idpwrap's
        # builds look a third slower than raw buildah's there.
        self.env = {
            **os.environ,
            "IDPWRAP_STORE": str(self.store),
            "XDG_DATA_HOME": str(work / "data"),
        }
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
        # The raw tools' times of one case, for the floors that other cases compare with them.
        self.raw: dict[str, list[float]] = {}

    def fresh_storage(self, name: str) -> dict[str, str]:
        """``env`` with an empty buildah storage of its own (XDG_DATA_HOME): a build case
        compares idpwrap with raw buildah in a new ``--root``, and buildah's time grows with
        what its storage already holds (the earlier cases' images)."""
        return {**self.env, "XDG_DATA_HOME": str(self.work / f"data-{name}")}

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
            if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
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
