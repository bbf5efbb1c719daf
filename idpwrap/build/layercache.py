"""buildah's layer cache, kept to one build time at a time.

buildah 1.28 matches cached layers by their instructions and parents only, not by the time
``--timestamp`` stamps into them: a build at time B would reuse the layers of a build at time A
and give an image no other machine can reproduce. So the storage remembers the time its cached
layers carry (a file beside it); a build at another time empties the cache first. Builds hold a
shared lock on that file while buildah runs, emptying takes it exclusively, so a build never
loses its layers under it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator

from idpwrap import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.tools.rootless import Storage

NOW_KEY = "now"


def marker_path(storage: Storage) -> str:
    return os.path.join(os.path.dirname(storage.root), f"{os.path.basename(storage.root)}.time")


def version_path(storage: Storage) -> str:
    """Where buildah's ``--version`` is remembered, beside the storage like the time marker."""
    return os.path.join(
        os.path.dirname(storage.root), f"{os.path.basename(storage.root)}.buildah-version"
    )


def time_key(seconds: int | None) -> str:
    return NOW_KEY if seconds is None else str(seconds)


def _read(handle: int) -> str:
    os.lseek(handle, 0, os.SEEK_SET)
    return os.read(handle, 64).decode("ascii", "replace").strip()


def _write(handle: int, key: str) -> None:
    os.ftruncate(handle, 0)
    os.pwrite(handle, key.encode() + b"\n", 0)
    os.fsync(handle)


def _has_content(root: str) -> bool:
    try:
        with os.scandir(root) as entries:
            return any(True for _ in entries)
    except OSError:
        return False


@contextlib.contextmanager
def holding(
    storage: Storage, seconds: int | None, empty: Callable[[Storage], object]
) -> Iterator[None]:
    """While inside, the cache of ``storage`` holds only layers made at ``seconds``."""
    wanted = time_key(seconds)
    handle = os.open(marker_path(storage), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        while True:
            fcntl.flock(handle, fcntl.LOCK_SH)
            found = _read(handle)
            if found == wanted:
                break
            fcntl.flock(handle, fcntl.LOCK_EX)
            found = _read(handle)
            # Unknown (a cache older than this file, or just pruned) counts as different.
            if found != wanted and (found or _has_content(str(storage.root))):
                log.info("layer cache: its layers carry time %s, this build %s: emptying it",
                         found or "unknown", wanted)  # fmt: skip
                empty(storage)
            if found != wanted:
                _write(handle, wanted)
            # Converting the lock is not atomic: check again under the shared lock.
        log.phase("build: layer cache's time checked")
        yield
    finally:
        os.close(handle)


@contextlib.contextmanager
def exclusive(storage: Storage) -> Iterator[None]:
    """No build runs while inside (``prune --build-cache``); the time is forgotten."""
    handle = os.open(marker_path(storage), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
        os.ftruncate(handle, 0)
    finally:
        os.close(handle)
