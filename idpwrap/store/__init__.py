"""The local image store: one OCI image layout, each tag an ``index.json`` entry.

Invariants (docs/development.md and docs/store.md):
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
working directories), ``api`` (the ``Store``), ``indexes`` (multi-platform images), ``gc``
(collection, imported when it runs), ``unused`` (unreferenced blobs by origin), ``archive``
and ``archivesave`` (``load`` and ``save``). This file imports none of them, so importing one
costs only what it uses.
"""
