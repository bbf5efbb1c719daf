"""Private scratch directories for one command, and removing them.

Plain ``os`` calls: ``tempfile`` and ``shutil`` cost imports that a push should not pay.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


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


@contextlib.contextmanager
def unlinked_file(prefix: str, data: bytes) -> Iterator[int]:
    """An open descriptor, at offset 0, on a 0600 file holding ``data`` that no longer has a
    name on disk: made in a private 0700 directory and unlinked at once, so nothing is left
    behind even after ``kill -9``. A tool reads it as ``/dev/fd/N``; rewind it before a retry.
    """
    directory = private_directory(prefix)
    path = os.path.join(directory, "secret")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.unlink(path)
    finally:
        os.rmdir(directory)
    try:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
        yield fd
    finally:
        os.close(fd)


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
