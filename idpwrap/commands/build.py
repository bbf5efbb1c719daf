"""``idpwrap build``: buildah bud into a private OCI layout, then into the store under its tags."""

from __future__ import annotations

import contextlib
import os
import sys
from collections import namedtuple
from collections.abc import Callable, Sequence
from pathlib import Path

from idpwrap import log, platforms
from idpwrap.build import bases as stored_bases
from idpwrap.build import buildlog, layercache, timestamps
from idpwrap.build import cache as buildcache
from idpwrap.commands import notice, open_store
from idpwrap.config.keys import IMAGE_FORMATS
from idpwrap.config.settings import image_format
from idpwrap.errors import BuildFailed, UsageError
from idpwrap.refs import LocalRef, parse_local
from idpwrap.scratch import private_directory, remove_tree
from idpwrap.store import indexes
from idpwrap.store.api import Store, StoredImage
from idpwrap.store.layout import layout_is_whole
from idpwrap.tools import buildah, limits, procs, rootless

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

# buildah's oci: transport takes everything after the first colon as the image name.
LAYOUT_IMAGE_NAME = "build"


def layout_reference(layout: Path, scratch: Path) -> str:
    """``oci:PATH:NAME`` for ``layout``, through a colon-free symlink when the path has one."""
    if ":" in str(layout):
        # containers/image resolves the link, and a dangling one fails as "invalid reference
        # format": the directory must exist before buildah sees the link.
        layout.mkdir(exist_ok=True)
        link = scratch / layout.name
        link.symlink_to(layout, target_is_directory=True)
        layout = link
    return f"oci:{layout}:{LAYOUT_IMAGE_NAME}"


class BuildRequest(
    namedtuple(
        "BuildRequest",
        "context tags containerfile build_args target labels no_cache pull secrets platform"
        " timestamp format platforms",
        defaults=(None, (), None, (), False, buildah.DEFAULT_PULL, (), None, None, "oci", ()),
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


class BuildPlace(namedtuple("BuildPlace", "work scratch storage when")):
    """Where each platform's buildah runs: the store's working directory, a colon-free one for
    links, buildah's storage, and the build time."""

    __slots__ = ()
    work: Path
    scratch: Path
    storage: rootless.Storage
    when: timestamps.BuildTime


class BuildResult(namedtuple("BuildResult", "image reused")):
    """The stored image, and whether an identical earlier build's image was reused."""

    __slots__ = ()
    image: StoredImage
    reused: bool


def run(
    store: Store,
    request: BuildRequest,
    *,
    on_output: Callable[[str], None],
) -> BuildResult:
    if len(request.platforms) > 1 and request.format == "docker":
        raise UsageError(
            "--format docker builds one platform at a time (buildah 1.28 and skopeo 1.9.3 read"
            " Docker manifests from the store one by one): build several platforms as oci, the"
            " default, or each platform under its own tag"
        )
    written_file = buildah.find_containerfile(request.context, request.containerfile)
    file = written_file.absolute()
    context = request.context.absolute()
    tags = list(request.tags)
    when = timestamps.choose(str(context), request.timestamp)
    log.info("build time: %s (%s)", "now" if when.seconds is None else when.seconds, when.source)
    inputs = buildcache.BuildInputs(
        context=context,
        containerfile=file,
        build_args=dict(arg.split("=", 1) for arg in request.build_args),
        target=request.target,
        labels=tuple(request.labels),
        platform=",".join(request.platforms) or request.platform,
        secrets=tuple(request.secrets),
        isolation=buildah.isolation(),
        rootless=rootless.is_rootless(),
        build_time=(when.seconds, when.revision, when.url),
        format=request.format,
    )
    tool_path = procs.child_environment()["PATH"]
    before = buildcache.fingerprint(inputs, store.images(), buildah_path=tool_path)
    if before.digest is None:
        log.info("build cache: %s, so buildah runs", before.reason)
    elif request.no_cache or request.pull == "always":
        log.info("build cache: not used with --no-cache or --pull always")
    else:
        reused = buildcache.reuse(store, before.digest, tags)
        if reused is not None:
            return BuildResult(reused, True)
    store.ensure()  # first: a store we cannot write is the error to report
    rootless.check_ready()
    storage = rootless.default_storage()
    rootless.prepare(storage)
    log.info("buildah storage: %s, driver %s: %s", storage.root, storage.driver, storage.reason)
    targets = request.platforms or (request.platform,)
    if any(targets) and containerfile_runs(file):
        platforms.check_emulation([target for target in targets if target])  # before buildah
    work = store.temp_dir("build")
    scratch = Path(private_directory("idpwrap-build-")) if ":" in str(work) else work
    try:
        layouts = []
        for number, platform in enumerate(targets, start=1):
            if len(targets) > 1:
                on_output(f"idpwrap: building {platform} ({number} of {len(targets)})\n")
            layout = work / f"layout-{number}" if len(targets) > 1 else work / "layout"
            place = BuildPlace(work, scratch, storage, when)
            build_one(store, request, file, written_file, platform, layout, place, on_output)
            layouts.append(layout)
        if len(layouts) == 1:
            image = store.add_layout(layouts[0], tags)
        else:
            descriptor = indexes.assemble(layouts, work / "index")
            image = store.add_images(work / "index", [(descriptor, tags)])[0]
    finally:
        store.release(work)
        if scratch != work:
            remove_tree(scratch)
    if before.digest is not None:
        # Recorded only if nothing changed while buildah ran: the image is of these inputs.
        after = buildcache.fingerprint(inputs, store.images(), buildah_path=tool_path)
        if after.digest == before.digest:
            buildcache.remember(store, before.digest, image)
        else:
            log.info("build cache: the context changed during the build: not recorded")
    return BuildResult(image, False)


def build_one(
    store: Store,
    request: BuildRequest,
    file: Path,
    written_file: Path,
    platform: str | None,
    layout: Path,
    place: BuildPlace,
    on_output: Callable[[str], None],
) -> None:
    """One ``buildah bud`` (for ``platform``, or the host's) into the private ``layout``."""
    tags = list(request.tags)
    work, when = place.work, place.when
    with contextlib.ExitStack() as reading:
        reading.enter_context(store.reading())  # the bases' blobs stay while buildah reads
        file, bases = stored_bases.prepare(store, file, request.build_args, work, platform)
        if not bases:
            reading.close()
        for base in bases:
            on_output(f"idpwrap: FROM {base.written}: the store's {base.image.ref}"
                      f" ({base.image.digest})\n")  # fmt: skip
        names = {base.directory: base.written for base in bases}
        shown = on_output
        if not log.verbose():  # --verbose shows buildah's output as it is
            shown = buildlog.OutputFilter(on_output, names, ", ".join(map(str, tags)))
        options = buildah.BuildOptions(
            context=request.context.absolute(),
            containerfile=file,
            build_args=tuple(request.build_args),
            target=request.target,
            labels=tuple(request.labels),
            no_cache=request.no_cache,
            pull=request.pull,
            secrets=tuple(request.secrets),
            platform=platform,
            storage=place.storage,
            ulimits=tuple(limits.buildah_ulimits("buildah")),
            timestamp=when.seconds,
            annotations=tuple(when.annotations()),
            format=request.format,
        )
        destination = layout_reference(layout, place.scratch)
        if request.format == "docker":
            name = buildah.DOCKER_BUILD_PREFIX + os.urandom(8).hex()
            argv = buildah.bud_argv(options, name)
        else:
            argv = buildah.bud_argv(options, destination)
        log.debug("running %s", " ".join(argv))
        try:
            with layercache.holding(place.storage, when.seconds, buildah.clear_cache):
                buildah.build(
                    argv, shown, cwd=str(work), output_complete=lambda: layout_is_whole(layout)
                )
        except BuildFailed as failed:
            raise explained(failed, written_file, names) from None
        finally:
            if isinstance(shown, buildlog.OutputFilter):
                shown.flush()
        if request.format == "docker":
            buildah.copy_to_layout(place.storage, name, destination)


def explained(failed: BuildFailed, containerfile: Path, names: dict[str, str]) -> BuildFailed:
    """One line for a failed build (``Containerfile:3: RUN false exited with status 1``),
    naming the log that keeps buildah's whole output."""
    if not failed.output:
        return failed
    shown = os.path.relpath(containerfile)
    if shown.startswith(".."):
        shown = str(containerfile.absolute())
    try:
        text = containerfile.read_text()
    except (OSError, UnicodeDecodeError):
        text = ""
    summary = buildlog.failure_summary(failed.output, failed.buildah_exit_code, shown, text, names)
    return BuildFailed.summarised(summary, buildlog.keep(failed.output, os.environ))


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


def containerfile_runs(file: Path) -> bool:
    """Whether the Containerfile has RUN steps (they execute the target platform's programs)."""
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError):
        return False  # buildah reports an unreadable file itself
    return any(item.keyword == "RUN" for item in stored_bases.instructions(text))


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


def execute(args: argparse.Namespace) -> int:
    tags = [parse_local(text) for text in args.tag]
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
        **platform_fields(args.platform),
    )
    store = open_store(args)

    def show(text: str) -> None:
        if not args.quiet:
            sys.stderr.write(text)
            sys.stderr.flush()

    result = run(store, request, on_output=show)
    if result.reused and not args.quiet:
        notice(
            f"nothing changed since the build of {result.image.digest}: tagged without running"
            " buildah (--no-cache builds anew)"
        )
    for tag in tags:
        print(f"Image saved to local store: {tag}")
    print(f"Digest: {result.image.digest}")
    print(f"Store: {store.root}")
    return 0
