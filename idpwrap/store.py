"""The local image store: one OCI image layout, each tag an ``index.json`` entry.

Invariants (see DESIGN.md, The store):
- the layout is valid at every instant: blobs land before ``index.json`` names them,
  ``index.json`` is replaced by temp file + fsync + rename, and blobs go only after the index
  that named them is gone; ``kill -9`` at any moment leaves at worst unreferenced blobs and
  temporary files, which ``prune`` removes;
- writers are serialised by ``flock`` on ``.idpwrap.lock``, held only while blobs are moved in
  and the index is rewritten;
- readers that need blobs for a while (push, save, a build on a stored base) hold a shared lock
  on ``.idpwrap.gc.lock``; collection takes it exclusively, so it never removes a blob under
  them. Lock order, to rule out deadlocks: the collection lock first, then the write lock;
- work in progress (a build, a load) lives in a directory of ``.idpwrap.tmp`` that its process
  holds an ``flock`` on: ``prune`` removes only directories whose process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections import namedtuple
from collections.abc import Iterator

from idpwrap import log
from idpwrap.errors import ImageNotFound, StoreError
from idpwrap.refs import DIGEST_RE, LocalRef

TYPE_CHECKING = False  # typing (and pathlib) cost imports that a push should not pay
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from pathlib import Path
    from typing import Any

REF_ANNOTATION = "org.opencontainers.image.ref.name"
LAYOUT_FILE = "oci-layout"
LAYOUT_CONTENT = b'{"imageLayoutVersion":"1.0.0"}'
INDEX_FILE = "index.json"
WRITE_LOCK = ".idpwrap.lock"
GC_LOCK = ".idpwrap.gc.lock"
TEMP_DIR = ".idpwrap.tmp"
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
# Temporary directories of this process and the descriptors whose flock marks them in use.
_HELD_TEMP_DIRS: dict[str, int] = {}


def default_root() -> Path:
    """``$IDPWRAP_STORE``, else ``$XDG_DATA_HOME/idpwrap/images``."""
    from pathlib import Path

    configured = os.environ.get("IDPWRAP_STORE")
    if configured:
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "idpwrap" / "images"


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


class PruneReport(namedtuple("PruneReport", "blobs blob_bytes leftovers leftover_bytes")):
    """What ``prune`` removed: unreferenced blobs, and leftovers of interrupted commands."""

    __slots__ = ()
    blobs: int
    blob_bytes: int
    leftovers: int
    leftover_bytes: int

    @property
    def freed(self) -> int:
        return self.blob_bytes + self.leftover_bytes


class Store:
    """The store at ``root``. What a push reads is reached through plain strings
    (``location``, ``index_file``): ``pathlib`` costs an import a push should not pay, and
    ``root`` and the other ``Path`` properties make it only when something asks for them."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.location = os.path.abspath(os.path.expanduser(os.fspath(root)))
        self._root: Path | None = None

    # -- paths ---------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        if self._root is None:
            from pathlib import Path

            self._root = Path(self.location)
        return self._root

    @property
    def index_file(self) -> str:
        return os.path.join(self.location, INDEX_FILE)

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_FILE

    @property
    def blob_dir(self) -> Path:
        return self.root / "blobs" / "sha256"

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / self._blob_name(digest)

    def blob_file(self, digest: str) -> str:
        return os.path.join(self.location, "blobs", self._blob_name(digest))

    def _blob_name(self, digest: str) -> str:
        if not DIGEST_RE.match(digest):
            raise StoreError(f"unsupported digest {digest!r} in store {self.location}")
        algorithm, hex_digest = digest.split(":", 1)
        return f"{algorithm}/{hex_digest}"

    # -- creation and locking ------------------------------------------------------------

    def ensure(self) -> None:
        """Create the layout if it is missing; fail clearly when the place is not writable."""
        try:
            self.blob_dir.mkdir(parents=True, exist_ok=True)
            (self.root / TEMP_DIR).mkdir(exist_ok=True)
            if not (self.root / LAYOUT_FILE).exists() or not self.index_path.exists():
                with self.write_lock():
                    if not (self.root / LAYOUT_FILE).exists():
                        self._write_atomically(self.root / LAYOUT_FILE, LAYOUT_CONTENT)
                    if not self.index_path.exists():
                        self._write_index(EMPTY_INDEX)
            for directory in (self.root, self.blob_dir, self.root / TEMP_DIR):
                if not os.access(directory, os.W_OK):
                    read_only = os.statvfs(directory).f_flag & os.ST_RDONLY
                    code = errno.EROFS if read_only else errno.EACCES
                    raise PermissionError(code, os.strerror(code), str(directory))
        except OSError as error:
            raise self._write_error(error) from error

    def _write_error(self, error: OSError) -> StoreError:
        reason = error.strerror or str(error)
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return StoreError(
                f"store {self.root} is not writable ({reason}): choose another with --store"
                " or IDPWRAP_STORE; nothing in it was changed"
            )
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
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
    def collecting(self, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """The exclusive side of ``reading``: waits (after ``on_wait``) for readers to finish."""
        with self._flock(GC_LOCK, fcntl.LOCK_EX, on_wait):
            yield

    @contextlib.contextmanager
    def _flock(
        self, name: str, operation: int, on_wait: Callable[[], None] | None = None
    ) -> Iterator[None]:
        path = os.path.join(self.location, name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            if operation == fcntl.LOCK_SH and error.errno in (errno.EACCES, errno.EROFS):
                fd = self._open_for_shared_lock(path)
                if fd is None:
                    yield  # a store we cannot write cannot be collected under us either
                    return
            else:
                raise self._write_error(error) from error
        try:
            try:
                fcntl.flock(fd, operation | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(fd, operation)
            yield
        finally:
            os.close(fd)

    @staticmethod
    def _open_for_shared_lock(path: Path) -> int | None:
        try:
            return os.open(path, os.O_RDONLY)
        except OSError:
            return None

    def temp_dir(self, purpose: str) -> Path:
        """A private directory in ``.idpwrap.tmp`` (on the store's filesystem, so blobs move
        in by rename), locked by this process until ``release`` or its end, however it ends."""
        self.ensure()
        try:
            with self.write_lock():  # prune holds it while it looks for abandoned directories
                for _ in range(100):
                    path = self.root / TEMP_DIR / f"{purpose}-{os.getpid()}-{os.urandom(4).hex()}"
                    try:
                        os.mkdir(path, 0o700)
                        break
                    except FileExistsError:
                        continue
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            raise self._write_error(error) from error
        _HELD_TEMP_DIRS[str(path)] = fd
        return path

    def release(self, path: Path) -> None:
        """Remove a directory made by ``temp_dir`` and drop its lock."""
        from idpwrap.scratch import remove_tree

        try:
            remove_tree(path)
        finally:
            fd = _HELD_TEMP_DIRS.pop(str(path), None)
            if fd is not None:
                os.close(fd)

    @contextlib.contextmanager
    def working_dir(self, purpose: str) -> Iterator[Path]:
        path = self.temp_dir(purpose)
        try:
            yield path
        finally:
            self.release(path)

    # -- reading -------------------------------------------------------------------------

    def read_index(self) -> dict[str, Any]:
        try:
            with open(self.index_file, encoding="utf-8") as file:
                text = file.read()
        except FileNotFoundError:
            return dict(EMPTY_INDEX)
        except OSError as error:
            raise StoreError(f"cannot read {self.index_file}: {error.strerror}") from error
        try:
            index = json.loads(text)
            if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
                raise ValueError("no 'manifests' list")
            for entry in index["manifests"]:
                if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
                    raise ValueError("an entry without a digest")
        except ValueError as error:
            raise StoreError(
                f"{self.index_file} is corrupt ({error}): restore it from a backup, or move it"
                " aside (its blobs stay until 'idpwrap prune') and rebuild or 'idpwrap load'"
                " the images; idpwrap will not overwrite it"
            ) from error
        return index

    def images(self) -> list[StoredImage]:
        images = []
        for descriptor in self.read_index()["manifests"]:
            name = ref_name(descriptor)
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
        raise ImageNotFound.in_store(wanted, self.location, close[:3])

    def lookup(self, text: str) -> StoredImage:
        """An image named on the command line: ``NAME[:TAG]``, ``NAME@sha256:...`` or a
        manifest digest ``sha256:...`` (or its first 12 or more hex digits)."""
        from idpwrap.refs import parse_local, split_tag_and_digest, validate_name

        hex_part = text.removeprefix("sha256:")
        if (text.startswith("sha256:") or len(text) >= 12) and HEX.issuperset(hex_part):
            matches = {image.digest: image for image in self.images()}
            found = [image for digest, image in matches.items() if digest[7:].startswith(hex_part)]
            if len(found) == 1:
                return found[0]
            if text.startswith("sha256:") or found:
                why = "matches several images" if found else "is not in the store"
                raise ImageNotFound(f"digest {text} {why} ({self.root}): name it by NAME:TAG")
        if "@" in text:
            name, tag, digest = split_tag_and_digest(text)
            validate_name(text, name)
            return self.resolve([name], tag, digest)
        ref = parse_local(text)
        return self.resolve([ref.name], ref.tag, None)

    def read_json_blob(self, digest: str) -> dict[str, Any]:
        path = self.blob_file(digest)
        try:
            with open(path, "rb") as file:
                return json.loads(file.read())
        except FileNotFoundError as error:
            raise StoreError(
                f"blob {digest} is missing from store {self.location}: rebuild the image"
            ) from error
        except ValueError as error:
            raise StoreError(f"blob {path} is not valid JSON: rebuild the image") from error
        except OSError as error:
            raise StoreError(f"cannot read blob {path}: {error.strerror}") from error

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
        try:
            source_index = json.loads((layout / INDEX_FILE).read_text())
        except (OSError, ValueError) as error:
            raise StoreError(
                f"cannot read the new image's {layout / INDEX_FILE}: {error}"
            ) from error
        manifests = source_index.get("manifests", [])
        if len(manifests) != 1:
            raise StoreError(f"expected one image in {layout}, found {len(manifests)}")
        return self.add_images(layout, [(manifests[0], list(refs))])[0]

    def add_images(
        self, layout: Path, images: Sequence[tuple[dict[str, Any], list[LocalRef]]]
    ) -> list[StoredImage]:
        """Move the blobs of ``images`` (descriptors in ``layout``) in, then tag them all in one
        atomic index write. A blob the store has already stays as it is (same digest, same
        bytes); the image must be whole: every blob it references, of the declared size."""
        descriptors = [
            {key: value for key, value in descriptor.items() if key != "annotations"}
            for descriptor, _ in images
        ]
        needed = walk_blobs(descriptors, layout / "blobs" / "sha256", strict=True)
        added: list[StoredImage] = []
        moved: list[Path] = []
        try:
            with self.write_lock():
                self._move_blobs(layout / "blobs" / "sha256", needed, moved)
                index = self.read_index()
                names = {str(ref) for _, refs in images for ref in refs}
                kept = [entry for entry in index["manifests"] if ref_name(entry) not in names]
                entries = []
                for descriptor, (_, refs) in zip(descriptors, images, strict=True):
                    for ref in refs:
                        entry = {**descriptor, "annotations": {REF_ANNOTATION: str(ref)}}
                        entries = [e for e in entries if ref_name(e) != str(ref)] + [entry]
                        added = [a for a in added if a.ref != ref] + [StoredImage(ref, entry)]
                try:
                    self._write_index({**index, "manifests": kept + entries})
                except BaseException:
                    for path in moved:  # nothing names them: leave the store as it was
                        with contextlib.suppress(OSError):
                            path.unlink()
                    raise
        except OSError as error:
            raise self._write_error(error) from error
        return added

    def _move_blobs(
        self, source_dir: Path, needed: dict[str, int | None], moved: list[Path]
    ) -> None:
        """Rename the ``needed`` blobs of ``source_dir`` in; synced before the index names them."""
        new: list[Path] = []
        for digest in needed:
            name = digest.split(":", 1)[1]
            target = self.blob_dir / name
            if target.exists():
                continue  # content-addressed: the same name is the same bytes
            source = source_dir / name
            _sync_file(source)
            try:
                os.replace(source, target)
            except OSError as error:
                if error.errno != errno.EXDEV:
                    raise
                self._copy_blob(source, target)
            moved.append(target)
            new.append(target)
        if new:
            _sync_directory(self.blob_dir)

    def _copy_blob(self, source: Path, target: Path) -> None:
        import shutil

        partial = target.with_name(f".{target.name}.{os.urandom(4).hex()}")
        try:
            shutil.copyfile(source, partial)
            _sync_file(partial)
            os.replace(partial, target)
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise

    def tag(self, source: StoredImage, refs: Sequence[LocalRef]) -> list[StoredImage]:
        """Give the image ``source`` points at more tags; a tag that names another moves."""
        descriptor = {
            key: value for key, value in source.descriptor.items() if key != "annotations"
        }
        try:
            with self.write_lock():
                index = self.read_index()
                if not any(entry.get("digest") == source.digest for entry in index["manifests"]):
                    raise ImageNotFound.in_store(str(source.ref), str(self.root), [])
                names = {str(ref) for ref in refs}
                kept = [entry for entry in index["manifests"] if ref_name(entry) not in names]
                entries = [
                    {**descriptor, "annotations": {REF_ANNOTATION: name}}
                    for name in dict.fromkeys(str(ref) for ref in refs)
                ]
                self._write_index({**index, "manifests": kept + entries})
        except OSError as error:
            raise self._write_error(error) from error
        return [
            StoredImage(ref, {**descriptor, "annotations": {REF_ANNOTATION: str(ref)}})
            for ref in refs
        ]

    def delete(self, ref: LocalRef) -> int:
        """Remove a tag, then the blobs no other tag reaches; returns the bytes freed."""
        freed, orphans, _ = self.delete_many([ref])
        return freed[0][1] + orphans

    def delete_many(self, refs: Sequence[LocalRef]) -> tuple[list[tuple[LocalRef, int]], int, bool]:
        """Remove tags in one index write, then the blobs nothing reaches any more.

        Returns (tag, bytes only it used) for each tag, the bytes of blobs that were already
        unreferenced (left by interrupted commands), and whether collection ran (it waits for
        ``prune`` when a push or save is reading the store). All tags must exist, or none goes.
        """
        unique = list(dict.fromkeys(refs))
        if not self.index_path.exists():  # no store yet: nothing to remove, nothing to create
            raise ImageNotFound.in_store(str(unique[0]), str(self.root), [])
        try:
            with self.write_lock():
                index = self.read_index()
                present = {ref_name(entry) for entry in index["manifests"]}
                for ref in unique:
                    if str(ref) not in present:
                        raise ImageNotFound.in_store(str(ref), str(self.root), [])
                stages = [index]
                for ref in unique:
                    entries = [e for e in stages[-1]["manifests"] if ref_name(e) != str(ref)]
                    stages.append({**index, "manifests": entries})
                self._write_index(stages[-1])
                return self._collect_after_delete(unique, stages)
        except OSError as error:
            raise self._write_error(error) from error

    def _collect_after_delete(
        self, refs: list[LocalRef], stages: list[dict[str, Any]]
    ) -> tuple[list[tuple[LocalRef, int]], int, bool]:
        try:
            gc = os.open(self.root / GC_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return [(ref, 0) for ref in refs], 0, False
        try:
            try:
                fcntl.flock(gc, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("a push or save is reading the store: unreferenced blobs stay until prune")
                return [(ref, 0) for ref in refs], 0, False
            cache: dict[str, dict[str, Any] | None] = {}
            try:
                reachable = [
                    set(walk_blobs(stage["manifests"], self.blob_dir, cache=cache))
                    for stage in stages
                ]
            except StoreError as error:
                log.info("%s: unreferenced blobs stay until prune", error)
                return [(ref, 0) for ref in refs], 0, False
            present = self._blob_sizes()
            freed = []
            for number, ref in enumerate(refs):
                only = reachable[number] - reachable[number + 1]
                freed.append((ref, sum(present.get(digest, 0) for digest in only)))
            orphans = set(present) - reachable[0]
            self._remove_blobs(set(present) - reachable[-1])
            return freed, sum(present[digest] for digest in orphans), True
        finally:
            os.close(gc)

    def _blob_sizes(self) -> dict[str, int]:
        """Every file under ``blobs/sha256`` (blob or not) as "sha256:NAME" -> size."""
        sizes = {}
        try:
            entries = list(os.scandir(self.blob_dir))
        except FileNotFoundError:
            return {}
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False) or entry.is_symlink():
                    sizes[f"sha256:{entry.name}"] = entry.stat(follow_symlinks=False).st_size
        return sizes

    def _remove_blobs(self, digests: Iterable[str]) -> None:
        for digest in digests:
            with contextlib.suppress(FileNotFoundError):
                (self.blob_dir / digest.split(":", 1)[1]).unlink()

    def prune(self, on_wait: Callable[[], None] | None = None) -> PruneReport:
        """Remove unreferenced blobs and what interrupted commands left behind: temporary
        directories whose process is gone, and temporary files of an index write.

        Waits (after ``on_wait``) for pushes and saves reading the store. A corrupt index, or
        a manifest that cannot be read, stops it before anything is removed.
        """
        if not self.index_path.exists():
            return PruneReport(0, 0, 0, 0)
        try:
            with self.collecting(on_wait), self.write_lock():
                index = self.read_index()
                reachable = set(walk_blobs(index["manifests"], self.blob_dir))
                leftovers, leftover_bytes = self._remove_leftovers()
                present = self._blob_sizes()
                unreferenced = set(present) - reachable
                self._remove_blobs(unreferenced)
        except OSError as error:
            raise self._write_error(error) from error
        blob_bytes = sum(present[digest] for digest in unreferenced)
        return PruneReport(len(unreferenced), blob_bytes, leftovers, leftover_bytes)

    def _remove_leftovers(self) -> tuple[int, int]:
        """Under the write lock: abandoned temporary directories and atomic-write files."""
        from idpwrap.scratch import remove_tree

        count = size = 0
        for entry in os.scandir(self.root):
            if is_atomic_temp(entry.name) and not entry.is_dir():
                size += entry.stat(follow_symlinks=False).st_size
                os.unlink(entry.path)
                count += 1
        temp = self.root / TEMP_DIR
        entries = list(os.scandir(temp)) if temp.is_dir() else []
        for entry in entries:
            if entry.path in _HELD_TEMP_DIRS:
                continue
            if not entry.is_dir(follow_symlinks=False):
                size += entry.stat(follow_symlinks=False).st_size
                os.unlink(entry.path)
                count += 1
                continue
            try:
                fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process is alive and working in it
                size += _tree_size(entry.path)
                remove_tree(entry.path)
                count += 1
            finally:
                os.close(fd)
        return count, size

    # -- archives ------------------------------------------------------------------------

    def save(self, images: Sequence[StoredImage], output: Path) -> int:
        """Write ``images`` as one oci-archive at ``output``, replaced atomically; its size."""
        from idpwrap import archive

        with self.reading():
            return archive.write_oci_archive(self, images, output)

    def load(self, source: Path, refs: Sequence[LocalRef] = ()) -> list[StoredImage]:
        """Every image of an oci-archive or docker-archive, under its names (or ``refs``)."""
        from idpwrap import archive

        try:
            with self.working_dir("load") as work:
                layout, images = archive.read_archive(source, work, list(refs))
                return self.add_images(layout, images)
        except OSError as error:  # writing the unpacked blobs: the store's own disk
            raise self._write_error(error) from error

    # -- the index file ------------------------------------------------------------------

    def _write_index(self, index: dict[str, Any]) -> None:
        data = json.dumps(index, separators=(",", ":")).encode()
        self._write_atomically(self.index_path, data)

    def _write_atomically(self, path: Path, data: bytes) -> None:
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
        _sync_directory(path.parent)


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
        content = _read_manifest(path, digest, cache, known_type=bool(media_type))
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


def _read_manifest(
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


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tree_size(path: str) -> int:
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total
