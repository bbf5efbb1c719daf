"""Platforms (``os/arch[/variant]``) and whether this machine can run a platform's programs.

A build's RUN steps execute the image's own binaries: for a platform other than the host's
that takes emulation, i.e. a ``binfmt_misc`` entry (from ``qemu-user-static``) that hands the
platform's ELF files to an interpreter. The entries are read from ``/proc/sys/fs/binfmt_misc``
and matched by the ELF header they recognise, not by name, so that any registration (Debian's
``update-binfmts``/``systemd-binfmt``, or one written by hand) counts.
"""

from __future__ import annotations

import os
import re

from idpwrap.errors import SetupError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

PLATFORM_RE = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?$")
BINFMT_DIR = "/proc/sys/fs/binfmt_misc"
# GOARCH (as OCI platforms spell it) -> (ELF class, ELF data, e_machine, qemu's name).
ELF_MACHINES: dict[str, tuple[int, int, int, str]] = {
    "amd64": (2, 1, 0x3E, "x86_64"),
    "386": (1, 1, 0x03, "i386"),
    "arm64": (2, 1, 0xB7, "aarch64"),
    "arm": (1, 1, 0x28, "arm"),
    "ppc64le": (2, 1, 0x15, "ppc64le"),
    "s390x": (2, 2, 0x16, "s390x"),
    "riscv64": (2, 1, 0xF3, "riscv64"),
    "mips64le": (2, 1, 0x08, "mips64el"),
}
# uname -m -> GOARCH of the programs the host runs itself.
HOST_ARCHES = {
    "x86_64": ("amd64", "386"),
    "aarch64": ("arm64",),
    "armv7l": ("arm",),
    "ppc64le": ("ppc64le",),
    "s390x": ("s390x",),
    "riscv64": ("riscv64",),
}
MAX_ENTRIES = 256


def parse(values: Iterable[str]) -> tuple[str, ...]:
    """``--platform`` values (repeatable, each comma-separated) in order, duplicates dropped."""
    found: list[str] = []
    for value in values:
        for part in value.split(","):
            text = part.strip().lower()
            if not text:
                raise UsageError(
                    f"--platform {value!r}: an empty platform; give OS/ARCH[,OS/ARCH...]"
                )
            if not PLATFORM_RE.match(text):
                raise UsageError(
                    f"--platform {part.strip()!r}: expected OS/ARCH[/VARIANT], e.g. linux/arm64"
                )
            if text not in found:
                found.append(text)
    return tuple(found)


def host() -> str:
    """The platform buildah builds for when none is given."""
    arches = HOST_ARCHES.get(os.uname().machine)
    arch = arches[0] if arches else os.uname().machine
    return f"linux/{arch}"


def of(entry: dict[str, object]) -> str:
    """``os/arch[/variant]`` of an index entry's ``platform`` or an image config."""
    text = f"{entry.get('os') or 'unknown'}/{entry.get('architecture') or 'unknown'}"
    variant = entry.get("variant")
    return f"{text}/{variant}" if variant else text


def as_platform(text: str) -> dict[str, str]:
    """``linux/arm64/v8`` -> the OCI ``platform`` object."""
    parts = text.split("/")
    found = {"architecture": parts[1], "os": parts[0]}
    if len(parts) > 2:
        found["variant"] = parts[2]
    return found


def matches(wanted: str, candidate: str) -> bool:
    """Whether ``candidate`` serves ``wanted``; a missing variant matches any."""
    want, have = wanted.split("/"), candidate.split("/")
    if want[:2] != have[:2]:
        return False
    return len(want) < 3 or len(have) < 3 or want[2] == have[2]


def native(platform: str) -> bool:
    parts = platform.split("/")
    return parts[0] == "linux" and parts[1] in HOST_ARCHES.get(os.uname().machine, ())


def emulators(binfmt_dir: str = BINFMT_DIR) -> dict[str, str]:
    """GOARCH -> the interpreter of an enabled ``binfmt_misc`` entry for its ELF files."""
    try:
        with open(os.path.join(binfmt_dir, "status")) as status:
            if status.read().strip() != "enabled":
                return {}
        names = sorted(os.listdir(binfmt_dir))[:MAX_ENTRIES]
    except OSError:
        return {}
    found: dict[str, str] = {}
    for name in names:
        if name in ("status", "register"):
            continue
        try:
            with open(os.path.join(binfmt_dir, name)) as file:
                fields = _entry_fields(file.read())
        except (OSError, UnicodeDecodeError):
            continue
        arch = _elf_arch(fields)
        if arch and arch not in found:
            found[arch] = fields.get("interpreter", "")
    return found


def _entry_fields(text: str) -> dict[str, str]:
    lines = text.splitlines()
    fields = {"state": lines[0].strip() if lines else ""}
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        fields[key] = value.strip()
    return fields


def _elf_arch(fields: dict[str, str]) -> str | None:
    """The GOARCH whose ELF header an entry's magic (under its mask) recognises."""
    if fields.get("state") != "enabled" or fields.get("offset", "0") != "0":
        return None
    try:
        magic = bytes.fromhex(fields.get("magic", ""))
        mask = bytes.fromhex(fields.get("mask", "")) or b"\xff" * len(magic)
    except ValueError:
        return None
    if len(magic) < 20 or not magic.startswith(b"\x7fELF"):
        return None
    masked = bytes(byte & mask[i] if i < len(mask) else byte for i, byte in enumerate(magic))
    for arch, (elf_class, data, machine, _) in ELF_MACHINES.items():
        order = "little" if data == 1 else "big"
        if (
            masked[4] == elf_class
            and masked[5] == data
            and masked[18:20] == machine.to_bytes(2, order)
        ):
            return arch
    return None


def can_run(platform: str, binfmt_dir: str = BINFMT_DIR) -> bool:
    """Whether RUN steps of ``platform`` can execute here, natively or emulated."""
    if native(platform):
        return True
    parts = platform.split("/")
    return parts[0] == "linux" and parts[1] in emulators(binfmt_dir)


def runnable(candidates: Sequence[str], binfmt_dir: str = BINFMT_DIR) -> list[str]:
    """Of ``candidates``, the platforms whose RUN steps this machine can execute."""
    return [platform for platform in candidates if can_run(platform, binfmt_dir)]


def check_emulation(platforms: Sequence[str], binfmt_dir: str = BINFMT_DIR) -> None:
    """Before a build with RUN steps: SetupError naming the platforms this machine cannot run
    and how to enable their emulation."""
    missing = [platform for platform in platforms if not can_run(platform, binfmt_dir)]
    if not missing:
        return
    raise SetupError.no_emulation(missing, _qemu_names(missing), host(), binfmt_dir)


def _qemu_names(platforms: Sequence[str]) -> list[str]:
    names = []
    for platform in platforms:
        arch = platform.split("/")[1]
        names.append(f"qemu-{ELF_MACHINES[arch][3]}" if arch in ELF_MACHINES else f"qemu-{arch}")
    return names
