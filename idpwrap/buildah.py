"""The buildah command line: build options to ``buildah bud`` argv, run it, explain failures."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from idpwrap import procs
from idpwrap.errors import BuildFailed, ContextError

CONTAINERFILE_NAMES = ("Containerfile", "Dockerfile")
# chroot isolation works as root and rootless, in containers and on CI runners, with no OCI
# runtime or network namespace setup; BUILDAH_ISOLATION overrides it.
DEFAULT_ISOLATION = "chroot"
LINES_KEPT_FOR_ERRORS = 6


@dataclass(frozen=True)
class BuildOptions:
    context: Path
    containerfile: Path
    build_args: Sequence[str] = field(default_factory=tuple)
    layers: bool = True


def find_containerfile(context: Path, file_option: str | None) -> Path:
    """``-f FILE`` as given (relative to the working directory, as podman does), else the
    context's Containerfile, else its Dockerfile."""
    if not context.is_dir():
        raise ContextError.missing_directory(str(context))
    if file_option:
        path = Path(file_option)
        if not path.is_file():
            raise ContextError.missing_file(file_option)
        return path
    for name in CONTAINERFILE_NAMES:
        candidate = context / name
        if candidate.is_file():
            return candidate
    raise ContextError.missing_containerfile(str(context))


def bud_argv(options: BuildOptions, oci_destination: str) -> list[str]:
    isolation = os.environ.get("BUILDAH_ISOLATION") or DEFAULT_ISOLATION
    argv = [
        "buildah",
        "bud",
        "--isolation",
        isolation,
        # Compressed in the store, so a push is a straight copy with the store's digests.
        "--disable-compression=false",
        "--force-rm",
        "-f",
        str(options.containerfile),
    ]
    if options.layers:
        argv.append("--layers")
    for build_arg in options.build_args:
        argv += ["--build-arg", build_arg]
    return [*argv, "-t", oci_destination, str(options.context)]


# buildah 1.28 fails with this after it has written the image to an oci: destination, when the
# last step of the build came from the layer cache (it then looks for the image in its own
# storage, where an oci: destination never puts it).
CACHED_LAST_STEP_QUIRK = "locating new copy of image"


def build(
    argv: list[str],
    on_output: Callable[[str], None],
    *,
    cwd: str | None = None,
    output_complete: Callable[[], bool] | None = None,
) -> None:
    """Run buildah (in ``cwd``), streaming its output; raise BuildFailed with its last lines.

    ``output_complete`` says whether the destination holds a whole image: it is asked when
    buildah fails with its cached-last-step quirk, and a whole image then counts as built.
    """
    recent: deque[str] = deque(maxlen=LINES_KEPT_FOR_ERRORS)
    partial = [""]

    def remember(text: str) -> None:
        on_output(text)
        lines = (partial[0] + text).split("\n")
        partial[0] = lines.pop()
        recent.extend(line for line in lines if line.strip())

    finished = procs.run_streaming(
        argv, remember, env=procs.child_environment(), merge_stderr=True, cwd=cwd
    )
    if partial[0].strip():
        recent.append(partial[0])
    if finished.exit_code != 0:
        quirk = any(CACHED_LAST_STEP_QUIRK in line for line in recent)
        if quirk and output_complete is not None and output_complete():
            on_output(
                "idpwrap: buildah wrote the whole image before that error (its last step came"
                " from the cache): using the image\n"
            )
            return
        raise BuildFailed.with_output(finished.exit_code, list(recent))
