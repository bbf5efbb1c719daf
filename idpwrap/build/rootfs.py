"""An OCI image from a root filesystem tarball, in one layer: what ``podman import`` makes.

Pure Python (gzip, sha256): no buildah run, no container storage. The tar is read once; the
layer is gzipped while both digests are computed (the layer's, and the uncompressed diff ID
the config names).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

from idpwrap.errors import UsageError

CHUNK = 1024 * 1024
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
GO_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
                    "s390x": "s390x", "riscv64": "riscv64"}  # fmt: skip


class _HashingWriter:
    """A file that hashes what it is given: gzip writes the compressed layer through it."""

    def __init__(self, target: Path) -> None:
        self.file = target.open("wb")
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _write_blob(blobs: Path, content: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(content).hexdigest()
    (blobs / digest).write_bytes(content)
    return f"sha256:{digest}", len(content)


def architecture() -> str:
    machine = platform.machine()
    return GO_ARCHITECTURES.get(machine, machine)


def write_layout(
    tarball: Path,
    layout: Path,
    *,
    changes: dict[str, object] | None = None,
    message: str = "",
) -> str:
    """Write a one-image OCI layout at ``layout`` from ``tarball`` (plain or gzipped tar).

    Returns the manifest digest. ``changes`` go into the config's ``config`` (Env, Cmd, ...).
    """
    if not tarball.is_file():
        raise UsageError(f"{tarball} is not a file: give the root filesystem as a .tar file")
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    partial = blobs / ".layer.partial"
    writer = _HashingWriter(partial)
    diff_id = hashlib.sha256()
    with open(tarball, "rb") as raw:
        compressed_input = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if compressed_input else open
    try:
        with opener(tarball, "rb") as source:  # type: ignore[operator]
            head = source.read(512)
            if len(head) < 512 or head[257:262] != b"ustar":
                raise UsageError(f"{tarball} is not a tar archive: give a root filesystem .tar")
            # mtime=0 and no file name: the same tarball always gives the same layer digest.
            with gzip.GzipFile(fileobj=writer, mode="wb", compresslevel=6, mtime=0) as layer:  # type: ignore[arg-type]
                chunk = head
                while chunk:
                    diff_id.update(chunk)
                    layer.write(chunk)
                    chunk = source.read(CHUNK)
    finally:
        writer.close()
    layer_digest = f"sha256:{writer.sha256.hexdigest()}"
    os.replace(partial, blobs / writer.sha256.hexdigest())
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "created": created,
        "architecture": architecture(),
        "os": "linux",
        "config": dict(changes or {}),
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id.hexdigest()}"]},
        "history": [{"created": created, "created_by": f"idpwrap import {tarball.name}",
                     "comment": message or "imported from a root filesystem tarball"}],
    }  # fmt: skip
    config_digest, config_size = _write_blob(blobs, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": LAYER_TYPE, "digest": layer_digest, "size": writer.size}],
    }
    manifest_digest, manifest_size = _write_blob(blobs, json.dumps(manifest).encode())
    descriptor = {"mediaType": MANIFEST_TYPE, "digest": manifest_digest, "size": manifest_size}
    index = {"schemaVersion": 2, "manifests": [descriptor]}
    (layout / "index.json").write_text(json.dumps(index))
    return manifest_digest
