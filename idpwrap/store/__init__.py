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

Modules: ``layout`` (the format on disk, atomic writes), ``locks`` (paths, creation, locks,
working directories), ``api`` (the ``Store``), ``gc`` (collection, imported when it runs).
"""

from __future__ import annotations

from idpwrap.refs import LocalRef
from idpwrap.store.api import ImageDetails, Store, StoredImage, default_root
from idpwrap.store.layout import (
    ATOMIC_TEMP_SUFFIX_LENGTH,
    EMPTY_INDEX,
    HEX,
    INDEX_FILE,
    INDEX_TYPES,
    LAYOUT_CONTENT,
    LAYOUT_FILE,
    MANIFEST_TYPES,
    MAX_UNTYPED_JSON,
    REF_ANNOTATION,
    is_atomic_temp,
    is_blob_name,
    layout_is_whole,
    ref_name,
    walk_blobs,
)
from idpwrap.store.locks import GC_LOCK, TEMP_DIR, WRITE_LOCK

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.store.gc import PruneReport

__all__ = [
    "ATOMIC_TEMP_SUFFIX_LENGTH",
    "EMPTY_INDEX",
    "GC_LOCK",
    "HEX",
    "INDEX_FILE",
    "INDEX_TYPES",
    "LAYOUT_CONTENT",
    "LAYOUT_FILE",
    "MANIFEST_TYPES",
    "MAX_UNTYPED_JSON",
    "REF_ANNOTATION",
    "TEMP_DIR",
    "WRITE_LOCK",
    "ImageDetails",
    "LocalRef",
    "PruneReport",
    "Store",
    "StoredImage",
    "default_root",
    "is_atomic_temp",
    "is_blob_name",
    "layout_is_whole",
    "ref_name",
    "walk_blobs",
]


def __getattr__(name: str) -> object:
    # Collection is imported when it runs, not by every command that reads the store.
    if name == "PruneReport":
        from idpwrap.store.gc import PruneReport

        return PruneReport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
