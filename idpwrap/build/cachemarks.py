"""When a whole-build entry of the registry build cache was last written or used.

A registry's tag list carries no dates, and a reproducible image's ``created`` is fixed (0, or
a commit time), so the entry image itself cannot tell its age. Beside each entry
``REPO:idpwrap-build-<fingerprint>`` idpwrap keeps a mark, ``REPO:idpwrap-used-<fingerprint>``:
a tiny OCI artifact (the empty ``{}`` blob as config and layer) whose annotation
``org.opencontainers.image.created`` is the wall-clock time of the write, and whose
``subject`` is the entry's image. It is written after the entry, and again on every hit, so
its time is "last used"; ``idpwrap cache trim`` reads it (cachetrim.py).
"""

from __future__ import annotations

import json
import re
import time
from typing import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.registry.repository import Repository

USED_PREFIX = "idpwrap-used-"
ARTIFACT_TYPE = "application/vnd.idpwrap.buildcache.used.v1"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CREATED = "org.opencontainers.image.created"
FINGERPRINT = "dev.idpwrap.buildcache.fingerprint"
RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?Z")


def used_tag(fingerprint: str) -> str:
    return f"{USED_PREFIX}{fingerprint}"


def format_time(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))


def parse_time(text: str) -> float | None:
    import calendar

    match = RFC3339.fullmatch(text.strip())
    if not match:
        return None
    return float(calendar.timegm((*(int(part) for part in match.groups()), 0, 0, 0)))


def mark_manifest(
    fingerprint: str, subject_digest: str, subject_type: str, subject_size: int, when: float
) -> bytes:
    """The mark's manifest: ``when`` (seconds since the epoch, UTC) as its created time."""
    empty = {"mediaType": EMPTY_TYPE, "digest": EMPTY_DIGEST, "size": len(EMPTY)}
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": empty,
        "layers": [empty],
        "subject": {"mediaType": subject_type, "digest": subject_digest, "size": subject_size},
        "annotations": {CREATED: format_time(when), FINGERPRINT: fingerprint},
    }
    return json.dumps(manifest, separators=(",", ":")).encode()


class Mark(NamedTuple):
    time: float
    subject: str


def read_mark(body: bytes) -> Mark | None:
    """A mark's time and subject digest; None for anything that is not idpwrap's mark."""
    try:
        manifest = json.loads(body)
        annotations = manifest.get("annotations") or {}
        if manifest.get("artifactType") != ARTIFACT_TYPE:
            return None
        when = parse_time(str(annotations.get(CREATED, "")))
        subject = str((manifest.get("subject") or {}).get("digest", ""))
    except (ValueError, AttributeError, TypeError):
        return None
    return Mark(when, subject) if when is not None else None


def write_mark(
    repository: Repository, fingerprint: str, entry_tag: str, when: float | None = None
) -> str:
    """Mark ``entry_tag`` (already in ``repository``) as written or used at ``when`` (now)."""
    from idpwrap.errors import RegistryError

    entry = repository.manifest(entry_tag)
    if entry is None:
        raise RegistryError(f"{repository.where()}:{entry_tag} is not there to be marked")
    repository.put_blob(EMPTY)
    body = mark_manifest(
        fingerprint, entry.digest, entry.media_type or MANIFEST_TYPE, len(entry.body),
        time.time() if when is None else when,
    )  # fmt: skip
    return repository.put_manifest(used_tag(fingerprint), MANIFEST_TYPE, body)
