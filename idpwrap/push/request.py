"""What a push was asked for and where it goes: the request, the registry, the destination,
and the digest file's text."""

from __future__ import annotations

import os
from collections import namedtuple

from idpwrap.creds import sources as creds
from idpwrap.errors import UsageError
from idpwrap.refs import (
    DEFAULT_REGISTRY,
    Destination,
    Registry,
    SourceRef,
    destination_host,
    explicit_destination,
    gitea_destination,
    parse_registry,
)
from idpwrap.tls import TlsTrust

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from idpwrap.sign.signing import Signer
    from idpwrap.store.api import StoredImage


class PushRequest(
    namedtuple(
        "PushRequest",
        "source destination registry owner tls retry username password authfile signer platform"
        " up_to_date_check lookup_timeout provenance",
        defaults=(None, None, None, TlsTrust(), 3, None, None, None, None, None, True, 5.0, False),
    )
):
    """What the user asked for; the password only ever comes from stdin or the environment."""

    __slots__ = ()
    source: str
    destination: str | None
    registry: str | None
    owner: str | None
    tls: TlsTrust  # how the registry's certificate is trusted
    retry: int
    username: str | None
    password: str | None
    authfile: str | Path | None
    signer: Signer | None  # --sign-by-sigstore-private-key, checked before anything is pushed
    platform: str | None  # of a multi-platform image, push only this child
    up_to_date_check: bool  # ask the registry first; skopeo is not started if it has the image
    lookup_timeout: float  # seconds for each request asking the registry what a tag serves
    provenance: bool  # attach the stored provenance (unsigned without a signer)

    def __repr__(self) -> str:
        return f"PushRequest(source={self.source!r}, destination={self.destination!r})"


class PushResult(
    namedtuple(
        "PushResult",
        "reference digest size up_to_date tag_digest provenance",
        defaults=(False, "", None),
    )
):
    __slots__ = ()
    reference: str
    digest: str  # what this push pushed (or found there): pullable as HOST/REPO@DIGEST
    size: int
    up_to_date: bool  # the registry already served it: nothing was copied
    tag_digest: str  # what the tag serves after the push; another digest: a racing push moved it
    # with --provenance and no signer: the provenance artifacts in the registry (HOST/REPO@...)
    provenance: tuple[str, ...] | None

    @property
    def moved(self) -> bool:
        return bool(self.tag_digest) and self.tag_digest != self.digest


def choose_registry(request: PushRequest, source: SourceRef) -> Registry:
    """--registry (or the config), else the registry SOURCE or DEST names, else the default.

    Credentials and TLS settings are chosen for this registry, so it must be the one the
    image goes to: a SOURCE or DEST naming another one than --registry is an error."""
    named = {"SOURCE": source.host, "DEST": destination_host(request.destination)}
    if request.registry:
        registry = parse_registry(request.registry)
        for argument, host in named.items():
            if host and host.lower() != registry.host:
                raise UsageError(
                    f"{argument} names registry {host} but --registry says {registry.host}:"
                    " drop one of them"
                )
        return registry
    if named["SOURCE"] and named["DEST"] and named["SOURCE"].lower() != named["DEST"]:
        raise UsageError(
            f"SOURCE names registry {named['SOURCE']} and DEST {named['DEST']}: drop one of them"
        )
    if named["SOURCE"] or named["DEST"]:
        return Registry(str(named["SOURCE"] or named["DEST"]).lower())
    return parse_registry(os.environ.get("IDPWRAP_REGISTRY") or DEFAULT_REGISTRY)


def plan_destination(
    request: PushRequest,
    source: SourceRef,
    image: StoredImage,
    registry: Registry,
    credentials: creds.Credentials | None,
) -> Destination:
    if request.destination:
        return explicit_destination(request.destination, registry)
    owner = request.owner
    if not owner and credentials and not credentials.identity_token and len(source.path) == 1:
        owner = credentials.username
    return gitea_destination(registry, source, image.ref, owner)


def digestfile_text(results: list[PushResult]) -> str:
    """The digest alone for one image (as podman writes it); ``REFERENCE DIGEST`` lines for
    several, so that each digest says which tag it belongs to. When a racing push moved a tag,
    its line gets one more field: the digest the tag serves now."""

    def moved(result: PushResult) -> str:
        return f" {result.tag_digest}" if result.moved else ""

    if len(results) == 1:
        return f"{results[0].digest}{moved(results[0])}\n"
    return "".join(f"{result.reference} {result.digest}{moved(result)}\n" for result in results)
