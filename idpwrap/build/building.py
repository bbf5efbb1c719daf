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
from idpwrap.build import (
    buildlog,
    cachesteps,
    hashcache,
    layercache,
    provenance,
    registrycache,
    timestamps,
)
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


class BuildPlace(
    namedtuple("BuildPlace", "work scratch storage when layers warn", defaults=(None, None))
):
    """Where each platform's buildah runs: the store's working directory, a colon-free one for
    links, buildah's storage, the build time, the registry's layer cache, warnings' way out."""

    __slots__ = ()
    work: Path
    scratch: Path
    storage: rootless.Storage
    when: timestamps.BuildTime
    layers: cachesteps.LayerCache | None
    warn: Callable[[str], None] | None


def run(
    store: Store,
    request: BuildRequest,
    *,
    on_output: Callable[[str], None],
    warn: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build ``request`` into ``store`` (or only tag the image of an identical earlier build,
    here or in the build cache's registry); buildah's output goes to ``on_output`` as it
    comes, the build cache's warnings (one line each, never a failure) to ``warn``."""
    if warn is None:
        warn = lambda message: on_output(f"idpwrap: warning: {message}\n")  # noqa: E731
    if request.cache is None:
        return _run(store, request, on_output, warn, None)
    with registrycache.opened(request.cache) as access:
        return _run(store, request, on_output, warn, access)


def _run(
    store: Store,
    request: BuildRequest,
    on_output: Callable[[str], None],
    warn: Callable[[str], None],
    access: registrycache.Access | None,
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
    log.phase("build: build time chosen (git asked)")
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
    # The context's file digests of earlier builds: only changed files are read (hashcache.py).
    hashes = hashcache.for_context(store.root, context)
    before = buildcache.fingerprint(inputs, store.images(), buildah_path=tool_path, hashes=hashes)
    log.phase(f"build: fingerprint before the build ({hashes.hashed} files read)")
    if before.digest is None:
        log.info("build cache: %s, so buildah runs", before.reason)
    elif request.no_cache or request.pull == "always":
        log.info("build cache: not used with --no-cache or --pull always")
    else:
        reused = buildcache.reuse(store, before.digest, tags)
        if reused is not None:
            hashes.save()
            return BuildResult(reused, True)
        if access is not None and request.cache.cache_from:
            found = registrycache.fetch(
                store, access, request.cache.cache_from, before.digest, tags, warn
            )
            if found.image is not None:
                provenance.record_copied(store, found.image, request, file, when)
                return BuildResult(found.image, True, found.entry)
            log.info("build cache: no whole build from the registry: %s", found.reason)
            if not found.reachable:
                access = None  # buildah would retry a dead registry for every step
    if access is not None and request.cache.cache_from and before.digest is None:
        log.info("build cache: no whole build from the registry: %s", before.reason)
    store.ensure()  # first: a store we cannot write is the error to report
    rootless.check_ready()
    storage = rootless.default_storage()
    rootless.prepare(storage)
    # Known from the file beside the storage: the layer cache's flags, the --ulimit decision
    # and the provenance start no `buildah --version` of their own.
    buildah.know_version(remembered_version(storage)("buildah"))
    log.info("buildah storage: %s, driver %s: %s", storage.root, storage.driver, storage.reason)
    log.phase("build: store and buildah's storage ready")
    targets = request.platforms or (request.platform,)
    if any(targets) and containerfile_runs(file):
        platforms.check_emulation([target for target in targets if target])  # before buildah
    layers = None if access is None else cachesteps.LayerCache(request.cache, access)
    if layers is not None and layers.cache_from:
        said = cachesteps.arg_miss_notice(file.read_text(errors="replace"))
        if said:
            on_output(f"idpwrap: {said}\n")
    work = store.temp_dir("build")
    scratch = Path(private_directory("idpwrap-build-")) if ":" in str(work) else work
    try:
        layouts = []
        bases: list[list[stored_bases.Base]] = []  # each platform's, for the provenance
        for number, platform in enumerate(targets, start=1):
            if len(targets) > 1:
                on_output(f"idpwrap: building {platform} ({number} of {len(targets)})\n")
            layout = work / f"layout-{number}" if len(targets) > 1 else work / "layout"
            place = BuildPlace(work, scratch, storage, when, layers, warn)
            bases.append(
                build_one(store, request, file, written_file, platform, layout, place, on_output)
            )
            layouts.append(layout)
        if len(layouts) == 1:
            image = store.add_layout(layouts[0], tags)
        else:
            descriptor = indexes.assemble(layouts, work / "index")
            image = store.add_images(work / "index", [(descriptor, tags)])[0]
        log.phase("build: image added to the store")
    finally:
        store.release(work)
        hashes.save()  # after buildah, even a failed one: the next build reads only changes
        if scratch != work:
            remove_tree(scratch)
    provenance.record(store, image, request, file, when, bases)
    if before.digest is not None:
        # Recorded only if nothing changed while buildah ran: the image is of these inputs.
        read = hashes.hashed
        after = buildcache.fingerprint(
            inputs, store.images(), buildah_path=tool_path, hashes=hashes
        )
        if after.digest == before.digest:
            buildcache.remember(store, before.digest, image)
            # A registry that refused buildah's cache push was said once, and refuses us too.
            if layers is not None and layers.cache_to and not layers.write_failed:
                registrycache.publish(
                    store, access, request.cache.cache_to, before.digest, image, warn
                )
        else:
            log.info("build cache: the context changed during the build: not recorded")
        hashes.save()  # the digests of files too young to keep before the build
        log.phase(f"build: fingerprint after the build ({hashes.hashed - read} read), recorded")
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
) -> list[stored_bases.Base]:
    """One ``buildah bud`` (for ``platform``, or the host's) into the private ``layout``;
    the stored bases it was built on."""
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
        steps = cachesteps.StepSources(shown)
        cache_options = place.layers.options() if place.layers is not None else {}
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
            ulimits=tuple(limits.buildah_ulimits("buildah", remembered_version(place.storage))),
            timestamp=when.seconds,
            annotations=tuple(when.annotations()),
            format=request.format,
            **cache_options,  # type: ignore[arg-type]
        )
        destination = layout_reference(layout, place.scratch)
        # Into buildah's storage first when the format asks for it, and with --cache-to: 1.28
        # and 1.39 fail to push the last step's cache from an oci: destination ("repository
        # name must have at least one component"). Unnamed there (its ID in a file), so that
        # nothing is left to remove afterwards: it stays as the last step's cached image.
        in_storage = request.format == "docker" or bool(options.cache_to)
        iidfile = str(work / "image-id")
        log.phase("build: bases prepared, buildah's command line ready")
        try:
            with layercache.holding(place.storage, when.seconds, buildah.clear_cache):
                try:
                    _bud(options, None if in_storage else destination, steps, work, layout,
                         iidfile)  # fmt: skip
                except BuildFailed as failed:
                    if not (options.cache_to and steps.push_failed):
                        raise
                    # buildah fails the whole build on a failed cache push; the steps it built
                    # are in its local cache, so the second run is quick.
                    reason = next((line for line in reversed(failed.output)
                                   if buildah.CACHE_PUSH_FAILED in line), "")  # fmt: skip
                    (place.warn or on_output)(
                        f"the layer cache {options.cache_to[0]} was not written"
                        f" ({reason.rsplit(': ', 1)[-1].strip()}): building without --cache-to"
                    )
                    options = options._replace(cache_to=())
                    if place.layers is not None:
                        place.layers.write_failed = True
                    steps = cachesteps.StepSources(shown)
                    _bud(options, None, steps, work, layout, iidfile)
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
            steps.report()
        if in_storage:
            manifest_format = "v2s2" if request.format == "docker" else "oci"
            with open(iidfile, encoding="utf-8") as written:
                image_id = written.read().strip()
            buildah.copy_to_layout(place.storage, image_id, destination, manifest_format)
    return bases


def _bud(
    options: buildah.BuildOptions,
    destination: str | None,
    steps: cachesteps.StepSources,
    work: Path,
    layout: Path,
    iidfile: str,
) -> None:
    """buildah bud into the oci: ``destination``, or (None) unnamed into its storage with the
    image's ID written to ``iidfile``."""
    argv = buildah.bud_argv(options, destination, None if destination else iidfile)
    log.debug("running %s", " ".join(argv))
    fds = (options.authfile_fd,) if options.authfile_fd is not None else ()
    if fds:
        os.lseek(fds[0], 0, os.SEEK_SET)
    buildah.build(
        argv, steps, cwd=str(work), output_complete=lambda: layout_is_whole(layout),
        pass_fds=fds,
    )  # fmt: skip


def remembered_version(storage: rootless.Storage) -> Callable[[str], str]:
    """buildah's version asked once per binary, not once per build (tools/limits.py)."""
    cache_file = layercache.version_path(storage)
    return lambda buildah: limits.remembered_version(buildah, cache_file)


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
