"""Private scratch directories for one command, and removing them.

Plain ``os`` calls: ``tempfile`` and ``shutil`` cost imports that a push should not pay.
"""

from __future__ import annotations

import os


def private_directory(prefix: str) -> str:
    """A new 0700 directory in ``$TMPDIR`` (default /tmp), named ``prefix`` + random hex."""
    base = os.environ.get("TMPDIR") or "/tmp"
    if ":" in base:
        # buildah and skopeo read oci:PATH:NAME up to the first colon: none may be in PATH.
        base = "/tmp"
    for _ in range(100):
        path = os.path.join(base, prefix + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a private directory in {base}")


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove ``path`` and what is in it; symbolic links are removed, never followed."""
    for directory, subdirectories, files in os.walk(path, topdown=False):
        for name in files:
            _remove(os.unlink, os.path.join(directory, name))
        for name in subdirectories:
            child = os.path.join(directory, name)
            _remove(os.unlink if os.path.islink(child) else os.rmdir, child)
    _remove(os.rmdir, os.fspath(path))


def _remove(remove: object, path: str) -> None:
    try:
        remove(path)  # type: ignore[operator]
    except FileNotFoundError:
        pass
