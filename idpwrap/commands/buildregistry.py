"""``idpwrap build``'s registry options: the build cache (``--cache``, ``--cache-from``,
``--cache-to``, ``--cache-ttl``) and ``--push [DEST]`` with push's own options; what they
resolve to (a CacheRequest, a PushRequest), the same way ``idpwrap push`` resolves a registry.
"""

from __future__ import annotations

import os

from idpwrap import log
from idpwrap.build.request import CacheRequest
from idpwrap.commands import pushargs as push_command
from idpwrap.commands import shared
from idpwrap.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from idpwrap.config.settings import Setting
    from idpwrap.push.request import PushRequest
    from idpwrap.refs import LocalRef, Registry

AUTO = "auto"
CACHE_SUFFIX = "-buildcache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--push", nargs="?", const="", metavar="DEST",
        help="after the build, push the first -t image as idpwrap push does (to DEST, else the"
        " Gitea mapping HOST/OWNER/NAME:TAG); write --push=DEST, or CONTEXT first",
    )  # fmt: skip
    parser.add_argument(
        "--cache", metavar="REPO",
        help="the build cache in a registry, read and written: HOST/PATH, a PATH on the"
        " registry, or auto (with --push: DEST's repository with -buildcache); default:"
        " $IDPWRAP_CACHE, else the config file's cache",
    )  # fmt: skip
    parser.add_argument(
        "--cache-from", action="append", default=[], metavar="REPO",
        help="read whole builds and layers from this cache repository (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--cache-to", action="append", default=[], metavar="REPO",
        help="write whole builds and layers to this cache repository (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--cache-ttl", metavar="DURATION",
        help="use only cached layers made less than DURATION ago, e.g. 168h (buildah's; see"
        " docs/build.md about reproducible timestamps; default: $IDPWRAP_CACHE_TTL, else the"
        " config file's cache_ttl)",
    )  # fmt: skip
    push_command.add_push_options(parser)


def push_request(
    args: argparse.Namespace, tag: LocalRef
) -> tuple[PushRequest, dict[str, Setting]] | None:
    """``--push [DEST]``'s request for the first tag, or None without --push."""
    if args.push is None:
        return None
    if args.push and args.context_argument is None and os.path.isdir(args.push):
        raise UsageError(
            f"--push {args.push}: is that DEST or the build context? write --push=DEST, or put"
            " CONTEXT before --push"
        )
    return push_command.prepare(args, str(tag), args.push or None, command="build")


def cache_request(
    args: argparse.Namespace,
    tag: LocalRef,
    push: PushRequest | None,
    pulls: Sequence[str] = (),
) -> CacheRequest | None:
    """The build cache asked for by the flags, else IDPWRAP_CACHE, else the config file; and
    how buildah reaches the registries of ``pulls`` (FROM images it pulls), as push would."""
    from idpwrap.config import settings as config

    loaded = config.load()
    read, write = list(args.cache_from), list(args.cache_to)
    if not read and not write:
        both = loaded.setting("cache", args.cache, "--cache")
        if both.value:
            read = write = [str(both.value)]
    if not read and not write:
        return _pulls_only(args, pulls)
    registry = None
    if push is not None:
        from idpwrap.push.request import choose_registry
        from idpwrap.refs import parse_source

        registry = choose_registry(push, parse_source(push.source))
    resolved = [
        _repository(text, tag, push, registry, args) for text in dict.fromkeys(read + write)
    ]
    named = dict(zip(dict.fromkeys(read + write), resolved, strict=True))
    read = [named[text] for text in read if named[text]]
    write = [named[text] for text in write if named[text]]
    if not read and not write:
        return _pulls_only(args, pulls)
    hosts = {text.split("/", 1)[0] for text in read + write}
    if len(hosts) > 1:
        raise UsageError(
            f"the build cache is on one registry, not on {' and '.join(sorted(hosts))}: give"
            " repositories of one registry"
        )
    host = hosts.pop()
    ttl = loaded.setting("cache_ttl", args.cache_ttl, "--cache-ttl").value
    if ttl is not None:
        from idpwrap.config.keys import convert

        ttl = convert("cache_ttl", ttl, "--cache-ttl")
    if push is not None and registry is not None and registry.host == host:
        tls, retry = push.tls, push.retry
    else:
        settings = config.for_push(
            source_host=host, registry=None, owner=None,
            insecure=config.insecure_flag(args.insecure, args.tls_verify),
            ca_file=args.ca_file, cert_dir=args.cert_dir, retry=args.retry, progress=None,
        )  # fmt: skip
        tls, retry = config.trust_of(settings, args.cert_dir), settings["retry"].value
    return CacheRequest(
        cache_from=tuple(read),
        cache_to=tuple(write),
        ttl=ttl,
        tls=tls,
        username=args.username,
        password=shared.read_password(args, "build"),
        authfile=args.authfile or None,
        retry=retry,
        pulls=tuple(pulls),
    )


def _pulls_only(args: argparse.Namespace, pulls: Sequence[str]) -> CacheRequest | None:
    """No cache: only how buildah reaches the FROM registries (the first one's TLS settings:
    buildah takes one --cert-dir and one --tls-verify)."""
    if not pulls:
        return None
    from idpwrap.config import settings as config

    settings = config.for_push(
        source_host=pulls[0], registry=None, owner=None,
        insecure=config.insecure_flag(args.insecure, args.tls_verify),
        ca_file=args.ca_file, cert_dir=args.cert_dir, retry=args.retry, progress=None,
    )  # fmt: skip
    return CacheRequest(
        tls=config.trust_of(settings, args.cert_dir),
        username=args.username,
        password=shared.read_password(args, "build"),
        authfile=args.authfile or None,
        retry=settings["retry"].value,
        pulls=tuple(pulls),
    )


def _repository(
    text: str,
    tag: LocalRef,
    push: PushRequest | None,
    registry: Registry | None,
    args: argparse.Namespace,
) -> str | None:
    """``HOST/PATH`` for a cache repository as given; ``auto`` next to the pushed image."""
    from idpwrap.build.registrycache import parse_repository
    from idpwrap.refs import looks_like_host

    if text == AUTO:
        if push is None:
            log.info("build cache: auto is next to a --push image; without --push, none")
            return None
        return _next_to_push(push, tag) + CACHE_SUFFIX
    if not looks_like_host(text.split("/", 1)[0]):
        from idpwrap.config import settings as config
        from idpwrap.refs import parse_registry

        chosen = registry or parse_registry(
            str(config.load().setting("registry", args.registry, "--registry").value)
        )
        text = f"{chosen.host}/{text}"
    registry_found, path = parse_repository(text)
    return f"{registry_found.host}/{path}"


def _next_to_push(push: PushRequest, tag: LocalRef) -> str:
    """``HOST/REPOSITORY`` the push will write, without its tag (the Gitea mapping's owner
    from --owner, the config, or the username of the credentials push will use)."""
    from idpwrap.creds import sources as creds
    from idpwrap.push.request import choose_registry
    from idpwrap.refs import explicit_destination, gitea_destination, parse_source

    source = parse_source(push.source)
    registry = choose_registry(push, source)
    if push.destination:
        destination = explicit_destination(push.destination, registry)
    else:
        owner = push.owner
        if not owner and len(source.path) == 1:
            found = creds.resolve(
                registry.host, username=push.username, password=push.password,
                authfile=push.authfile,
            )  # fmt: skip
            owner = found.username if found and not found.identity_token else None
        destination = gitea_destination(registry, source, tag, owner)
    return f"{registry.host}/{destination.repository}"
