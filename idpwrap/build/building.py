"""A build: buildah bud into a private OCI layout, then into the store under its tags.

Before buildah runs, the build's fingerprint (cache.py) may show that nothing changed: the
tags then move to the image the identical build made. Else each platform is built by its own
``buildah bud`` (bases.py points the Containerfile at the stored bases it names, buildlog.py
shows buildah's output in the user's names and explains a failure in one line), and the
layouts are merged into the store under its lock; one image, or one index for several
platforms.
"""

from __future__ import annotations

import contextlib
import os
from collections import namedtuple
from collections.abc import Callable
from pathlib import Path

from idpwrap import diskfull, log, platforms
from idpwrap.build import bases as stored_bases
from idpwrap.build import buildlog, layercache, timestamps
from idpwrap.build import cache as buildcache
from idpwrap.build.containerfile import instructions
from idpwrap.build.request import BuildRequest, BuildResult
from idpwrap.errors import BuildFailed, UsageError
from idpwrap.scratch import private_directory, remove_tree
from idpwrap.store import indexes
from idpwrap.store.api import Store
from idpwrap.store.layout import layout_is_whole
from idpwrap.tools import buildah, limits, procs, rootless

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


class BuildPlace(namedtuple("BuildPlace", "work scratch storage when")):
    """Where each platform's buildah runs: the store's working directory, a colon-free one for
    links, buildah's storage, and the build time."""

    __slots__ = ()
    work: Path
    scratch: Path
    storage: rootless.Storage
    when: timestamps.BuildTime


def run(
    store: Store,
    request: BuildRequest,
    *,
    on_output: Callable[[str], None],
) -> BuildResult:
    """Build ``request`` into ``store`` (or only tag the image of an identical earlier build);
    buildah's output goes to ``on_output`` as it comes."""
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
            written = places(store, place)
            full = diskfull.from_output("\n".join(failed.output), written, KEPT)
            if full is None and failed.output and not buildlog.has_reason(failed.output):
                full = diskfull.nearly_full(written, KEPT)
            if full is not None:
                buildlog.keep(failed.output, os.environ)
            raise (full or explained(failed, written_file, names)) from None
        finally:
            if isinstance(shown, buildlog.OutputFilter):
                shown.flush()
        if request.format == "docker":
            buildah.copy_to_layout(place.storage, name, destination)


KEPT = "the store is as it was"


def places(store: Store, place: BuildPlace) -> list[diskfull.Place]:
    """Where a build writes: a full one is named, never a Containerfile line."""
    return [
        diskfull.store_place(store.root),
        diskfull.buildah_place(place.storage.root),
        diskfull.temp_place(),
    ]


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


def containerfile_runs(file: Path) -> bool:
    """Whether the Containerfile has RUN steps (they execute the target platform's programs)."""
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError):
        return False  # buildah reports an unreadable file itself
    return any(item.keyword == "RUN" for item in instructions(text))
