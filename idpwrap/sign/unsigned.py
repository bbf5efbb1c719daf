"""``idpwrap verify IMAGE`` without ``--key``: the unsigned provenance ``push --provenance``
attached (registry/referrers.py), found through the referrers API or the referrers tag schema,
read and checked like the signed one (attest.check).

Unsigned, it says what the image was built from, never who made it: anyone who may push to
the repository may replace it. Each statement is taken only from an artifact whose ``subject``
is the image's digest and whose blobs have the digests their descriptors name.
"""

from __future__ import annotations

import json

from idpwrap import log
from idpwrap.errors import ImageNotFound, NotVerified, RegistryError
from idpwrap.registry import referrers as remote
from idpwrap.registry.api import TIMEOUT_SECONDS
from idpwrap.registry.manifests import FOUND, MANIFEST_TYPES, MISSING, TagReader
from idpwrap.sign.attest import PREDICATE_TYPE
from idpwrap.store.referrers import IN_TOTO

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from idpwrap.creds.credentials import Credentials
    from idpwrap.refs import Registry
    from idpwrap.tls import TlsTrust


def image_digest(reader: TagReader, tag: str) -> str:
    """The digest ``tag`` serves; ImageNotFound when it serves none."""
    lookup = reader.digest(tag)
    if lookup.state == FOUND:
        return lookup.digest
    name = f"{reader.registry.host}/{reader.repository}:{tag}"
    if lookup.state == MISSING:
        raise ImageNotFound(f"{name} is not in the registry: check the name and tag")
    raise RegistryError(f"cannot tell which image {name} is: {lookup.reason}")


def statements(
    registry: Registry,
    repository: str,
    reference: str,
    trust: TlsTrust,
    credentials: Credentials | None,
) -> tuple[str, list[dict[str, Any]], str]:
    """(the image's digest, the SLSA statements attached to it unsigned, how they were
    found). ``reference`` is a tag or a digest."""
    reader = TagReader(registry, repository, credentials, trust, TIMEOUT_SECONDS)
    digest = reference if reference.startswith("sha256:") else image_digest(reader, reference)
    found, how = remote.find(reader, digest, IN_TOTO)
    log.info("unsigned provenance of %s: %d artifact(s) through the %s", digest, len(found), how)
    result = []
    for entry in found:
        manifest = json.loads(remote.fetch(reader, f"manifests/{entry['digest']}", MANIFEST_TYPES))
        if (manifest.get("subject") or {}).get("digest") != digest:
            log.info("artifact %s names another subject: ignored", entry["digest"])
            continue
        for layer in manifest.get("layers") or []:
            if layer.get("mediaType") != IN_TOTO:
                continue
            try:
                statement = json.loads(remote.fetch(reader, f"blobs/{layer['digest']}"))
            except ValueError:
                continue
            if isinstance(statement, dict) and statement.get("predicateType") == PREDICATE_TYPE:
                result.append(statement)
    return digest, result, how


def none_attached(name: str, digest: str) -> NotVerified:
    return NotVerified(
        f"{name} ({digest}) has no provenance attached (no in-toto artifact refers to it, no"
        f" tag {remote.referrers_tag(digest)}): push it with --provenance, or check a signed"
        " one with --key"
    )
