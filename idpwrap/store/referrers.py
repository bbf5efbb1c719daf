"""A build's provenance kept with its image: an OCI artifact manifest in the store whose
``subject`` is the image, named by an untagged ``index.json`` entry.

The artifact (``artifactType`` ``application/vnd.in-toto+json``) has the empty config
(``{}``) and one layer, the in-toto statement. Its ``index.json`` entry carries no tag, so
``images`` never lists it, and it refers to its image by ``subject``, so collection (which
follows ``subject`` like ``config``) keeps the statement's blobs as long as the entry is there.

The entry is there exactly as long as a tag reaches its subject (the image, or a child of a
tagged index): every write of ``index.json`` goes through ``attached``, which drops the entries
of subjects no tag reaches any more, in the same atomic write that untags them. So ``tag`` keeps
the provenance (the digest is the same), ``rmi`` and a rebuild that moves the tag drop it, and
collection then frees its blobs with the image's. ``save`` writes the entries of the images it
saves into the archive, ``load`` takes them back in.
"""

from __future__ import annotations

import json
import os

from idpwrap.errors import StoreError
from idpwrap.store.layout import INDEX_FILE, INDEX_TYPES, ref_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from pathlib import Path
    from typing import Any

    from idpwrap.store.api import Store, StoredImage

IN_TOTO = "application/vnd.in-toto+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
PREDICATE_ANNOTATION = "in-toto.io/predicate-type"


def is_referrer(entry: Mapping[str, Any]) -> bool:
    """An ``index.json`` entry of ours: an in-toto artifact, untagged."""
    return entry.get("artifactType") == IN_TOTO and not ref_name(dict(entry))


def _digest(data: bytes) -> str:
    import hashlib

    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def write_artifact(
    blob_dir: Path, subject: Mapping[str, Any], statement: bytes, predicate_type: str
) -> dict[str, Any]:
    """The artifact's blobs (statement, empty config, manifest) into ``blob_dir``; returns the
    ``index.json`` entry that names it."""
    subject = {key: subject[key] for key in ("mediaType", "digest", "size") if key in subject}
    layer = {"mediaType": IN_TOTO, "digest": _digest(statement), "size": len(statement),
             "annotations": {PREDICATE_ANNOTATION: predicate_type}}  # fmt: skip
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": IN_TOTO,
        "config": {"mediaType": EMPTY_TYPE, "digest": _digest(EMPTY), "size": len(EMPTY)},
        "layers": [layer], "subject": subject,
        "annotations": {PREDICATE_ANNOTATION: predicate_type},
    }  # fmt: skip
    data = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
    blob_dir.mkdir(parents=True, exist_ok=True)
    for blob in (statement, EMPTY, data):
        path = blob_dir / _digest(blob).split(":", 1)[1]
        if not path.exists():
            path.write_bytes(blob)
    return {"mediaType": OCI_MANIFEST, "digest": _digest(data), "size": len(data),
            "artifactType": IN_TOTO}  # fmt: skip


def _read(blob_dir: Path, digest: str) -> dict[str, Any] | None:
    try:
        content = json.loads((blob_dir / digest.split(":", 1)[1]).read_bytes())
    except (OSError, ValueError, IndexError):
        return None
    return content if isinstance(content, dict) else None


def subject_of(blob_dir: Path, entry: Mapping[str, Any]) -> str | None:
    manifest = _read(blob_dir, str(entry.get("digest", "")))
    subject = manifest.get("subject") if manifest else None
    return str(subject.get("digest")) if isinstance(subject, dict) else None


def reached(blob_dir: Path, entries: Iterable[Mapping[str, Any]]) -> set[str]:
    """The manifest digests ``entries`` name: theirs, and the children of the indexes."""
    found: set[str] = set()
    for entry in entries:
        digest = str(entry.get("digest", ""))
        found.add(digest)
        if entry.get("mediaType") in INDEX_TYPES:
            content = _read(blob_dir, digest) or {}
            for child in content.get("manifests") or []:
                if isinstance(child, dict):
                    found.add(str(child.get("digest", "")))
    return found


def attached(index: dict[str, Any], blob_dir: Path) -> dict[str, Any]:
    """``index`` without the artifacts whose subject no tag reaches, and with one artifact per
    subject (the last added)."""
    manifests = index.get("manifests") or []
    ours = [entry for entry in manifests if is_referrer(entry)]
    if not ours:
        return index
    tagged = reached(blob_dir, [entry for entry in manifests if ref_name(entry)])
    newest: dict[str, str] = {}
    for entry in ours:
        subject = subject_of(blob_dir, entry)
        if subject in tagged:
            newest[str(subject)] = str(entry["digest"])
    keep = set(newest.values())
    kept = [e for e in manifests if not is_referrer(e) or e["digest"] in keep]
    # the same artifact twice (an image tagged twice): once
    seen: set[str] = set()
    unique = []
    for entry in kept:
        if is_referrer(entry):
            if entry["digest"] in seen:
                continue
            seen.add(entry["digest"])
        unique.append(entry)
    return {**index, "manifests": unique}


def attach(store: Store, layout: Path, entries: list[dict[str, Any]]) -> None:
    """Name the artifacts ``entries`` (their blobs in ``layout``) in the store, in one index
    write; an artifact whose subject no tag reaches is dropped by that write."""
    if not entries:
        return
    blob_dir = layout / "blobs" / "sha256"
    own: dict[str, int | None] = {}
    for entry in entries:  # the subject is a stored image: only the artifact's blobs move in
        manifest = _read(blob_dir, str(entry["digest"]))
        if manifest is None:
            raise StoreError(f"the provenance {entry['digest']} is missing from {layout}")
        own[str(entry["digest"])] = int(entry["size"])
        for part in [manifest.get("config"), *(manifest.get("layers") or [])]:
            if isinstance(part, dict):
                own[str(part["digest"])] = int(part["size"])
    try:
        with store.write_lock():
            store._move_blobs(blob_dir, own, [])
            index = store.read_index()
            new = {entry["digest"] for entry in entries}
            manifests = [e for e in index["manifests"] if e.get("digest") not in new]
            store._write_index({**index, "manifests": manifests + entries})
    except OSError as error:
        raise store.write_error(error) from error


def attach_from_layout(store: Store, layout: Path) -> int:
    """The artifacts an unpacked archive's ``index.json`` names, attached; how many."""
    try:
        index = json.loads((layout / INDEX_FILE).read_bytes())
    except (OSError, ValueError):
        return 0
    entries = [e for e in index.get("manifests") or [] if isinstance(e, dict) and is_referrer(e)]
    attach(store, layout, entries)
    return len(entries)


def for_images(store: Store, images: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The store's artifact entries whose subject ``images`` (descriptors) reach."""
    wanted = reached(store.blob_dir, images)
    return [
        entry
        for entry in store.read_index()["manifests"]
        if is_referrer(entry) and subject_of(store.blob_dir, entry) in wanted
    ]


def _kept_for(store: Store, digest: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(artifact digest, its manifest) of each stored artifact whose subject is ``digest``."""
    for entry in store.read_index()["manifests"]:
        if not is_referrer(entry):
            continue
        manifest = _read(store.blob_dir, str(entry["digest"]))
        if manifest and (manifest.get("subject") or {}).get("digest") == digest:
            yield str(entry["digest"]), manifest


def statement(store: Store, digest: str) -> bytes | None:
    """The in-toto statement kept for the manifest ``digest``, as stored."""
    for _, manifest in _kept_for(store, digest):
        for layer in manifest.get("layers") or []:
            if layer.get("mediaType") == IN_TOTO:
                try:
                    return store.blob_path(str(layer["digest"])).read_bytes()
                except OSError:
                    return None
    return None


def artifact(store: Store, digest: str) -> tuple[bytes, dict[str, bytes]] | None:
    """The provenance artifact kept for the manifest ``digest``: its manifest's bytes (so that
    a registry gets the digest the store has) and its blobs by digest; None without one."""
    for artifact_digest, manifest in _kept_for(store, digest):
        try:
            data = store.blob_path(artifact_digest).read_bytes()
            parts = [manifest.get("config"), *(manifest.get("layers") or [])]
            blobs = {str(part["digest"]): store.blob_path(str(part["digest"])).read_bytes()
                     for part in parts if isinstance(part, dict)}  # fmt: skip
        except (OSError, KeyError):
            return None
        return data, blobs
    return None


def pushed_digests(store: Store, image: StoredImage, whole: bool) -> list[str]:
    """The manifests a push copies: the image; of a whole index, its children, then it."""
    if not whole:
        return [image.digest]
    children = sorted(reached(store.blob_dir, [image.descriptor]) - {image.digest})
    return [*children, image.digest]


def statements(store: Store, image: StoredImage, whole: bool) -> dict[str, bytes]:
    """digest -> statement for what a push copies: the image, or an index and its children."""
    digests = [image.digest]
    if whole:
        digests += sorted(reached(store.blob_dir, [image.descriptor]) - {image.digest})
    found = {}
    for digest in digests:
        text = statement(store, digest)
        if text is not None:
            found[digest] = text
    return found


def working_layout(directory: Path) -> Path:
    """A directory for artifacts about to be attached."""
    path = directory / f"provenance-{os.getpid()}"
    (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    return path
