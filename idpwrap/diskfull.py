"""A full disk, said once: which filesystem (its mount point, type and free space), what idpwrap
keeps there, and what to do, whether our own write failed (ENOSPC, EDQUOT) or buildah's or
skopeo's did (their output says "no space left on device" or "disk quota exceeded").

A tool's output often names the file it could not write; its filesystem is the full one. When
it names none (or only paths inside a build container, which mean nothing here), the place we
know of with the least room left is named.
"""

from __future__ import annotations

import errno
import os
import re
from collections import namedtuple
from collections.abc import Iterable, Sequence

from idpwrap.errors import DiskFull

FULL_TEXT = re.compile(r"no space left on device|disk quota exceeded", re.IGNORECASE)
QUOTA_TEXT = re.compile(r"disk quota exceeded", re.IGNORECASE)
PATH_TEXT = re.compile(r"(/[^\s\"':,;()]+)")
LOW_ROOM = 1024 * 1024


class Place(namedtuple("Place", "path holds advice")):
    """Somewhere idpwrap or its tools write: the path, what it holds there, the way out."""

    __slots__ = ()
    path: str
    holds: str
    advice: str


def is_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def says_full(text: str) -> bool:
    return FULL_TEXT.search(text) is not None


def temp_place() -> Place:
    """The temporary directory of idpwrap and of buildah and skopeo (containers/image puts its
    big temporary files in $TMPDIR, else /var/tmp)."""
    path = os.environ.get("TMPDIR") or "/var/tmp"
    return Place(path, "temporary files", "set TMPDIR to a directory on a larger filesystem")


def store_place(root: str | os.PathLike[str]) -> Place:
    return Place(
        str(root),
        f"the store {root}",
        "free some space there (idpwrap rmi, idpwrap prune) or choose another store with"
        " --store or IDPWRAP_STORE",
    )


def buildah_place(root: str | os.PathLike[str]) -> Place:
    return Place(
        str(root),
        f"buildah's storage {root}",
        "free some space there (idpwrap prune also empties buildah's layer cache) or set"
        " XDG_DATA_HOME to a directory on a larger filesystem",
    )


def existing(path: str) -> str | None:
    """``path`` or its nearest existing parent, resolved; None for a bare ``/`` guess."""
    path = os.path.realpath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    return path


def mount_of(path: str) -> tuple[str, str]:
    """(mount point, filesystem type) of ``path``, from /proc/self/mountinfo: the longest
    mount point above it on its device."""
    try:
        device = os.stat(path).st_dev
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return path, "?"
    best = ("/", "?")
    for line in lines:
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        major, minor = (int(part) for part in fields[2].split(":"))
        point = fields[4].replace("\\040", " ")
        fstype = line.split(" - ", 1)[1].split()[0]
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if os.makedev(major, minor) == device and inside and len(point) >= len(best[0]):
            best = (point, fstype)
    return best


def room(path: str) -> tuple[int, int, float]:
    """(bytes free to us, bytes in all, the free share) of ``path``'s filesystem."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return 0, 0, 0.0
    free, total = stats.f_bavail * stats.f_frsize, stats.f_blocks * stats.f_frsize
    return free, total, free / total if total else 0.0


def error_for(place: Place, path: str, quota: bool, kept: str) -> DiskFull:
    point, fstype = mount_of(path)
    free, total, _ = room(path)
    return DiskFull.on(point, fstype, free, total, quota, place.holds, place.advice, kept)


def choose(
    places: Sequence[Place], named: Iterable[str], trusted: bool = False
) -> tuple[Place, str]:
    """The place that is full, and a path on its filesystem: the first ``named`` path (from
    an error) on the filesystem of one of ``places`` (or, ``trusted``: a path of this machine,
    wherever it is), else the place with the least room."""
    known = [(place, existing(place.path)) for place in places]
    known = [(place, path) for place, path in known if path is not None]
    for candidate in named:
        path = existing(candidate)
        if path is None or path == "/":
            continue  # a path inside a build container, or nothing we can look at
        device = os.stat(path).st_dev
        matching = [(place, where) for place, where in known if os.stat(where).st_dev == device]
        # several places on one filesystem: the one the path is under
        for place, where in sorted(matching, key=lambda item: -len(item[1])):
            if path.startswith(where.rstrip("/") + "/") or path == where:
                return place, path
        if matching:
            return matching[0][0], path
        if trusted:
            return Place(path, f"files ({candidate})", "free some space there"), path
    if not known:
        return temp_place(), "/"
    return min(known, key=lambda item: room(item[1])[2])


def from_output(text: str, places: Sequence[Place], kept: str) -> DiskFull | None:
    """The error to raise when a tool's ``text`` says a disk was full, else None."""
    named: list[str] = []
    for line in text.splitlines():
        for match in FULL_TEXT.finditer(line):
            # the file that could not be written comes right before the words (Go's
            # "write PATH: no space left on device"); paths further left are context
            named += reversed(PATH_TEXT.findall(line[: match.start()]))
    if not FULL_TEXT.search(text):
        return None
    place, path = choose(places, named)
    return error_for(place, path, QUOTA_TEXT.search(text) is not None, kept)


def nearly_full(places: Sequence[Place], kept: str) -> DiskFull | None:
    """A tool failed without saying why, and one of ``places`` has less than ``LOW_ROOM``
    left: that is the likeliest reason (buildah 1.28 says "io: read/write on closed pipe"
    when $TMPDIR fills up under it)."""
    for place in places:
        path = existing(place.path)
        if path is not None and room(path)[1] and room(path)[0] < LOW_ROOM:
            return error_for(place, path, False, kept)
    return None


def from_error(error: OSError, places: Sequence[Place], kept: str) -> DiskFull:
    """The error to raise for our own write that failed with ENOSPC or EDQUOT."""
    named = [str(name) for name in (error.filename, error.filename2) if name]
    place, path = choose(places, named, trusted=True)
    return error_for(place, path, error.errno == errno.EDQUOT, kept)
