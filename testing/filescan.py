"""Where a secret might have been written: files under a directory tree that contain it."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path


def files_containing(
    needle: bytes, roots: Sequence[Path], since: float = 0.0, skip: Sequence[Path] = ()
) -> list[str]:
    """Regular files under ``roots`` whose bytes contain ``needle`` (symlinks not followed).

    Only files written or changed at or after ``since`` (a ``time.time()``) are read: a secret
    made at that moment cannot be in anything older, and /tmp may hold gigabytes of others'.
    Other filesystems mounted below a root are not entered (someone's chroot may have /proc
    mounted under /tmp; an overlay's merged view repeats files that are read where they lie).
    """
    found = []
    skipped = {str(path) for path in skip}
    overlap = len(needle) - 1

    def same_filesystem(path: str, device: int) -> bool:
        try:
            return os.lstat(path).st_dev == device
        except OSError:
            return False

    for root in roots:
        try:
            device = os.lstat(root).st_dev
        except OSError:
            continue
        for directory, dirs, files in os.walk(root, followlinks=False):
            dirs[:] = [
                name
                for name in dirs
                if os.path.join(directory, name) not in skipped
                and same_filesystem(os.path.join(directory, name), device)
            ]
            for name in files:
                path = os.path.join(directory, name)
                try:
                    status = os.lstat(path)
                    if not stat.S_ISREG(status.st_mode):
                        continue
                    if max(status.st_mtime, status.st_ctime) < since:
                        continue
                    with open(path, "rb") as handle:
                        tail = b""
                        for chunk in iter(lambda handle=handle: handle.read(1 << 20), b""):
                            if needle in tail + chunk:
                                found.append(path)
                                break
                            tail = chunk[-overlap:] if overlap else b""
                except OSError:
                    continue
    return found
