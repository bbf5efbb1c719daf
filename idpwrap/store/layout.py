"""The OCI image layout on disk: its file names and media types, walking what descriptors
reach, and writing a file so that readers see the old content or the new, never a mix."""

from __future__ import annotations

import contextlib
import json
import os

from idpwrap.errors import StoreError
from idpwrap.refs import DIGEST_RE

TYPE_CHECKING = False  # typing (and pathlib) cost imports that a push should not pay
if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path
    from typing import Any

REF_ANNOTATION = "org.opencontainers.image.ref.name"
LAYOUT_FILE = "oci-layout"
LAYOUT_CONTENT = b'{"imageLayoutVersion":"1.0.0"}'
INDEX_FILE = "index.json"
# Temporary files of an atomic write are ".<name>.<12 hex>" next to the file they replace.
ATOMIC_TEMP_SUFFIX_LENGTH = 13
MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
EMPTY_INDEX: dict[str, Any] = {"schemaVersion": 2, "manifests": []}
# A descriptor without a media type is read as JSON (to find what it references) up to this size.
MAX_UNTYPED_JSON = 4 * 1024 * 1024
HEX = frozenset("0123456789abcdef")


def is_blob_name(name: str) -> bool:
    """A file name under ``blobs/sha256`` that is a whole sha256 digest."""
    return len(name) == 64 and HEX.issuperset(name)


def is_atomic_temp(name: str) -> bool:
    """Whether ``name`` is the temporary file of an atomic write (``.index.json.1a2b...``)."""
    suffix = name[-ATOMIC_TEMP_SUFFIX_LENGTH:]
    return (
        name.startswith(".")
        and len(name) > ATOMIC_TEMP_SUFFIX_LENGTH + 1
        and suffix[0] == "."
        and HEX.issuperset(suffix[1:])
    )


def ref_name(descriptor: dict[str, Any]) -> str:
    annotations = descriptor.get("annotations")
    if not isinstance(annotations, dict):
        return ""
    return str(annotations.get(REF_ANNOTATION, ""))


def walk_blobs(
    descriptors: Iterable[dict[str, Any]],
    blob_dir: Path,
    *,
    strict: bool = False,
    cache: dict[str, dict[str, Any] | None] | None = None,
) -> dict[str, int | None]:
    """Every blob ``descriptors`` reach through image indexes, manifests and configs, as
    digest -> declared size.

    A manifest or index that cannot be read raises StoreError: what it references is unknown,
    so nothing may be collected. A missing one is skipped, unless ``strict`` (an image about to
    be added must be whole: every blob present with its declared size).
    """
    found: dict[str, int | None] = {}
    pending = list(descriptors)
    cache = {} if cache is None else cache
    while pending:
        descriptor = pending.pop()
        digest = str(descriptor.get("digest", ""))
        if not DIGEST_RE.match(digest):
            if strict:
                raise StoreError(f"an image in {blob_dir} has an odd digest {digest!r}")
            continue
        size = descriptor.get("size")
        declared = int(size) if isinstance(size, int) else None
        if digest in found:
            continue
        found[digest] = declared
        path = blob_dir / digest.split(":", 1)[1]
        if strict:
            try:
                actual = path.stat().st_size
            except FileNotFoundError as error:
                raise StoreError(
                    f"the image is incomplete: blob {digest} is missing from {blob_dir}"
                ) from error
            if declared is not None and actual != declared:
                raise StoreError(
                    f"the image is damaged: blob {digest} in {blob_dir} has {actual} bytes, not"
                    f" the {declared} its manifest gives"
                )
        media_type = descriptor.get("mediaType") or ""
        if media_type not in MANIFEST_TYPES | INDEX_TYPES and (
            media_type or (declared or 0) > MAX_UNTYPED_JSON
        ):
            continue
        content = read_manifest(path, digest, cache, known_type=bool(media_type))
        if content is None:
            continue
        for key in ("manifests", "layers"):
            children = content.get(key)
            if isinstance(children, list):
                pending.extend(child for child in children if isinstance(child, dict))
        for key in ("config", "subject"):
            child = content.get(key)
            if isinstance(child, dict):
                pending.append(child)
    return found


def layout_is_whole(layout: Path) -> bool:
    """Whether ``layout`` holds exactly one image with every blob present and matching its
    digest: what a build that reported a failure may still have written completely."""
    import hashlib

    try:
        manifests = json.loads((layout / INDEX_FILE).read_text())["manifests"]
        if len(manifests) != 1:
            return False
        blob_dir = layout / "blobs" / "sha256"
        for digest in walk_blobs(manifests, blob_dir, strict=True):
            sha256 = hashlib.sha256()
            with (blob_dir / digest.split(":", 1)[1]).open("rb") as blob:
                while chunk := blob.read(1 << 20):
                    sha256.update(chunk)
            if f"sha256:{sha256.hexdigest()}" != digest:
                return False
    except (OSError, ValueError, KeyError, TypeError, StoreError):
        return False
    return True


def read_manifest(
    path: Path, digest: str, cache: dict[str, dict[str, Any] | None], known_type: bool
) -> dict[str, Any] | None:
    if digest in cache:
        return cache[digest]
    content: dict[str, Any] | None = None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = None
    except OSError as error:
        raise StoreError(f"cannot read manifest {path}: {error.strerror}") from error
    if data is not None:
        try:
            parsed = json.loads(data)
        except ValueError as error:
            if known_type:
                raise StoreError(
                    f"manifest {path} is not valid JSON: remove the image that uses it"
                    " (idpwrap rmi) before pruning"
                ) from error
            parsed = None
        content = parsed if isinstance(parsed, dict) else None
    cache[digest] = content
    return content


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` by temp file + fsync + rename, then sync its directory."""
    temp = path.with_name(f".{path.name}.{os.urandom(6).hex()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            os.fchmod(fd, 0o644)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    sync_directory(path.parent)


def write_replacing(path: Path, data: bytes) -> None:
    """Replace ``path`` by temp file + rename, without fsync: for files whose loss in a power
    failure costs work and never gives a wrong answer (the build records: a record that
    cannot be read means build again). The rename alone keeps them whole when a process is
    killed; what must survive the machine (index.json) uses write_atomically."""
    temp = path.with_name(f".{path.name}.{os.urandom(6).hex()}")
    try:
        with open(temp, "xb") as handle:
            handle.write(data)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tree_size(path: str) -> int:
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total
