"""``push --provenance`` without a signing key: the build's provenance attached unsigned, as
the OCI artifact the store keeps for the image (store/referrers.py), byte for byte, in the
registry the image went to (registry/referrers.py: the referrers API where the registry has
one, else the referrers tag schema ``sha256-<hex>``).

Once per pushed digest: of an index, each child that has a provenance and the index. A
refusal never fails the push (the image is there already): it is one line, "the provenance
was not attached: REASON", and the push's exit code stays 0.
"""

from __future__ import annotations

from collections.abc import Callable

from idpwrap import log
from idpwrap.errors import IdpwrapError, StoreError
from idpwrap.registry import referrers as remote
from idpwrap.registry.api import TIMEOUT_SECONDS
from idpwrap.registry.manifests import TagReader
from idpwrap.store import referrers as kept

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.creds.credentials import Credentials
    from idpwrap.refs import Registry
    from idpwrap.store.api import Store, StoredImage
    from idpwrap.tls import TlsTrust


def attach_unsigned(
    store: Store,
    image: StoredImage,
    whole: bool,
    registry: Registry,
    repository: str,
    trust: TlsTrust,
    credentials: Credentials | None,
    notice: Callable[[str], None],
) -> tuple[str, ...]:
    """Attach the stored provenance of each pushed digest; the artifacts now in the registry
    as ``HOST/REPO@sha256:...`` (already there or added)."""
    found = {}
    for digest in kept.pushed_digests(store, image, whole):
        stored = kept.artifact(store, digest)
        if stored is not None:
            found[digest] = remote.Artifact(*stored)
    name = f"{registry.host}/{repository}"
    if not found:
        notice(
            f"the provenance was not attached: the store has none for {image.ref} (built"
            " before idpwrap recorded one, imported, or loaded from an archive without one)"
        )
        return ()
    reader = TagReader(registry, repository, credentials, trust, TIMEOUT_SECONDS)
    attached = []
    for subject, artifact in found.items():
        try:
            done = reader_attach(reader, subject, artifact)
        except IdpwrapError as error:
            notice(f"the provenance was not attached: {error}")
            return tuple(attached)
        except (OSError, ValueError) as error:  # a CA file that cannot be read, a bad answer
            notice(f"the provenance was not attached: {error or type(error).__name__}")
            return tuple(attached)
        where = f"the tag {done.tag}" if done.tag else "its subject"
        log.info(
            "provenance of %s@%s: %s through the %s (%s)", name, subject,
            "attached" if done.added else "already attached", done.how, where,
        )  # fmt: skip
        attached.append(f"{name}@{done.artifact}")
    return tuple(attached)


def reader_attach(reader: TagReader, subject: str, artifact: remote.Artifact) -> remote.Attached:
    """One artifact attached; a subject the artifact does not name is refused before any
    request (the store and the push disagree about the image)."""
    named = (artifact.content.get("subject") or {}).get("digest")
    if named != subject:
        raise StoreError(f"the stored provenance names {named}, not the pushed {subject}")
    return remote.attach(reader, subject, artifact)
