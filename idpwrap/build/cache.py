"""Recognising a build that would change nothing, before buildah runs.

A fully cached ``buildah bud --layers`` still costs about half a second, and writes a new image
(a new ``created`` time, so a new digest) for the same content. A build whose every input is
unchanged is recognised here instead, and only its tags move to the manifest built before.

The fingerprint is a SHA-256 over everything the image can depend on: the Containerfile, every
file of the context a build may copy (``.containerignore``/``.dockerignore`` applied, see
``ignore.py``: path, type, mode, owner, size, content or link target; not the modification
time, which buildah's own cache ignores too), the build arguments, target, labels and platform,
the secrets' content hashes (never the content), the build's time and git revision and remote
(``timestamps.py``: they are written into the image), the isolation, rootless or not, the buildah
binary (size and time), idpwrap's version, and each base image's digest. A base counts only
when it is ``scratch``, pinned by a digest (``name@sha256:...``) or a stored image (it
resolves to the store's manifest); a base that could change under the same name, ``ADD`` of a
URL, a ``Containerfile.in`` (preprocessed with cpp) or anything the reader is unsure about
makes the build always run buildah. Errors go one way: a false "changed" costs a build, a
false "unchanged" would give a wrong image.

Each file's content digest comes from ``hashcache.py``: kept between builds under the file's
inode, size and times, so an unchanged context is a walk of ``lstat`` calls, and a changed one
reads only what changed (a file too recently written to trust its times is read every time).
The fingerprint is taken again after buildah, through the same digests.

Records live in the store, ``.idpwrap.builds.json`` (fingerprint -> manifest digest), written
atomically under the store's write lock; a record whose manifest no tag names any more is
ignored, so ``rmi`` and ``prune`` need not know about them.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections import namedtuple
from collections.abc import Mapping, Sequence
from pathlib import Path

from idpwrap import __version__, log
from idpwrap.build import containerfile, hashcache, ignore
from idpwrap.build.hashcache import HashCache
from idpwrap.errors import ImageNotFound, StoreError
from idpwrap.store import layout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from idpwrap.refs import LocalRef
    from idpwrap.store.api import Store, StoredImage

FINGERPRINT_VERSION = 2
RECORDS_FILE = ".idpwrap.builds.json"
MAX_RECORDS = 1000


class BuildInputs(
    namedtuple(
        "BuildInputs",
        "context containerfile build_args target labels platform secrets isolation rootless"
        " build_time format",
        defaults=((None, None, None), "oci"),
    )
):
    """What a build's result depends on, besides its context's files and its bases."""

    __slots__ = ()
    context: Path
    containerfile: Path
    build_args: Mapping[str, str]
    target: str | None
    labels: Sequence[str]
    platform: str | None
    secrets: Sequence[tuple[str, Path]]  # (id, file)
    isolation: str
    rootless: bool
    # (seconds or None for the wall clock, git revision, git remote): what the image records.
    build_time: tuple[int | None, str | None, str | None]
    format: str  # oci or docker: the same inputs make a different image in each


class Fingerprint(namedtuple("Fingerprint", "digest reason")):
    """``digest`` (hex) when the build can be recognised, else None and ``reason`` why not."""

    __slots__ = ()
    digest: str | None
    reason: str | None


def file_digest(path: str | Path) -> str:
    return hashcache.file_digest(str(path))


def base_digests(
    text: str, build_args: Mapping[str, str], images: Sequence[StoredImage]
) -> tuple[list[str], str | None]:
    """The digest of each image the build reads, or (partial list, why one has none)."""
    from idpwrap.build.bases import find_stored

    found = containerfile.sources(text, build_args)
    if found.unknown:
        return [], found.unknown
    digests = []
    for name in found.images:
        if name.lower() == "scratch":
            digests.append("scratch")
            continue
        stored = find_stored(images, name)
        if stored is not None:
            digests.append(f"store {stored.digest}")
        elif "@sha256:" in name:
            digests.append(f"pinned {name}")
        else:
            return digests, f"base {name} is neither pinned by a digest nor in the store"
    return digests, None


def tool_identity(program: str, path: str) -> str:
    """Size and modification time of ``program`` on ``path``: a new buildah builds anew."""
    for directory in path.split(os.pathsep):
        candidate = os.path.join(directory or ".", program)
        try:
            info = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            return f"{candidate} {info.st_size} {info.st_mtime_ns}"
    return f"{program} not found"


def fingerprint(
    inputs: BuildInputs,
    images: Sequence[StoredImage],
    *,
    buildah_path: str,
    hashes: HashCache | None = None,
) -> Fingerprint:
    """The build's fingerprint; ``hashes`` keeps the context's file digests between the
    fingerprints of one build and between builds (hashcache.py), else each file is read."""
    if hashes is None:
        hashes = hashcache.in_memory()
    if inputs.containerfile.name.endswith(".in"):
        return Fingerprint(None, "a .in Containerfile is preprocessed with cpp")
    try:
        text_bytes = inputs.containerfile.read_bytes()
    except OSError as error:
        return Fingerprint(None, f"cannot read {inputs.containerfile}: {error.strerror}")
    text = text_bytes.decode("utf-8", "replace")
    bases, unknown = base_digests(text, inputs.build_args, images)
    if unknown:
        return Fingerprint(None, unknown)
    digest = hashlib.sha256()
    header = {
        "version": FINGERPRINT_VERSION,
        "idpwrap": __version__,
        "buildah": tool_identity("buildah", buildah_path),
        "containerfile": hashlib.sha256(text_bytes).hexdigest(),
        "bases": bases,
        "build_args": sorted(inputs.build_args.items()),
        "target": inputs.target,
        "labels": list(inputs.labels),
        "platform": inputs.platform,
        "isolation": inputs.isolation,
        "rootless": inputs.rootless,
        "build_time": list(inputs.build_time),
    }
    if inputs.format != "oci":
        header["format"] = inputs.format
    secrets = []
    for secret_id, path in inputs.secrets:
        try:
            secrets.append((secret_id, file_digest(path)))
        except OSError as error:
            return Fingerprint(None, f"cannot read secret {secret_id}: {error.strerror}")
    header["secrets"] = secrets
    digest.update(json.dumps(header, sort_keys=True).encode())
    rules = ignore.for_context(inputs.context)
    digest.update(f"\0ignore {rules.source} {rules.certain}\n".encode())
    try:
        for path, info in ignore.walk(inputs.context, rules):
            digest.update(_entry_line(inputs.context, path, info, hashes))
    except OSError as error:
        return Fingerprint(None, f"cannot read the context: {error}")
    return Fingerprint(digest.hexdigest(), None)


def _entry_line(context: Path, path: str, info: os.stat_result, hashes: HashCache) -> bytes:
    mode = info.st_mode
    owner = f"{info.st_uid}:{info.st_gid}"
    name = path.encode("utf-8", "surrogateescape")
    if stat.S_ISREG(mode):
        content = hashes.digest(path, os.path.join(context, path), info)
        detail = f"f {stat.S_IMODE(mode):o} {owner} {info.st_size} {content}"
    elif stat.S_ISDIR(mode):
        detail = f"d {stat.S_IMODE(mode):o} {owner}"
    elif stat.S_ISLNK(mode):
        target = os.readlink(os.path.join(context, path))
        detail = f"l {owner} {target}"
    else:  # a device, socket or pipe: its type and numbers, never its content
        detail = f"o {stat.S_IFMT(mode):o} {stat.S_IMODE(mode):o} {owner} {info.st_rdev}"
    return b"\0" + name + b"\0" + detail.encode("utf-8", "surrogateescape") + b"\n"


# -- records in the store ----------------------------------------------------------------------


def read_records(store: Store) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((store.root / RECORDS_FILE).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        log.info("ignoring unreadable build records %s: %s", store.root / RECORDS_FILE, error)
        return {}
    builds = data.get("builds") if isinstance(data, dict) else None
    return builds if isinstance(builds, dict) else {}


def reuse(store: Store, fingerprint_digest: str, refs: Sequence[LocalRef]) -> StoredImage | None:
    """Tag the image an identical build made, if the store still has it; else None."""
    record = read_records(store).get(fingerprint_digest)
    if not isinstance(record, dict) or not isinstance(record.get("digest"), str):
        return None
    image = next((i for i in store.images() if i.digest == record["digest"]), None)
    if image is None:
        log.info("the image of an identical build (%s) is gone: building", record["digest"])
        return None
    try:
        from idpwrap.store import indexes

        if indexes.is_index(image):
            blobs = indexes.index_blobs(store, image)
        else:
            blobs = store.details(image).blobs
        for digest, size in blobs:
            if store.blob_path(digest).stat().st_size != size:
                return None
        tagged = store.tag(image, list(refs))
    except (ImageNotFound, StoreError, OSError) as error:
        log.info("cannot reuse %s (%s): building", record["digest"], error)
        return None
    return tagged[0]


def remember(store: Store, fingerprint_digest: str, image: StoredImage) -> None:
    """Record that this fingerprint built ``image``; dropping records of manifests no tag
    names, and the oldest beyond MAX_RECORDS."""
    try:
        with store.write_lock():
            records = read_records(store)
            named = {entry.get("digest") for entry in store.read_index()["manifests"]}
            records = {
                key: value
                for key, value in records.items()
                if isinstance(value, dict) and value.get("digest") in named
            }
            records[fingerprint_digest] = {"digest": image.digest, "time": int(time.time())}
            if len(records) > MAX_RECORDS:
                newest = sorted(records.items(), key=lambda item: item[1].get("time", 0))
                records = dict(newest[-MAX_RECORDS:])
            data = json.dumps({"version": 1, "builds": records}, separators=(",", ":"))
            # Rename without fsync: a record lost to a power failure costs one build, and one
            # that cannot be read is ignored (read_records); two fsyncs were 2 to 20 ms of
            # every build here.
            layout.write_replacing(store.root / RECORDS_FILE, data.encode())
    except (OSError, StoreError) as error:
        # The image is saved; only the shortcut for the next identical build is lost.
        log.info("could not record the build for reuse: %s", error)
