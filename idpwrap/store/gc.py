"""Garbage collection: after a delete, and ``prune``. A blob goes only when no remaining tag
reaches it (through manifests, image indexes and configs), and only after the index that named
it is gone; nothing goes while a push or save holds the reading lock."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections import namedtuple

from idpwrap import log
from idpwrap.errors import StoreError
from idpwrap.store.layout import is_atomic_temp, tree_size, walk_blobs
from idpwrap.store.locks import GC_LOCK, TEMP_DIR, held_by_this_process
from idpwrap.store.unused import NOTHING, Unused, classify

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path
    from typing import Any

    from idpwrap.refs import LocalRef
    from idpwrap.store.api import Store


class PruneReport(
    namedtuple(
        "PruneReport",
        "blobs blob_bytes leftovers leftover_bytes untagged untagged_bytes",
        defaults=(0, 0),
    )
):
    """What ``prune`` removed: unreferenced blobs (``untagged`` of them: of images no tag
    names any more), and leftovers of interrupted commands."""

    __slots__ = ()
    blobs: int
    blob_bytes: int
    leftovers: int
    leftover_bytes: int
    untagged: int
    untagged_bytes: int

    @property
    def freed(self) -> int:
        return self.blob_bytes + self.leftover_bytes


def collect_after_delete(
    store: Store, refs: list[LocalRef], stages: list[dict[str, Any]]
) -> tuple[list[tuple[LocalRef, int]], Unused, bool]:
    """Under the write lock, after the index without ``refs`` is written: remove the blobs
    nothing reaches any more, unless a reader holds the collection lock (then prune does it).

    ``stages`` are the index before and after each ref went, so that each ref is told the
    bytes only it used."""
    try:
        gc = os.open(store.root / GC_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return [(ref, 0) for ref in refs], NOTHING, False
    try:
        try:
            fcntl.flock(gc, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("a push or save is reading the store: unreferenced blobs stay until prune")
            return [(ref, 0) for ref in refs], NOTHING, False
        cache: dict[str, dict[str, Any] | None] = {}
        try:
            reachable = [
                set(walk_blobs(stage["manifests"], store.blob_dir, cache=cache)) for stage in stages
            ]
        except StoreError as error:
            log.info("%s: unreferenced blobs stay until prune", error)
            return [(ref, 0) for ref in refs], NOTHING, False
        present = blob_sizes(store.blob_dir)
        freed = []
        for number, ref in enumerate(refs):
            only = reachable[number] - reachable[number + 1]
            freed.append((ref, sum(present.get(digest, 0) for digest in only)))
        # already unreferenced before this delete: an earlier rebuild's, or an interruption's
        orphans = classify(store.blob_dir, set(present) - reachable[0], present)
        remove_blobs(store.blob_dir, set(present) - reachable[-1])
        return freed, orphans, True
    finally:
        os.close(gc)


def blob_sizes(blob_dir: Path) -> dict[str, int]:
    """Every file under ``blobs/sha256`` (blob or not) as "sha256:NAME" -> size."""
    sizes = {}
    try:
        entries = list(os.scandir(blob_dir))
    except FileNotFoundError:
        return {}
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) or entry.is_symlink():
                sizes[f"sha256:{entry.name}"] = entry.stat(follow_symlinks=False).st_size
    return sizes


def remove_blobs(blob_dir: Path, digests: Iterable[str]) -> None:
    for digest in digests:
        with contextlib.suppress(FileNotFoundError):
            (blob_dir / digest.split(":", 1)[1]).unlink()


def prune(store: Store, on_wait: Callable[[], None] | None = None) -> PruneReport:
    """Remove unreferenced blobs and what interrupted commands left behind: temporary
    directories whose process is gone, and temporary files of an index write.

    Waits (after ``on_wait``) for pushes and saves reading the store. A corrupt index, or
    a manifest that cannot be read, stops it before anything is removed.
    """
    if not store.index_path.exists():
        return PruneReport(0, 0, 0, 0)
    try:
        with store.collecting(on_wait), store.write_lock():
            index = store.read_index()
            reachable = set(walk_blobs(index["manifests"], store.blob_dir))
            leftovers, leftover_bytes = remove_leftovers(store.root)
            present = blob_sizes(store.blob_dir)
            unreferenced = set(present) - reachable
            unused = classify(store.blob_dir, unreferenced, present)
            remove_blobs(store.blob_dir, unreferenced)
    except OSError as error:
        raise store.write_error(error) from error
    blob_bytes = sum(present[digest] for digest in unreferenced)
    return PruneReport(
        len(unreferenced), blob_bytes, leftovers, leftover_bytes, unused.untagged,
        unused.untagged_bytes,
    )  # fmt: skip


def remove_leftovers(root: Path) -> tuple[int, int]:
    """Under the write lock: abandoned temporary directories and atomic-write files."""
    from idpwrap.scratch import remove_tree

    count = size = 0
    for entry in os.scandir(root):
        if is_atomic_temp(entry.name) and not entry.is_dir():
            size += entry.stat(follow_symlinks=False).st_size
            os.unlink(entry.path)
            count += 1
    temp = root / TEMP_DIR
    entries = list(os.scandir(temp)) if temp.is_dir() else []
    for entry in entries:
        if held_by_this_process(entry.path):
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
            size += tree_size(entry.path)
            remove_tree(entry.path)
            count += 1
        finally:
            os.close(fd)
    return count, size
