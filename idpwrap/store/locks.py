"""Where the store's files are, creating the layout, and the locks that serialise writers and
keep collection away from readers: an ``flock`` on ``.idpwrap.lock`` for writers, shared or
exclusive ones on ``.idpwrap.gc.lock`` for readers and collection, and one on each working
directory in ``.idpwrap.tmp`` for as long as its process lives."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator

from idpwrap.errors import StoreError
from idpwrap.refs import DIGEST_RE
from idpwrap.store.layout import (
    EMPTY_INDEX,
    INDEX_FILE,
    LAYOUT_CONTENT,
    LAYOUT_FILE,
    write_atomically,
)

TYPE_CHECKING = False  # typing (and pathlib) cost imports that a push should not pay
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

WRITE_LOCK = ".idpwrap.lock"
GC_LOCK = ".idpwrap.gc.lock"
TEMP_DIR = ".idpwrap.tmp"
# Temporary directories of this process and the descriptors whose flock marks them in use.
_HELD_TEMP_DIRS: dict[str, int] = {}


def held_by_this_process(path: str) -> bool:
    """Whether ``path`` is a working directory this process made and still uses."""
    return path in _HELD_TEMP_DIRS


class LockedLayout:
    """The files of the store at ``root``. What a push reads is reached through plain strings
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
            raise self.write_error(error) from error

    def write_error(self, error: OSError) -> StoreError:
        reason = error.strerror or str(error)
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return StoreError(
                f"store {self.root} is not writable ({reason}): choose another with --store"
                " or IDPWRAP_STORE; nothing in it was changed"
            )
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            from idpwrap import diskfull

            places = [diskfull.store_place(self.root), diskfull.temp_place()]
            return diskfull.from_error(error, places, "the store's previous content is intact")
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
                raise self.write_error(error) from error
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
            raise self.write_error(error) from error
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

    # -- the index file ------------------------------------------------------------------

    def _write_index(self, index: dict[str, Any]) -> None:
        from idpwrap.store.referrers import attached

        # A provenance goes in the same write as the last tag that reached its image.
        index = attached(index, self.blob_dir)
        data = json.dumps(index, separators=(",", ":")).encode()
        self._write_atomically(self.index_path, data)

    def _write_atomically(self, path: Path, data: bytes) -> None:
        write_atomically(path, data)
