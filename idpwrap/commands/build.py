"""``idpwrap build``: the options into a BuildRequest, build/building.py runs it, the result out."""

from __future__ import annotations

import sys
from pathlib import Path

from idpwrap import platforms
from idpwrap.build import timestamps
from idpwrap.build.building import run
from idpwrap.build.request import BuildRequest
from idpwrap.commands import buildregistry
from idpwrap.commands.pushargs import push_and_report
from idpwrap.commands.shared import notice, open_store
from idpwrap.config.keys import IMAGE_FORMATS
from idpwrap.config.settings import image_format
from idpwrap.errors import UsageError
from idpwrap.refs import parse_local
from idpwrap.tools import buildah

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from idpwrap.store.api import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "context_argument", nargs="?", metavar="CONTEXT",
        help="the build context directory, as in podman build (default: .)",
    )  # fmt: skip
    parser.add_argument("--context", metavar="DIR", help="the build context, as CONTEXT does")
    parser.add_argument(
        "-t", "--tag", action="append", required=True, metavar="NAME[:TAG]",
        help="name of the image in the store (repeatable); no :TAG means :latest",
    )  # fmt: skip
    parser.add_argument(
        "-f", "--file", metavar="FILE",
        help="the Containerfile (default: the context's Containerfile, else its Dockerfile)",
    )  # fmt: skip
    parser.add_argument(
        "--build-arg", action="append", default=[], metavar="KEY[=VALUE]",
        help="a build argument (repeatable); KEY alone takes $KEY from the environment",
    )  # fmt: skip
    parser.add_argument(
        "--build-arg-file", action="append", default=[], metavar="FILE",
        help="KEY=VALUE lines of build arguments (repeatable); --build-arg wins",
    )  # fmt: skip
    parser.add_argument("--target", metavar="STAGE", help="build up to this stage")
    parser.add_argument(
        "--label", action="append", default=[], metavar="KEY=VALUE",
        help="a label on the image (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--no-cache", action="store_true",
        help="build every step anew: neither buildah's layer cache nor an identical earlier build",
    )  # fmt: skip
    parser.add_argument(
        "--pull", choices=buildah.PULL_MODES, default=buildah.DEFAULT_PULL,
        help="pull base images: never, missing (default: only what is not here), always",
    )  # fmt: skip
    parser.add_argument(
        "--secret", action="append", default=[], metavar="id=ID,src=FILE",
        help="a file RUN --mount=type=secret,id=ID can read; never stored in the image",
    )  # fmt: skip
    parser.add_argument(
        "--redact-build-arg", action="append", default=[], metavar="NAME",
        help="leave build argument NAME out of the image's provenance (repeatable); names with"
        " TOKEN, PASSWORD, PASSWD, SECRET, KEY or CREDENTIAL always are",
    )  # fmt: skip
    parser.add_argument(
        "--platform", action="append", metavar="OS/ARCH[/VARIANT][,...]",
        help="the platform(s) to build, e.g. linux/arm64; several (comma-separated or"
        " repeated) store one image index (config: platform)",
    )  # fmt: skip
    parser.add_argument(
        "--timestamp", metavar="now|SECONDS",
        help="the time written into the image: seconds since the epoch, or now (the wall clock);"
        " default: $SOURCE_DATE_EPOCH, else the git commit time of HEAD, else 0 (config key"
        " timestamp)",
    )  # fmt: skip
    parser.add_argument(
        "--format", choices=IMAGE_FORMATS,
        help="the image's manifest format: oci, or docker (Docker v2, which keeps HEALTHCHECK,"
        " SHELL, STOPSIGNAL and ONBUILD); default: $BUILDAH_FORMAT, else the config file's"
        " format, else oci",
    )  # fmt: skip
    parser.add_argument("-q", "--quiet", action="store_true", help="do not show buildah's output")
    buildregistry.add_arguments(parser)


def platform_fields(values: list[str] | None) -> dict[str, object]:
    """``platform`` (one) or ``platforms`` (several) from ``--platform`` or the config."""
    if not values:
        from idpwrap.config import settings as config

        configured = config.load().setting("platform").value
        values = [str(configured)] if configured else []
    found = platforms.parse(values)
    if len(found) > 1:
        return {"platform": None, "platforms": found}
    return {"platform": found[0] if found else None, "platforms": ()}


def context_of(positional: str | None, option: str | None) -> Path:
    """CONTEXT or --context (the same directory if both), else the working directory."""
    if positional and option and Path(positional).absolute() != Path(option).absolute():
        raise UsageError(
            f"two build contexts, {positional!r} and --context {option!r}: give one of them"
            " (see 'idpwrap build --help')"
        )
    return Path(positional or option or ".")


def build_timestamp(flag: str | None) -> str | int | None:
    """``--timestamp``, else the config's ``timestamp`` (or IDPWRAP_TIMESTAMP), else None."""
    if flag is not None:
        return timestamps.parse_setting(flag, "--timestamp")
    from idpwrap.config import settings as config

    setting = config.load().setting("timestamp")
    return setting.value  # type: ignore[no-any-return]


def from_registries(store: Store, request: BuildRequest) -> list[str]:
    """The registry hosts buildah pulls FROM images from (not those the store has)."""
    from idpwrap.build.bases import registry_hosts

    try:
        file = buildah.find_containerfile(request.context, request.containerfile)
        text = file.read_text(errors="replace")
    except (OSError, UsageError):
        return []  # the build itself says what is wrong with the context or the file
    return registry_hosts(text, request.build_args, store.images())


def execute(args: argparse.Namespace) -> int:
    tags = [parse_local(text) for text in args.tag]
    pushing = buildregistry.push_request(args, tags[0])  # checked before anything is built
    request = BuildRequest(
        context=context_of(args.context_argument, args.context),
        tags=tags,
        containerfile=args.file,
        build_args=[
            f"{key}={value}"
            for key, value in buildah.resolve_build_args(
                args.build_arg_file, args.build_arg
            ).items()
        ],
        target=args.target,
        labels=[buildah.parse_label(label) for label in args.label],
        no_cache=args.no_cache,
        pull=args.pull,
        secrets=[buildah.parse_secret(secret) for secret in args.secret],
        timestamp=build_timestamp(args.timestamp),
        format=image_format(args.format),
        redacted_build_args=tuple(args.redact_build_arg),
        **platform_fields(args.platform),
    )
    store = open_store(args)
    request = request._replace(
        cache=buildregistry.cache_request(
            args, tags[0], pushing[0] if pushing else None, from_registries(store, request)
        )
    )

    def show(text: str) -> None:
        if not args.quiet:
            sys.stderr.write(text)
            sys.stderr.flush()

    result = run(store, request, on_output=show, warn=lambda text: notice(f"warning: {text}"))
    if result.entry and not args.quiet:
        notice(
            f"the build cache {result.entry} holds this very build ({result.image.digest}):"
            " copied into the store without running buildah (--no-cache builds anew)"
        )
    elif result.reused and not args.quiet:
        notice(
            f"nothing changed since the build of {result.image.digest}: tagged without running"
            " buildah (--no-cache builds anew)"
        )
    if not (pushing and args.json):  # with --json, stdout is the push's JSON alone
        for tag in tags:
            print(f"Image saved to local store: {tag}")
        print(f"Digest: {result.image.digest}")
        print(f"Store: {store.root}")
    if pushing:
        sys.stdout.flush()
        push_and_report(args, store, *pushing)
    return 0
