"""Images in an OCI layout store as the tests make and read them: build contexts, index.json
entries, blobs, a tag's manifest."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testing.paths import BUSYBOX

TYPE_CHECKING = False
if TYPE_CHECKING:
    from testing.cli import Cli

REF_ANNOTATION = "org.opencontainers.image.ref.name"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MiB = 1024 * 1024
# Layer payloads of known sizes; pseudo-random so that gzip cannot shrink them, seeded so that
# buildah's layer cache serves them again in the next session instead of growing.
THREE_LAYERS = (("a.bin", 6, 61), ("b.bin", 3, 31), ("c.bin", 1, 11))  # name, MiB, seed

THREE_LAYER_CONTAINERFILE = """\
FROM scratch
COPY busybox /bin/busybox
COPY a.bin /data/a.bin
COPY b.bin /data/b.bin
COPY c.bin /data/c.bin
CMD ["/bin/busybox", "ls", "-l", "/data"]
"""


def make_context(
    directory: Path, containerfile: str, files: dict[str, bytes] | None = None
) -> Path:
    """A build context with busybox (static) as ./busybox, since no base image can be pulled."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, directory / "busybox")
    (directory / "Containerfile").write_text(containerfile)
    for name, data in (files or {}).items():
        (directory / name).write_bytes(data)
    return directory


def read_index(store: Path) -> dict[str, Any]:
    return json.loads((store / "index.json").read_text())


def tagged(store: Path, tag: str) -> list[dict[str, Any]]:
    """The index.json entries that carry ``tag``."""
    return [
        entry
        for entry in read_index(store)["manifests"]
        if entry.get("annotations", {}).get(REF_ANNOTATION) == tag
    ]


def tag_digest(store: Path, tag: str) -> str:
    entries = tagged(store, tag)
    assert len(entries) == 1, f"{tag} should be in {store}/index.json exactly once: {entries}"
    return str(entries[0]["digest"])


def blob_path(store: Path, digest: str) -> Path:
    algorithm, hex_digest = digest.split(":", 1)
    return store / "blobs" / algorithm / hex_digest


def read_blob_json(store: Path, digest: str) -> dict[str, Any]:
    return json.loads(blob_path(store, digest).read_bytes())


@dataclass(frozen=True)
class LocalImage:
    tag: str
    digest: str
    manifest: dict[str, Any]

    @property
    def layers(self) -> list[tuple[str, int]]:
        return [(str(layer["digest"]), int(layer["size"])) for layer in self.manifest["layers"]]

    @property
    def config(self) -> tuple[str, int]:
        return str(self.manifest["config"]["digest"]), int(self.manifest["config"]["size"])

    @property
    def blobs(self) -> dict[str, int]:
        """Layers and config, digest -> size: what a push uploads."""
        return dict([*self.layers, self.config])

    @property
    def all_digests(self) -> set[str]:
        return {self.digest, *self.blobs}


def local_image(store: Path, tag: str) -> LocalImage:
    digest = tag_digest(store, tag)
    return LocalImage(tag, digest, read_blob_json(store, digest))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def store_digests(store: Path) -> set[str]:
    return {f"sha256:{path.name}" for path in (store / "blobs" / "sha256").iterdir()}


@dataclass
class Prebuilt:
    """A store made once per session: ``hello:v1`` (examples/hello) and ``three:v1``."""

    store: Path
    hello: LocalImage
    three: LocalImage


# One COPY of a file per architecture: each child of the index differs from the other.
TWO_PLATFORMS_CONTAINERFILE = (
    "FROM scratch\nARG TARGETARCH\nCOPY arch-${TARGETARCH}.txt /arch.txt\n"
)


def build_two_platform_index(cli: Cli, directory: Path, tag: str) -> str:
    """``tag`` built by ``cli`` for linux/amd64 and linux/arm64 (an index); its digest."""
    directory.mkdir()
    (directory / "Containerfile").write_text(TWO_PLATFORMS_CONTAINERFILE)
    for arch in ("amd64", "arm64"):
        (directory / f"arch-{arch}.txt").write_text(f"{arch}\n")
    built = cli.run("build", "-q", "--platform", "linux/amd64,linux/arm64", "-t", tag,
                    str(directory), timeout=600)  # fmt: skip
    assert built.returncode == 0, built.describe()
    return local_image(cli.store, tag).digest
