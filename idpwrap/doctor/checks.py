"""What ``idpwrap doctor`` checks: each check says ok, warning or error, and how to fix it.

An error is something that would make a build or a push fail; a warning makes them slower,
or fail only for some images or registries. Every check catches its own failures: a doctor
that crashes helps nobody.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from idpwrap.doctor.result import ERROR, OK, WARNING, Check
from idpwrap.errors import IdpwrapError, ToolNotRun
from idpwrap.tools import procs, rootless
from idpwrap.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.store.unused import Unused

TOOL_TIMEOUT = 20
TESTED_VERSIONS = {"buildah": (1, 28), "skopeo": (1, 9)}
LOW_DISK = 1 << 30  # below this, a warning
NO_DISK = 100 << 20  # below this, builds will fail


def run_tool(argv: list[str], environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """(exit code, stdout and stderr) of a short tool run, with the minimal environment; a
    tool that cannot run or hangs is exit code 1 with the reason."""
    try:
        done = procs.run(argv, timeout=TOOL_TIMEOUT, env=environ)
    except ToolNotRun as error:
        return 1, str(error)
    return done.exit_code, (done.stdout + done.stderr).strip()


def version_of(text: str) -> tuple[int, ...] | None:
    match = re.search(r"version (\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(part) for part in match.groups() if part is not None) if match else None


def tool(name: str, runner: Callable[[list[str]], tuple[int, str]] = run_tool) -> Check:
    path = procs.find_program(name)
    if path is None:
        return Check(name, ERROR, f"{name} is not installed", f"apt-get install {name}")
    code, output = runner([path, "--version"])
    version = version_of(output)
    if code != 0 or version is None:
        first = output.splitlines()[0] if output else f"exit code {code}"
        return Check(name, ERROR, f"{path} --version failed: {first}", f"reinstall {name}")
    shown = ".".join(str(part) for part in version)
    if version[:2] < TESTED_VERSIONS[name]:
        wanted = ".".join(str(part) for part in TESTED_VERSIONS[name])
        return Check(
            name, WARNING, f"{name} {shown} ({path}) is older than {wanted}, which idpwrap is"
            " tested with", f"upgrade {name}",
        )  # fmt: skip
    return Check(name, OK, f"{name} {shown} ({path})")


def toolchain(runner: Callable[[list[str]], tuple[int, str]] = run_tool) -> Check:
    """buildah, skopeo and Python against the test matrix: untested is a warning only."""
    from idpwrap.tools import matrix

    found: dict[str, str] = {}
    for name in ("buildah", "skopeo"):
        path = procs.find_program(name)
        version = version_of(runner([path, "--version"])[1]) if path else None
        found[name] = ".".join(str(part) for part in version) if version else "unknown"
    tested, said = matrix.verdict(found["buildah"], found["skopeo"], matrix.python_version())
    if tested:
        return Check("matrix", OK, said)
    return Check("matrix", WARNING, said, "nothing to do if builds and pushes work; else report it")


def rootless_readiness(environ: Mapping[str, str] | None = None) -> list[Check]:
    if not rootless.is_rootless():
        return [Check("rootless", OK, "running as root: builds run as root, not rootless")]
    problems = rootless.current_problems(environ)
    if not problems:
        user = rootless.user_name()
        return [
            Check(
                "rootless",
                OK,
                f"user {user} has subordinate IDs and user namespaces: builds run rootless",
            )
        ]
    return [
        Check("rootless", ERROR if problem.fatal else WARNING, problem.message, problem.fix)
        for problem in problems
    ]


def resource_limits(runner: Callable[[list[str]], tuple[int, str]] = run_tool) -> Check:
    from idpwrap.tools import limits

    low = limits.low_hard_limits()
    buildah = procs.find_program("buildah")
    if not low or buildah is None:
        return Check("limits", OK, "resource limits: RUN steps get buildah's defaults")
    return Check("limits", OK, limits.describe(low, runner([buildah, "--version"])[1]))


def storage(runner: Callable[[list[str]], tuple[int, str]] = run_tool) -> Check:
    """The driver idpwrap chose, tried for real with ``buildah info`` on its storage."""
    chosen = rootless.default_storage()
    where = f"{chosen.driver} at {chosen.root}: {chosen.reason}"
    buildah = procs.find_program("buildah")
    if buildah is None:
        return Check("storage", ERROR, f"{where}; buildah is missing", "apt-get install buildah")
    try:
        rootless.prepare(chosen)
    except IdpwrapError as error:
        return Check("storage", ERROR, str(error), "set XDG_DATA_HOME to a writable directory")
    code, output = runner([buildah, *chosen.argv(), "info"])
    if code != 0:
        last = output.splitlines()[-1] if output else f"exit code {code}"
        fix = "install fuse-overlayfs, or set STORAGE_DRIVER=vfs"
        return Check("storage", ERROR, f"{where}; buildah cannot use it: {last}", fix)
    if chosen.driver == "vfs":
        return Check(
            "storage", WARNING, f"{where} (copies every layer: slow, and big on disk)",
            "apt-get install fuse-overlayfs (or use a kernel >= 5.13)",
        )  # fmt: skip
    return Check("storage", OK, where)


def store_health(root: Path) -> list[Check]:
    from idpwrap.store.api import Store
    from idpwrap.store.layout import walk_blobs
    from idpwrap.store.unused import classify

    checks = []
    store = Store(root)
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not root.exists():
        writable = os.access(existing, os.W_OK)
        status, fix = (OK, None) if writable else (ERROR, "choose a store with --store")
        checks.append(
            Check("store", status, f"{root} does not exist yet: the first build creates it", fix)
        )
    else:
        try:
            index = store.read_index()
            names = sum(1 for entry in index["manifests"] if "annotations" in entry)
            reachable = set(walk_blobs(index["manifests"], store.blob_dir))
            present = blob_sizes(store.blob_dir)
            orphans = set(present) - reachable
            missing = [digest for digest in reachable if digest not in present]
        except IdpwrapError as error:
            checks.append(Check("store", ERROR, str(error), "see the message"))
        else:
            if not os.access(root, os.W_OK):
                checks.append(
                    Check("store", ERROR, f"{root} is not writable", "choose one with --store")
                )
            elif missing:
                checks.append(
                    Check(
                        "store",
                        ERROR,
                        f"{root}: {len(missing)} blobs that tags need are missing",
                        "remove the damaged images (idpwrap rmi) and build them again",
                    )
                )
            elif orphans:
                checks.append(unused_check(root, names, classify(store.blob_dir, orphans, present)))
            else:
                checks.append(Check("store", OK, f"{root}: {names} tags, index readable"))
    checks.append(disk(existing))
    return checks


# Old images of moved tags are the normal state after rebuilds: worth a warning only when
# freeing them would give back this much.
UNUSED_WORTH_FREEING = 1024 * 1024 * 1024


def unused_check(root: Path, names: int, unused: Unused) -> Check:
    """Information about blobs no tag uses; a warning past UNUSED_WORTH_FREEING."""
    parts = []
    if unused.untagged:
        parts.append(
            f"{unused.untagged} blobs ({human(unused.untagged_bytes)}) of layers no tag uses any"
            " more (earlier builds of moved tags)"
        )
    if unused.stray:
        parts.append(
            f"{unused.stray} blobs ({human(unused.stray_bytes)}) left by interrupted commands"
        )
    message = f"{root}: {names} tags; {' and '.join(parts)}"
    if unused.total_bytes >= UNUSED_WORTH_FREEING:
        return Check("store", WARNING, message, "idpwrap prune")
    return Check("store", OK, f"{message}: 'idpwrap prune' frees them")


def blob_sizes(directory: Path) -> dict[str, int]:
    sizes = {}
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return {}
    for entry in entries:
        if entry.is_file(follow_symlinks=False):
            sizes[f"sha256:{entry.name}"] = entry.stat(follow_symlinks=False).st_size
    return sizes


def disk(path: Path) -> Check:
    try:
        info = os.statvfs(path)
    except OSError as error:
        return Check("disk", WARNING, f"cannot tell the free space of {path}: {error.strerror}")
    free = info.f_bavail * info.f_frsize
    message = f"{human(free)} free for {path}"
    if free < NO_DISK:
        return Check("disk", ERROR, message, "free space: idpwrap rmi, idpwrap prune")
    if free < LOW_DISK:
        return Check("disk", WARNING, message, "free space: idpwrap rmi, idpwrap prune")
    return Check("disk", OK, message)


human = human_size


def config_file() -> Check:
    from idpwrap.config import settings as config

    try:
        loaded = config.load()
    except IdpwrapError as error:
        return Check("config", ERROR, str(error), "fix the file, or move it aside")
    if not loaded.exists:
        return Check("config", OK, f"no config file at {loaded.path}: built-in defaults")
    return Check("config", OK, f"{loaded.path} is valid")


def emulation() -> Check:
    """The platforms whose RUN steps this machine can build: its own, and emulated ones."""
    from idpwrap import platforms

    known = [f"linux/{arch}" for arch in platforms.ELF_MACHINES]
    native = [platform for platform in known if platforms.native(platform)]
    emulated = [p for p in platforms.runnable(known) if p not in native]
    message = f"RUN steps build for {', '.join(native)} natively"
    if emulated:
        return Check("platforms", OK, f"{message}, {', '.join(emulated)} emulated (binfmt_misc)")
    return Check(
        "platforms", OK,
        f"{message}, no other (no emulation); without RUN steps any platform builds",
        "foreign RUN steps: apt-get install qemu-user-static, then as root mount binfmt_misc and"
        " register qemu (scripts/emulation does both)",
    )  # fmt: skip


def run_all(
    registry: str | None = None,
    store: str | None = None,
    tls_flags: Mapping[str, object] | None = None,
    authfile: str | None = None,
) -> list[Check]:
    """Every check, in the order a build and then a push meet them."""
    from idpwrap.config import settings as config
    from idpwrap.doctor import registry as registrycheck

    def store_checks() -> list[Check]:
        try:
            root = Path(config.store_root(store)).expanduser().absolute()
        except IdpwrapError:
            root = Path(config.default_store(os.environ))
        return store_health(root)

    checks: list[Check] = []
    for check, name in (
        (config_file, "config"),
        (lambda: tool("buildah"), "buildah"),
        (lambda: tool("skopeo"), "skopeo"),
        (toolchain, "matrix"),
        (rootless_readiness, "rootless"),
        (resource_limits, "limits"),
        (storage, "storage"),
        (emulation, "platforms"),
        (store_checks, "store"),
        (lambda: registrycheck.registry_and_credentials(registry, tls_flags, authfile), "registry"),
    ):
        checks += guard(check, name)
    return checks


def guard(check: Callable[[], Check | list[Check]], name: str) -> list[Check]:
    """A check's result, or an error naming what went wrong inside it."""
    try:
        result = check()
    except Exception as error:
        return [Check(name, ERROR, f"the check failed: {type(error).__name__}: {error}")]
    return result if isinstance(result, list) else [result]
