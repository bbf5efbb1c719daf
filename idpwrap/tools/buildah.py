"""The buildah command line: build options to ``buildah bud`` argv, run it, explain failures."""

from __future__ import annotations

import os
from collections import deque, namedtuple
from collections.abc import Callable, Sequence
from pathlib import Path

from idpwrap.errors import BuildFailed, ContextError, UsageError
from idpwrap.tools import procs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.tools.rootless import Storage

CONTAINERFILE_NAMES = ("Containerfile", "Dockerfile")
# chroot isolation works as root and rootless, in containers and on CI runners, with no OCI
# runtime or network namespace setup; BUILDAH_ISOLATION overrides it.
DEFAULT_ISOLATION = "chroot"
# what is kept of buildah's output for the log of a failed build
LINES_KEPT_FOR_ERRORS = 100_000


PULL_MODES = ("never", "missing", "always")
# Our pull modes in buildah's words. "missing" pulls only what its storage lacks in 1.28 and
# 1.39 alike; "false" did so in 1.28 but means "never" in 1.39 (a FROM from a registry then
# failed with "image not known" without trying).
PULL_ARGUMENT = {"never": "never", "missing": "missing", "always": "always"}
DEFAULT_PULL = "missing"
SECRET_TYPES = ("file",)


_OPTION_FIELDS = (
    "context containerfile build_args layers target labels no_cache pull secrets platform storage"
    " ulimits timestamp annotations format cache_from cache_to cache_ttl authfile_fd tls_verify"
    " cert_dir"
)
_OPTION_DEFAULTS = ((), True, None, (), False, DEFAULT_PULL, (), None, None, (), None, (),
                    "oci", (), (), None, None, True, None)  # fmt: skip


class BuildOptions(namedtuple("BuildOptions", _OPTION_FIELDS, defaults=_OPTION_DEFAULTS)):
    """Every option of one ``buildah bud``; immutable (``_replace`` makes a changed copy). A
    namedtuple rather than a dataclass: ``dataclasses`` (with ``inspect``, ``ast`` and
    ``dis``) cost about 8 ms of every build's start here."""

    __slots__ = ()
    context: Path
    containerfile: Path
    build_args: Sequence[str]
    layers: bool
    target: str | None
    labels: Sequence[str]
    no_cache: bool
    pull: str
    secrets: Sequence[tuple[str, Path]]  # (id, file)
    platform: str | None
    storage: Storage | None
    # --ulimit TYPE=SOFT:HARD for RUN steps (limits.ulimit_arguments); () leaves buildah's.
    ulimits: Sequence[str]
    timestamp: int | None  # seconds since the epoch; None: buildah's clock
    annotations: Sequence[str]  # KEY=VALUE on the manifest
    format: str
    # The layer cache in a registry (buildah's --cache-from/--cache-to, HOST/PATH each) and how
    # to reach it: an auth file as /dev/fd/N, TLS verification, a directory of CA files.
    cache_from: Sequence[str]
    cache_to: Sequence[str]
    cache_ttl: str | None
    authfile_fd: int | None
    tls_verify: bool
    cert_dir: str | None


def isolation() -> str:
    return os.environ.get("BUILDAH_ISOLATION") or DEFAULT_ISOLATION


def parse_secret(text: str) -> tuple[str, Path]:
    """``id=ID,src=FILE`` (``type=file`` allowed) -> (ID, absolute FILE), the file readable."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, equals, value = part.partition("=")
        if not equals or key not in ("id", "src", "type") or key in fields:
            raise UsageError(f"--secret {text!r}: expected id=ID,src=FILE")
        fields[key] = value
    if fields.get("type", "file") not in SECRET_TYPES:
        raise UsageError(f"--secret {text!r}: only type=file is supported")
    if not fields.get("id") or not fields.get("src"):
        raise UsageError(f"--secret {text!r}: expected id=ID,src=FILE")
    path = Path(fields["src"]).expanduser().absolute()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise UsageError(f"--secret {fields['id']}: {fields['src']} is not a readable file")
    return fields["id"], path


def parse_label(text: str) -> str:
    key, equals, _ = text.partition("=")
    if not equals or not key.strip():
        raise UsageError(f"--label {text!r}: expected KEY=VALUE")
    return text


def read_build_arg_file(path: str) -> list[str]:
    """``KEY=VALUE`` lines (blank lines and ``#`` comments skipped), as podman reads them."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise UsageError(f"--build-arg-file {path}: {reason}") from error
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not stripped.split("=", 1)[0].strip():
            raise UsageError(f"--build-arg-file {path}:{number}: expected KEY=VALUE")
        found.append(stripped)
    return found


def resolve_build_args(
    files: Sequence[str], arguments: Sequence[str], environ: dict[str, str] | None = None
) -> dict[str, str]:
    """The build arguments: the files' in order, then ``--build-arg`` (which win). ``KEY``
    alone takes the value of the environment variable, as podman does, or is dropped; buildah
    runs with a minimal environment, so it could not look it up itself."""
    environ = dict(os.environ) if environ is None else environ
    values: dict[str, str] = {}
    for text in [line for path in files for line in read_build_arg_file(path)] + list(arguments):
        key, equals, value = text.partition("=")
        key = key.strip()
        if not key:
            raise UsageError(f"--build-arg {text!r}: expected KEY=VALUE")
        if equals:
            values[key] = value
        elif key in environ:
            values[key] = environ[key]
        else:
            values.pop(key, None)
    return values


def find_containerfile(context: Path, file_option: str | None) -> Path:
    """``-f FILE`` as given (relative to the working directory, as podman does), else the
    context's Containerfile, else its Dockerfile."""
    try:
        if not context.is_dir():
            raise ContextError.missing_directory(str(context))
        if file_option:
            path = Path(file_option)
            if not path.is_file():
                beside = context / file_option
                suggestion = str(beside) if not path.is_absolute() and beside.is_file() else None
                raise ContextError.missing_file(file_option, str(path.absolute()), suggestion)
            return path
        for name in CONTAINERFILE_NAMES:
            candidate = context / name
            if candidate.is_file():
                return candidate
    except PermissionError as error:
        raise ContextError(
            f"cannot read {error.filename or context}: permission denied; build from a"
            " directory you can read"
        ) from error
    raise ContextError.missing_containerfile(str(context))


def bud_argv(
    options: BuildOptions, oci_destination: str | None, iidfile: str | None = None
) -> list[str]:
    """``buildah bud`` into ``oci_destination``, or into buildah's storage without a name (the
    image's ID written to ``iidfile``; copy_to_layout then takes it into the layout)."""
    argv = ["buildah", *(options.storage.argv() if options.storage else []), "bud"]
    argv += [
        "--isolation",
        isolation(),
        # Compressed in the store, so a push is a straight copy with the store's digests.
        "--disable-compression=false",
        "--force-rm",
        "-f",
        str(options.containerfile),
        f"--pull={PULL_ARGUMENT[options.pull]}",
    ]
    if options.format == "docker":
        argv += ["--format", "docker"]  # keeps HEALTHCHECK, SHELL, STOPSIGNAL, ONBUILD
    if options.layers:
        argv.append("--layers")
    if options.no_cache:
        argv.append("--no-cache")
    if options.target:
        argv += ["--target", options.target]
    if options.platform:
        argv += ["--platform", options.platform]
    if options.timestamp is not None:
        # buildah 1.28 and 1.39 both take it, for created, history and every file in new layers.
        argv += ["--timestamp", str(options.timestamp)]
    for label in options.labels:
        argv += ["--label", label]
    for annotation in options.annotations:
        argv += ["--annotation", annotation]
    for secret_id, path in options.secrets:
        argv += ["--secret", f"id={secret_id},src={path}"]  # a path: the secret stays in it
    for build_arg in options.build_args:
        argv += ["--build-arg", build_arg]
    argv += options.ulimits
    argv += registry_arguments(options)
    if oci_destination is not None:
        argv += ["-t", oci_destination]
    if iidfile is not None:
        argv += ["--iidfile", iidfile]
    return [*argv, str(options.context)]


def registry_arguments(options: BuildOptions) -> list[str]:
    """The layer cache's repositories, and how buildah reaches registries (the cache's and a
    FROM's): the credentials only ever as a descriptor's path, never a value."""
    argv: list[str] = []
    for repository in options.cache_from:
        argv += ["--cache-from", repository]
    for repository in options.cache_to:
        argv += ["--cache-to", repository]
    if options.cache_ttl and (options.cache_from or options.cache_to):
        argv += ["--cache-ttl", options.cache_ttl]
    if options.authfile_fd is not None:
        argv += ["--authfile", f"/dev/fd/{options.authfile_fd}"]
    if not options.tls_verify:
        argv.append("--tls-verify=false")
    if options.cert_dir:
        argv += ["--cert-dir", options.cert_dir]
    return argv


# buildah 1.28 and 1.39 fail the whole build when a --cache-to push fails, in these words:
# "failed pushing cache to {{{"HOST" "PATH"} "KEY"}}: ...".
CACHE_PUSH_FAILED = "failed pushing cache to"
# buildah 1.28's and 1.39's words for a step taken from a --cache-from repository.
REMOTE_HIT = "Cache pulled from remote"
LOCAL_HIT = "--> Using cache"
# Up to 1.28, every step after an ARG misses the registry's layer cache (containers/buildah
# #4315 and #4621); 1.29 fixed it. 1.28 takes one --cache-from and one --cache-to.
ARG_MISSES_BEFORE = (1, 29)
REPEATED_CACHE_SINCE = (1, 29)

_VERSION_TEXT: list[str] = []


def know_version(text: str) -> None:
    """``buildah --version``'s answer, already known (a build keeps it beside its storage,
    limits.remembered_version): ``version()`` and ``version_text()`` then start no buildah,
    which costs 50 to 120 ms here, once for the layer cache's flags and once more for the
    provenance."""
    if text.strip() and not _VERSION_TEXT:
        _VERSION_TEXT.append(text.strip())


def version_text() -> str:
    """``buildah --version``'s answer (asked once per process unless known), "" without one."""
    if not _VERSION_TEXT:
        from idpwrap.errors import ToolNotRun

        try:
            text = procs.run(
                ["buildah", "--version"], env=procs.child_environment(), timeout=20
            ).stdout
        except ToolNotRun:
            text = ""
        _VERSION_TEXT.append(text.strip())
    return _VERSION_TEXT[0]


def version() -> tuple[int, int] | None:
    """buildah's major.minor, None when it does not say."""
    import re

    match = re.search(r"version (\d+)\.(\d+)", version_text())
    return (int(match.group(1)), int(match.group(2))) if match else None


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
    pass_fds: Sequence[int] = (),
) -> None:
    """Run buildah (in ``cwd``), streaming its output; raise BuildFailed with its output.

    ``output_complete`` says whether the destination holds a whole image: it is asked when
    buildah fails with its cached-last-step quirk, and a whole image then counts as built.
    """
    recent: deque[str] = deque(maxlen=LINES_KEPT_FOR_ERRORS)
    partial = [""]

    def remember(text: str) -> None:
        on_output(text)
        lines = (partial[0] + text).split("\n")
        partial[0] = lines.pop()
        recent.extend(lines)

    finished = procs.run_streaming(
        argv, remember, env=procs.child_environment(), merge_stderr=True, cwd=cwd,
        pass_fds=pass_fds,
    )  # fmt: skip
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


def copy_to_layout_argv(
    storage: Storage | None, image_id: str, destination: str, manifest_format: str = "v2s2"
) -> list[str]:
    """An unnamed image of buildah's storage into ``destination`` (Docker v2 schema 2, or oci)
    with compressed layers; the image stays there as the last step's cached image. A docker-
    format build goes this way because buildah 1.28 converts to OCI (dropping HEALTHCHECK &
    co.) whatever it writes to oci:, a --cache-to build because of the cache push's failure."""
    base = ["buildah", *(storage.argv() if storage else [])]
    return [*base, "push", "--format", manifest_format, "--disable-compression=false", "--quiet",
            image_id, destination]  # fmt: skip


def copy_to_layout(
    storage: Storage | None, image_id: str, destination: str, manifest_format: str = "v2s2"
) -> None:
    _run_or_fail(copy_to_layout_argv(storage, image_id, destination, manifest_format))


def _run_or_fail(argv: list[str], quiet: bool = False) -> None:
    output: list[str] = []
    finished = procs.run_streaming(
        argv, output.append, env=procs.child_environment(), merge_stderr=True
    )
    if finished.exit_code != 0 and not quiet:
        lines = [line for line in "".join(output).splitlines() if line.strip()]
        raise BuildFailed(f"{' '.join(argv)} failed: {' | '.join(lines[-3:])}")


def clear_cache_argvs(storage: Storage) -> list[list[str]]:
    """Emptying buildah's own storage: its working containers (a failed build's), then every
    image, the layer cache with them."""
    base = ["buildah", *storage.argv()]
    return [[*base, "rm", "--all"], [*base, "rmi", "--all", "--force"]]


def clear_cache(storage: Storage) -> int:
    """Empty idpwrap's buildah storage; about the bytes freed (what this user can see: a
    rootless storage has directories of subordinate IDs it may not enter)."""
    before = tree_bytes(storage.root)
    for argv in clear_cache_argvs(storage):
        _run_or_fail(argv)
    return max(0, before - tree_bytes(storage.root))


def tree_bytes(root: Path) -> int:
    total = 0
    for directory, _, files in os.walk(root, onerror=lambda error: None):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except OSError:
                continue
    return total
