"""What a build was asked for, checked and resolved, and what it made."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from pathlib import Path

from idpwrap.tools.buildah import DEFAULT_PULL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.refs import LocalRef
    from idpwrap.store.api import StoredImage


class BuildRequest(
    namedtuple(
        "BuildRequest",
        "context tags containerfile build_args target labels no_cache pull secrets platform"
        " timestamp format platforms redacted_build_args",
        defaults=(None, (), None, (), False, DEFAULT_PULL, (), None, None, "oci", (), ()),
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
    redacted_build_args: Sequence[str]  # names the provenance leaves out (build/provenance.py)


class BuildResult(namedtuple("BuildResult", "image reused")):
    """The stored image, and whether an identical earlier build's image was reused."""

    __slots__ = ()
    image: StoredImage
    reused: bool
