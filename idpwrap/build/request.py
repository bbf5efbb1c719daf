"""What a build was asked for, checked and resolved, and what it made."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from pathlib import Path

from idpwrap.tls import TlsTrust
from idpwrap.tools.buildah import DEFAULT_PULL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.refs import LocalRef
    from idpwrap.store.api import StoredImage


class BuildRequest(
    namedtuple(
        "BuildRequest",
        "context tags containerfile build_args target labels no_cache pull secrets platform"
        " timestamp format platforms cache redacted_build_args",
        defaults=(None, (), None, (), False, DEFAULT_PULL, (), None, None, "oci", (), None, ()),
    )
):
    """What to build: the options of ``idpwrap build``, checked and resolved."""

    __slots__ = ()
    context: Path
    tags: Sequence[LocalRef]
    containerfile: str | None
    build_args: Sequence[str]  # KEY=VALUE, files and environment already resolved
    target: str | None
    labels: Sequence[str]
    no_cache: bool
    pull: str
    secrets: Sequence[tuple[str, Path]]
    platform: str | None
    timestamp: str | int | None  # "now", seconds, or None: SOURCE_DATE_EPOCH, git, fixed epoch
    format: str  # oci, or docker (Docker v2 schema 2: keeps HEALTHCHECK, SHELL, ...)
    platforms: tuple[str, ...]  # two or more: one image index (platform is then None)
    cache: CacheRequest | None  # the build cache in a registry, if one is asked for
    redacted_build_args: Sequence[str]  # names the provenance leaves out (build/provenance.py)


class CacheRequest(
    namedtuple(
        "CacheRequest",
        "cache_from cache_to ttl tls username password authfile retry pulls",
        defaults=((), (), None, TlsTrust(), None, None, None, 3, ()),
    )
):
    """The build cache in a registry: where it is read and written (``HOST/PATH`` each, on one
    registry), and how it is reached, exactly as a push reaches a registry; ``pulls``: the
    hosts of FROM images buildah pulls from a registry, reached the same way (with no cache
    at all, this request is only that: how buildah reaches them)."""

    __slots__ = ()
    cache_from: Sequence[str]
    cache_to: Sequence[str]
    ttl: str | None  # buildah's --cache-ttl (a Go duration, e.g. 168h)
    tls: TlsTrust
    username: str | None
    password: str | None  # from --password-stdin or the environment, never an argument
    authfile: str | None
    retry: int
    pulls: Sequence[str]

    def __repr__(self) -> str:
        return (
            f"CacheRequest(cache_from={self.cache_from!r}, cache_to={self.cache_to!r},"
            f" pulls={self.pulls!r})"
        )


class BuildResult(namedtuple("BuildResult", "image reused entry", defaults=(None,))):
    """The stored image, whether an identical earlier build's image was reused, and the build
    cache entry (``HOST/PATH:TAG``) it came from when it came from a registry."""

    __slots__ = ()
    image: StoredImage
    reused: bool
    entry: str | None
