"""Where and how buildah keeps its layer cache, and whether this account can build rootless.

The layer cache is buildah's own containers-storage, in a root of idpwrap's own
(``$XDG_DATA_HOME/idpwrap/buildah``) rather than the user's (``~/.local/share/containers``):
idpwrap chooses its storage driver without touching a podman setup, ``prune`` can empty it
without removing anyone's podman images, and root and ordinary users get the same layout.
The cost: images pulled with podman are not seen as bases (``idpwrap load`` them instead).

The driver is the fastest that works here: the kernel's overlay (as root, or rootless on
kernels 5.13 and later, which allow it in a user namespace), else fuse-overlayfs where it is
installed and ``/dev/fuse`` is usable, else vfs (copies every layer: slow and big, but works
everywhere). ``STORAGE_DRIVER`` in the environment overrides the choice.

A rootless build needs user namespaces, ``newuidmap``/``newgidmap`` (Debian: ``uidmap``) and
subordinate IDs for the user in ``/etc/subuid`` and ``/etc/subgid``. Without them buildah
fails late and obscurely (``error setting supplemental groups list: operation not permitted``
at the first RUN), so they are checked first and reported with the command that fixes them.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import namedtuple
from collections.abc import Mapping
from pathlib import Path

from idpwrap.errors import SetupError
from idpwrap.tools import procs

SUBUID_FILE = "/etc/subuid"
SUBGID_FILE = "/etc/subgid"
NSSWITCH_FILE = "/etc/nsswitch.conf"
FUSE_DEVICE = "/dev/fuse"
FUSE_OVERLAYFS = "fuse-overlayfs"
WANTED_IDS = 65536  # enough for the IDs images use (nobody is 65534)
FIRST_SUBORDINATE_ID = 100000
ROOTLESS_OVERLAY_KERNEL = (5, 13)
# Filesystems the kernel's overlay cannot use as its upper layer.
NO_NATIVE_OVERLAY = {"overlay", "aufs", "nfs", "nfs4", "cifs", "smb3", "fuse", "ecryptfs"}


class Storage(namedtuple("Storage", "root runroot driver mount_program reason")):
    """buildah's storage: ``--root``, ``--runroot``, ``--storage-driver`` and, for
    fuse-overlayfs, its ``overlay.mount_program``; ``reason`` says why this driver."""

    __slots__ = ()
    root: Path
    runroot: Path
    driver: str
    mount_program: str | None
    reason: str

    def argv(self) -> list[str]:
        """buildah's global options for this storage (they go before the subcommand)."""
        argv = ["--root", str(self.root), "--runroot", str(self.runroot)]
        argv += ["--storage-driver", self.driver]
        if self.mount_program:
            argv += ["--storage-opt", f"overlay.mount_program={self.mount_program}"]
        return argv


def is_rootless() -> bool:
    return os.geteuid() != 0


def user_name(uid: int | None = None) -> str:
    import pwd

    uid = os.geteuid() if uid is None else uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of the running kernel, e.g. (6, 1) for ``6.1.0-18-amd64``."""
    release = release if release is not None else os.uname().release
    parts = []
    for piece in release.split(".")[:2]:
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        parts.append(int(digits or 0))
    while len(parts) < 2:
        parts.append(0)
    return parts[0], parts[1]


def filesystem_type(path: Path, mountinfo: str | None = None) -> str:
    """The type of the filesystem ``path`` (or its nearest existing parent) is on."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return ""
    existing = Path(os.path.abspath(path))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    target = os.path.realpath(existing)
    best, best_type = "", ""
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        mount_point = fields[4].replace("\\040", " ")
        fs_type = line.split(" - ", 1)[1].split()[0]
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fs_type
    return best_type


def choose_driver(
    *,
    rootless: bool,
    kernel: tuple[int, int],
    fs_type: str,
    fuse_program: str | None,
    fuse_usable: bool,
    environ: Mapping[str, str],
) -> tuple[str, str | None, str]:
    """(driver, fuse-overlayfs path or None, why) for a storage root on ``fs_type``."""
    chosen = environ.get("STORAGE_DRIVER")
    if chosen:
        program = fuse_program if chosen == "overlay" and _wants_fuse(environ) else None
        return chosen, program, "STORAGE_DRIVER is set"
    native_fs = fs_type.split(".")[0] not in NO_NATIVE_OVERLAY
    if native_fs and (not rootless or kernel >= ROOTLESS_OVERLAY_KERNEL):
        why = "as root" if not rootless else f"rootless on kernel {kernel[0]}.{kernel[1]} >= 5.13"
        return "overlay", None, f"the kernel's overlay, {why}"
    if fuse_program and fuse_usable:
        if native_fs:
            why = f"rootless, kernel {kernel[0]}.{kernel[1]} < 5.13"
        else:
            why = f"the kernel's overlay cannot stack on {fs_type}"
        return "overlay", fuse_program, f"fuse-overlayfs, {why}"
    missing = (
        "fuse-overlayfs is not installed" if not fuse_program else f"{FUSE_DEVICE} is unusable"
    )
    return "vfs", None, f"vfs: no usable overlay ({missing}; apt-get install fuse-overlayfs)"


def _wants_fuse(environ: Mapping[str, str]) -> bool:
    return "mount_program" in environ.get("STORAGE_OPTS", "")


def data_home(environ: Mapping[str, str]) -> Path:
    configured = environ.get("XDG_DATA_HOME")
    if configured:
        return Path(configured)
    return Path(environ.get("HOME") or str(Path.home())) / ".local" / "share"


def runroot_for(root: Path, environ: Mapping[str, str], uid: int) -> Path:
    """buildah's state directory (locks, mounts) for ``root``: on tmpfs where there is one,
    named after ``root`` so that two storage roots never share their state."""
    name = "idpwrap-buildah-" + hashlib.sha256(str(root).encode()).hexdigest()[:12]
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
        return Path(runtime) / name
    if uid == 0:
        return Path("/run") / name
    return Path(environ.get("TMPDIR") or "/tmp") / f"idpwrap-run-{uid}" / name


def ensure_private_directory(path: Path, uid: int) -> None:
    """Create ``path`` (0700) and check that a shared place such as /tmp did not give us
    somebody else's directory or a symbolic link."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
    except OSError as error:
        raise SetupError(
            f"cannot create buildah's directory {path}: {error.strerror}: set XDG_RUNTIME_DIR"
            " (or TMPDIR) to a directory of yours"
        ) from error
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
        raise SetupError(
            f"{path} is not a directory owned by you: remove it, or set XDG_RUNTIME_DIR to a"
            " directory of yours"
        )


def default_storage(environ: Mapping[str, str] | None = None) -> Storage:
    environ = os.environ if environ is None else environ
    uid = os.geteuid()
    root = data_home(environ) / "idpwrap" / "buildah"
    fuse_program = procs.find_program(FUSE_OVERLAYFS, environ.get("PATH"))
    driver, program, reason = choose_driver(
        rootless=uid != 0,
        kernel=kernel_version(),
        fs_type=filesystem_type(root),
        fuse_program=fuse_program,
        fuse_usable=os.access(FUSE_DEVICE, os.R_OK | os.W_OK),
        environ=environ,
    )
    return Storage(root, runroot_for(root, environ, uid), driver, program, reason)


def prepare(storage: Storage) -> None:
    """Create the storage root and the state directory, private to this user."""
    uid = os.geteuid()
    for path in (storage.root, storage.runroot):
        ensure_private_directory(path, uid)


# -- rootless readiness ------------------------------------------------------------------------


def subordinate_ranges(text: str, user: str, uid: int) -> list[tuple[int, int]]:
    """The (first, count) ranges of ``user`` (by name or by uid) in /etc/subuid-style text."""
    ranges = []
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) != 3 or fields[0] not in (user, str(uid)):
            continue
        try:
            ranges.append((int(fields[1]), int(fields[2])))
        except ValueError:
            continue
    return ranges


def free_range_start(*texts: str) -> int:
    """The first ID after every range in the given files (at least 100000): a range there
    overlaps nobody's."""
    end = FIRST_SUBORDINATE_ID
    for text in texts:
        for line in text.splitlines():
            fields = line.strip().split(":")
            if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                end = max(end, int(fields[1]) + int(fields[2]))
    return end


def fix_command(user: str, subuid_text: str, subgid_text: str) -> str:
    start = free_range_start(subuid_text, subgid_text)
    last = start + WANTED_IDS - 1
    return f"usermod --add-subuids {start}-{last} --add-subgids {start}-{last} {user}"


def subid_from_nss(nsswitch_text: str) -> bool:
    """True when subordinate IDs come from a service other than the files (sssd, LDAP): the
    files then say nothing about the user."""
    for line in nsswitch_text.splitlines():
        words = line.split("#", 1)[0].split()
        if words and words[0] == "subid:":
            return any(word != "files" for word in words[1:])
    return False


def read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


class Problem(namedtuple("Problem", "message fix fatal")):
    """Something in the way of a rootless build: what, the command that fixes it, and whether
    a build would fail (else it only makes builds slower or some images unbuildable)."""

    __slots__ = ()
    message: str
    fix: str
    fatal: bool


def rootless_problems(
    *,
    user: str,
    uid: int,
    subuid_text: str,
    subgid_text: str,
    nsswitch_text: str = "",
    max_user_namespaces: str | None = None,
    unprivileged_userns_clone: str | None = None,
    newuidmap: str | None = "/usr/bin/newuidmap",
    newgidmap: str | None = "/usr/bin/newgidmap",
) -> list[Problem]:
    """What would make a rootless build fail (or limp), from the facts given."""
    problems = []
    if max_user_namespaces is not None and max_user_namespaces.strip() == "0":
        problems.append(
            Problem(
                "user namespaces are disabled (user.max_user_namespaces = 0)",
                "as root: sysctl -w user.max_user_namespaces=28633",
                True,
            )
        )
    if unprivileged_userns_clone is not None and unprivileged_userns_clone.strip() == "0":
        problems.append(
            Problem(
                "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)",
                "as root: sysctl -w kernel.unprivileged_userns_clone=1",
                True,
            )
        )
    for tool, path in (("newuidmap", newuidmap), ("newgidmap", newgidmap)):
        if path is None:
            problems.append(
                Problem(f"{tool} is not installed", "as root: apt-get install uidmap", True)
            )
    if not subid_from_nss(nsswitch_text):
        fix = "as root: " + fix_command(user, subuid_text, subgid_text)
        uids = subordinate_ranges(subuid_text, user, uid)
        gids = subordinate_ranges(subgid_text, user, uid)
        missing = [name for name, found in ((SUBUID_FILE, uids), (SUBGID_FILE, gids)) if not found]
        if missing:
            problems.append(
                Problem(
                    f"user {user} has no subordinate IDs in {' and '.join(missing)}, which a"
                    " rootless build needs",
                    fix,
                    True,
                )
            )
        else:
            small = [
                name
                for name, found in ((SUBUID_FILE, uids), (SUBGID_FILE, gids))
                if sum(count for _, count in found) < WANTED_IDS
            ]
            if small:
                problems.append(
                    Problem(
                        f"user {user} has fewer than {WANTED_IDS} subordinate IDs in"
                        f" {' and '.join(small)}: images with files of other owners may fail",
                        fix,
                        False,
                    )
                )
    return problems


def current_problems(environ: Mapping[str, str] | None = None) -> list[Problem]:
    """The problems of this account, read from this machine."""
    environ = os.environ if environ is None else environ
    uid = os.geteuid()

    def sysctl(name: str) -> str | None:
        try:
            return Path("/proc/sys", *name.split(".")).read_text()
        except OSError:
            return None

    path = environ.get("PATH") or procs.DEFAULT_PATH
    return rootless_problems(
        user=user_name(uid),
        uid=uid,
        subuid_text=read_text(SUBUID_FILE),
        subgid_text=read_text(SUBGID_FILE),
        nsswitch_text=read_text(NSSWITCH_FILE),
        max_user_namespaces=sysctl("user.max_user_namespaces"),
        unprivileged_userns_clone=sysctl("kernel.unprivileged_userns_clone"),
        newuidmap=procs.find_program("newuidmap", path),
        newgidmap=procs.find_program("newgidmap", path),
    )


def check_ready(environ: Mapping[str, str] | None = None) -> None:
    """Nothing as root; rootless, SetupError for the first problem that would fail a build."""
    if not is_rootless():
        return
    for problem in current_problems(environ):
        if problem.fatal:
            raise SetupError(f"{problem.message}: {problem.fix}")
