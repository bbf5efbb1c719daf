"""The local image store: one OCI image layout, each tag an ``index.json`` entry.

Invariants (see DESIGN.md, The store):
- the layout is valid at every instant: blobs land before ``index.json`` names them, and
  ``index.json`` is replaced by temp file + fsync + rename;
- writers are serialised by ``flock`` on a lock file, held only while blobs are moved in and
  the index is rewritten;
- readers that need blobs for a while (push) hold a shared lock on a second file, so garbage
  collection never removes a blob under them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path

from idpwrap import log
from idpwrap.errors import ImageNotFound, StoreError
from idpwrap.refs import DIGEST_RE, LocalRef

TYPE_CHECKING = False  # typing costs an import that a push should not pay
if TYPE_CHECKING:
    from typing import Any

REF_ANNOTATION = "org.opencontainers.image.ref.name"
LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
WRITE_LOCK = ".idpwrap.lock"
GC_LOCK = ".idpwrap.gc.lock"
TEMP_DIR = ".idpwrap.tmp"
MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
EMPTY_INDEX: dict[str, Any] = {"schemaVersion": 2, "manifests": []}


def default_root() -> Path:
    """``$IDPWRAP_STORE``, else ``$XDG_DATA_HOME/idpwrap/images``."""
    configured = os.environ.get("IDPWRAP_STORE")
    if configured:
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "idpwrap" / "images"


class StoredImage(namedtuple("StoredImage", "ref descriptor")):
    """One tag of the store and the manifest descriptor it points at."""

    __slots__ = ()
    ref: LocalRef
    descriptor: dict[str, Any]

    @property
    def digest(self) -> str:
        return str(self.descriptor["digest"])


class ImageDetails(namedtuple("ImageDetails", "image manifest config")):
    """A stored image with its manifest and config read from their blobs."""

    __slots__ = ()
    image: StoredImage
    manifest: dict[str, Any]
    config: dict[str, Any]

    @property
    def blobs(self) -> list[tuple[str, int]]:
        """The config and the layers, as (digest, size), in the order skopeo copies them."""
        layers = [(str(layer["digest"]), int(layer["size"])) for layer in self.manifest["layers"]]
        config = self.manifest["config"]
        return [*layers, (str(config["digest"]), int(config["size"]))]

    @property
    def size(self) -> int:
        """Bytes a push uploads at most: the layers and the config as stored (compressed)."""
        return sum(size for _, size in self.blobs)

    @property
    def created(self) -> str:
        return str(self.config.get("created", ""))


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().absolute()

    # -- paths ---------------------------------------------------------------------------

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_FILE

    def blob_path(self, digest: str) -> Path:
        if not DIGEST_RE.match(digest):
            raise StoreError(f"unsupported digest {digest!r} in store {self.root}")
        algorithm, hex_digest = digest.split(":", 1)
        return self.root / "blobs" / algorithm / hex_digest

    # -- creation and locking ------------------------------------------------------------

    def ensure(self) -> None:
        """Create the layout if it is missing; fail clearly when the place is not writable."""
        try:
            (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            (self.root / TEMP_DIR).mkdir(exist_ok=True)
            if not (self.root / LAYOUT_FILE).exists():
                self._write_atomically(self.root / LAYOUT_FILE, b'{"imageLayoutVersion":"1.0.0"}')
            if not self.index_path.exists():
                with self.write_lock():
                    if not self.index_path.exists():
                        self._write_index(EMPTY_INDEX)
            if not os.access(self.root, os.W_OK):
                raise PermissionError(errno.EACCES, "not writable", str(self.root))
        except OSError as error:
            raise self._write_error(error) from error

    def _write_error(self, error: OSError) -> StoreError:
        reason = error.strerror or str(error)
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return StoreError(
                f"store {self.root} is not writable ({reason}): choose another with --store"
                " or IDPWRAP_STORE"
            )
        if error.errno == errno.ENOSPC:
            return StoreError(
                f"no space left for store {self.root}: free some space (idpwrap rmi, idpwrap"
                " prune) and try again; the store's previous content is intact"
            )
        return StoreError(f"cannot write store {self.root}: {reason}")

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        with self._flock(WRITE_LOCK, fcntl.LOCK_EX):
            yield

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold while blobs are read over time, so that collection leaves them alone."""
        with self._flock(GC_LOCK, fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def _flock(self, name: str, operation: int) -> Iterator[None]:
        path = self.root / name
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            if operation == fcntl.LOCK_SH and error.errno in (errno.EACCES, errno.EROFS):
                yield  # a read-only store cannot be collected under us either
                return
            raise self._write_error(error) from error
        try:
            fcntl.flock(fd, operation)
            yield
        finally:
            os.close(fd)

    def temp_dir(self, purpose: str) -> Path:
        """A private directory inside the store, on its filesystem, so blobs move by rename."""
        self.ensure()
        import tempfile

        try:
            return Path(
                tempfile.mkdtemp(prefix=f"{purpose}-{os.getpid()}-", dir=self.root / TEMP_DIR)
            )
        except OSError as error:
            raise self._write_error(error) from error

    # -- reading -------------------------------------------------------------------------

    def read_index(self) -> dict[str, Any]:
        try:
            text = self.index_path.read_text()
        except FileNotFoundError:
            return dict(EMPTY_INDEX)
        except OSError as error:
            raise StoreError(f"cannot read {self.index_path}: {error.strerror}") from error
        try:
            index = json.loads(text)
            if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
                raise ValueError("no 'manifests' list")
        except ValueError as error:
            raise StoreError(
                f"{self.index_path} is corrupt ({error}): restore it from a backup, or move the"
                " store aside and rebuild its images; idpwrap will not overwrite it"
            ) from error
        return index

    def images(self) -> list[StoredImage]:
        images = []
        for descriptor in self.read_index()["manifests"]:
            name = descriptor.get("annotations", {}).get(REF_ANNOTATION, "")
            if ":" not in name:
                continue  # untagged entries are not ours to show
            repository, tag = name.rsplit(":", 1)
            images.append(StoredImage(LocalRef(repository, tag), descriptor))
        return sorted(images, key=lambda image: (image.ref.name, image.ref.tag))

    def find(self, ref: LocalRef) -> StoredImage | None:
        for image in self.images():
            if image.ref == ref:
                return image
        return None

    def resolve(self, names: list[str], tag: str | None, digest: str | None) -> StoredImage:
        """The first of ``names`` the store has with ``tag`` (or ``digest``)."""
        images = self.images()
        for name in names:
            for image in images:
                if image.ref.name != name:
                    continue
                if digest and image.digest == digest and (tag is None or image.ref.tag == tag):
                    return image
                if not digest and image.ref.tag == (tag or "latest"):
                    return image
        wanted = f"{names[0] if names else ''}:{tag or 'latest'}"
        if digest:
            wanted = f"{names[0] if names else ''}@{digest}"
        import difflib

        known = [str(image.ref) for image in images]
        close = difflib.get_close_matches(wanted, known, n=3, cutoff=0.5)
        for name in names[1:]:
            close += [k for k in known if k.startswith(f"{name}:") and k not in close]
        raise ImageNotFound.in_store(wanted, str(self.root), close[:3])

    def read_json_blob(self, digest: str) -> dict[str, Any]:
        path = self.blob_path(digest)
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError as error:
            raise StoreError(
                f"blob {digest} is missing from store {self.root}: rebuild the image"
            ) from error
        except ValueError as error:
            raise StoreError(f"blob {path} is not valid JSON: rebuild the image") from error

    def details(self, image: StoredImage) -> ImageDetails:
        manifest = self.read_json_blob(image.digest)
        if manifest.get("mediaType", image.descriptor.get("mediaType")) not in MANIFEST_TYPES:
            raise StoreError(f"{image.ref} is not a single-platform image manifest")
        config = self.read_json_blob(str(manifest["config"]["digest"]))
        return ImageDetails(image, manifest, config)

    # -- writing -------------------------------------------------------------------------

    def add_layout(self, layout: Path, refs: list[LocalRef]) -> StoredImage:
        """Move the single image of another OCI layout (a build's output) in under ``refs``.

        Blobs move in first, then one atomic index write names them; a re-used tag moves.
        """
        source_index = json.loads((layout / INDEX_FILE).read_text())
        manifests = source_index.get("manifests", [])
        if len(manifests) != 1:
            raise StoreError(f"expected one image in {layout}, found {len(manifests)}")
        descriptor = {key: value for key, value in manifests[0].items() if key != "annotations"}
        try:
            with self.write_lock():
                self._move_blobs(layout)
                index = self.read_index()
                names = {str(ref) for ref in refs}
                kept = [
                    entry
                    for entry in index["manifests"]
                    if entry.get("annotations", {}).get(REF_ANNOTATION) not in names
                ]
                added = [{**descriptor, "annotations": {REF_ANNOTATION: str(ref)}} for ref in refs]
                self._write_index({**index, "manifests": kept + added})
        except OSError as error:
            raise self._write_error(error) from error
        return StoredImage(refs[0], added[0])

    def _move_blobs(self, layout: Path) -> None:
        for source in sorted((layout / "blobs" / "sha256").iterdir()):
            target = self.root / "blobs" / "sha256" / source.name
            if target.exists():
                continue  # content-addressed: the same name is the same bytes
            os.replace(source, target)

    def delete(self, ref: LocalRef) -> int:
        """Remove a tag, then the blobs no other tag reaches; returns the bytes freed."""
        if not self.index_path.exists():  # no store yet: nothing to remove, nothing to create
            raise ImageNotFound.in_store(str(ref), str(self.root), [])
        with self.write_lock():
            index = self.read_index()
            kept = [
                entry
                for entry in index["manifests"]
                if entry.get("annotations", {}).get(REF_ANNOTATION) != str(ref)
            ]
            if len(kept) == len(index["manifests"]):
                raise ImageNotFound.in_store(str(ref), str(self.root), [])
            try:
                self._write_index({**index, "manifests": kept})
            except OSError as error:
                raise self._write_error(error) from error
            return self._collect_garbage({**index, "manifests": kept})

    def _reachable(self, index: dict[str, Any]) -> set[str]:
        reachable: set[str] = set()
        pending = list(index["manifests"])
        while pending:
            descriptor = pending.pop()
            digest = str(descriptor.get("digest", ""))
            if digest in reachable or not DIGEST_RE.match(digest):
                continue
            reachable.add(digest)
            media_type = descriptor.get("mediaType", "")
            if media_type not in MANIFEST_TYPES | INDEX_TYPES:
                continue
            try:
                content = self.read_json_blob(digest)
            except StoreError:
                continue
            pending.extend(content.get("manifests", []))
            if "config" in content:
                pending.append(content["config"])
            pending.extend(content.get("layers", []))
        return reachable

    def _collect_garbage(self, index: dict[str, Any]) -> int:
        """Remove unreachable blobs, unless a reader (a push) holds the store open."""
        try:
            fd = os.open(self.root / GC_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return 0
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("a push is reading the store: unreferenced blobs stay until prune")
                return 0
            reachable = self._reachable(index)
            freed = 0
            for blob in (self.root / "blobs" / "sha256").iterdir():
                if f"sha256:{blob.name}" not in reachable:
                    freed += blob.stat().st_size
                    blob.unlink()
            return freed
        finally:
            os.close(fd)

    def _write_index(self, index: dict[str, Any]) -> None:
        data = json.dumps(index, separators=(",", ":")).encode()
        self._write_atomically(self.index_path, data)

    def _write_atomically(self, path: Path, data: bytes) -> None:
        import tempfile

        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp_name, 0o644)
            os.replace(temp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
