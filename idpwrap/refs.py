"""Image references: parse, validate, and map a local image to its registry destination.

The grammar is distribution's (the one Docker, podman and Gitea use): lowercase path
components, a tag of at most 128 characters, an optional ``@sha256:`` digest.
"""

from __future__ import annotations

import re
from collections import namedtuple

from idpwrap.errors import InvalidReference, UsageError

DEFAULT_TAG = "latest"
# idpbuilder deploys Gitea here; a push without --registry goes there.
DEFAULT_REGISTRY = "https://gitea.cnoe.localtest.me:8443"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
COMPONENT_RE = re.compile(rf"^{_COMPONENT}$")
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
# A first path component is a registry host when it has a dot or a port, or is localhost.
HOST_RE = re.compile(r"^(?:localhost|\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::[0-9]+)?$")
MAX_NAME_LENGTH = 255


class LocalRef(namedtuple("LocalRef", "name tag")):
    """An image in the local store: a lowercase repository path and a tag."""

    __slots__ = ()
    name: str
    tag: str

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"


class SourceRef(namedtuple("SourceRef", "text host path tag digest")):
    """What the user typed as the image to push, split into its parts.

    ``path`` keeps the user's case: ``giteaAdmin/myapp`` must still find ``myapp``.
    """

    __slots__ = ()
    text: str
    host: str | None
    path: tuple[str, ...]
    tag: str | None
    digest: str | None


class Registry(namedtuple("Registry", "host plain_http", defaults=(False,))):
    """A registry endpoint: ``host[:port]`` and whether it speaks plain HTTP."""

    __slots__ = ()
    host: str
    plain_http: bool

    @property
    def url(self) -> str:
        return f"{'http' if self.plain_http else 'https'}://{self.host}"


def looks_like_host(component: str) -> bool:
    return bool(HOST_RE.match(component)) and (
        "." in component or ":" in component or component == "localhost"
    )


def split_tag_and_digest(text: str) -> tuple[str, str | None, str | None]:
    """``name:tag@digest`` into its three parts; a colon in a host's port is not a tag."""
    remainder, digest = text, None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not DIGEST_RE.match(digest):
            raise InvalidReference.for_text(text, "a digest looks like sha256: and 64 hex digits")
    tag = None
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not TAG_RE.match(tag):
            raise InvalidReference.for_text(
                text,
                "a tag is letters, digits, '_', '.' or '-', at most 128, not starting with"
                " '.' or '-'",
            )
    return remainder, tag, digest


def parse_local(text: str) -> LocalRef:
    """A ``NAME[:TAG]`` for the store, validated; no tag means ``latest``."""
    if not text:
        raise InvalidReference.for_text(text, "it is empty")
    name, tag, digest = split_tag_and_digest(text)
    if digest:
        raise InvalidReference.for_text(text, "a tag for the store cannot carry a digest")
    validate_name(text, name)
    return LocalRef(name, tag or DEFAULT_TAG)


def validate_name(text: str, name: str) -> None:
    if not name:
        raise InvalidReference.for_text(text, "the repository name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidReference.for_text(text, f"the name is longer than {MAX_NAME_LENGTH}")
    if name != name.lower() and NAME_RE.match(name.lower()):
        raise InvalidReference.for_text(text, f"repository names must be lowercase: {name.lower()}")
    if not NAME_RE.match(name):
        raise InvalidReference.for_text(
            text,
            "a repository name is lowercase letters, digits and separators ('.', '_', '-')"
            " in '/'-separated parts",
        )


def parse_source(text: str) -> SourceRef:
    """What the user names to push: ``[HOST/][OWNER/]NAME[:TAG][@DIGEST]``, any case in OWNER."""
    if not text:
        raise InvalidReference.for_text(text, "it is empty")
    remainder, tag, digest = split_tag_and_digest(text)
    parts = remainder.split("/")
    host = None
    if len(parts) > 1 and looks_like_host(parts[0]):
        host, parts = parts[0], parts[1:]
    if any(not part for part in parts):
        raise InvalidReference.for_text(text, "it has an empty path component")
    for part in parts:
        if not COMPONENT_RE.match(part.lower()):
            raise InvalidReference.for_text(text, f"{part!r} is not a valid name component")
    image = parts[1:] if len(parts) > 1 else parts  # only the OWNER may have capitals
    if any(part != part.lower() for part in image):
        raise InvalidReference.for_text(
            text, f"image names must be lowercase: {'/'.join(image).lower()}"
        )
    return SourceRef(text, host, tuple(parts), tag, digest)


def store_candidates(source: SourceRef) -> list[str]:
    """Local names to look for, most specific first: the whole path, then without owners.

    The plan's ``push giteaAdmin/myapp:v1.0.0`` must find the local ``myapp:v1.0.0``.
    """
    names = []
    for start in range(len(source.path)):
        name = "/".join(source.path[start:])
        if NAME_RE.match(name):
            names.append(name)
    return names


def parse_registry(text: str) -> Registry:
    """``https://host:port``, ``host:port`` or ``http://host:port`` (plain HTTP)."""
    value = text.strip()
    plain_http = False
    lowered = value.lower()
    if lowered.startswith("http://"):
        plain_http, value = True, value[len("http://") :]
    elif lowered.startswith("https://"):
        value = value[len("https://") :]
    elif "://" in value:
        raise UsageError(f"registry {text!r}: only https:// and http:// are supported")
    value = value.rstrip("/")
    if "/" in value:
        raise UsageError(
            f"registry {text!r} has a path: give only the host and port, e.g. https://host:8443"
        )
    if not value or not HOST_RE.match(value):
        raise UsageError(f"registry {text!r} is not a host[:port]: e.g. https://host:8443")
    return Registry(value.lower(), plain_http)


class Destination(
    namedtuple("Destination", "registry repository tag lowercased_owner", defaults=(None,))
):
    __slots__ = ()
    registry: Registry
    repository: str  # owner/name, lowercase, without the host
    tag: str
    lowercased_owner: str | None  # the owner as typed, when it had to be lowercased

    @property
    def reference(self) -> str:
        return f"{self.registry.host}/{self.repository}:{self.tag}"


def gitea_destination(
    registry: Registry, source: SourceRef, local: LocalRef, owner: str | None
) -> Destination:
    """Gitea's layout: ``HOST/<owner lowercased>/NAME:TAG``.

    With more than one path component in SOURCE the first one is the owner
    (``giteaAdmin/myapp``); ``--owner`` or the username supplies it otherwise. With no owner
    at all the image goes to ``HOST/NAME:TAG``, as on a plain registry.
    """
    path = list(source.path)
    typed_owner = owner
    if len(path) > 1:
        typed_owner = owner or path[0]
        path = path[1:]
    image = "/".join(path).lower()
    tag = source.tag or local.tag
    if not typed_owner:
        return Destination(registry, image, tag)
    lowered = typed_owner.lower()
    if not COMPONENT_RE.match(lowered):
        raise UsageError(f"owner {typed_owner!r} is not a valid registry namespace")
    return Destination(
        registry, f"{lowered}/{image}", tag, typed_owner if lowered != typed_owner else None
    )


def destination_host(text: str | None) -> str | None:
    """The registry a DEST argument names (``HOST/owner/name:tag``), if it names one."""
    if not text:
        return None
    first = text.split("/", 1)[0]
    return first.lower() if "/" in text and looks_like_host(first) else None


def explicit_destination(text: str, registry: Registry) -> Destination:
    """A DEST argument: ``[HOST/]PATH[:TAG]``; without a host it goes to ``registry``."""
    remainder, tag, digest = split_tag_and_digest(text)
    if digest:
        raise InvalidReference.for_text(text, "a destination takes a tag, not a digest")
    parts = remainder.split("/")
    if len(parts) > 1 and looks_like_host(parts[0]):
        registry = Registry(parts[0].lower(), registry.plain_http)
        parts = parts[1:]
    repository = "/".join(parts)
    validate_name(text, repository)
    return Destination(registry, repository, tag or DEFAULT_TAG)
