"""Sigstore keys: which tool can make and use them, their passphrase, and ``keygen``.

Two tools know the format (an ``ENCRYPTED SIGSTORE PRIVATE KEY`` PEM and a PEM public key):
skopeo since 1.10 (``generate-sigstore-key``; signing with ``--sign-by-sigstore-private-key``)
and cosign. Debian 12's skopeo 1.9.3 has neither command, and refuses to sign ("Debian-local
change: sigstore disabled"); Debian 13's skopeo 1.18 has both. So skopeo is used where it can,
cosign otherwise.

The passphrase never goes on a command line: it comes from ``--passphrase-file`` (or
``--sign-passphrase-file``), ``IDPWRAP_SIGN_PASSPHRASE`` or a prompt, and reaches skopeo as
``/dev/fd/N`` of an unlinked 0600 file and cosign as ``COSIGN_PASSWORD`` in its environment.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from idpwrap import log
from idpwrap.errors import SigningError, ToolMissing, ToolNotRun, UsageError
from idpwrap.scratch import remove_tree, unlinked_file
from idpwrap.tools import cosign, procs, skopeo

PASSPHRASE_VARIABLE = "IDPWRAP_SIGN_PASSPHRASE"
PROBE_TIMEOUT = 30
KEY_TOOL_TIMEOUT = 120
INSTALL_HINT = "install cosign (Debian: apt-get install cosign; scripts/setup does it)"


def find_tool(name: str) -> str | None:
    return procs.find_program(name)


def skopeo_can_generate() -> bool:
    """skopeo 1.9 answers ``generate-sigstore-key --help`` with its general help (exit 0)."""
    if find_tool("skopeo") is None:
        return False
    try:
        done = procs.run(skopeo.generate_key_help_argv(), timeout=PROBE_TIMEOUT)
    except ToolNotRun:
        return False
    return done.exit_code == 0 and "--output-prefix" in done.stdout + done.stderr


def read_passphrase(
    file: str | None, *, confirm: bool = False, what: str = "key", option: str = "--passphrase-file"
) -> str:
    """From ``file``, else IDPWRAP_SIGN_PASSPHRASE, else a prompt on a terminal."""
    if file:
        try:
            with open(file, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise UsageError(f"cannot read the passphrase file {file}: {reason}") from error
        log.info("passphrase: from %s", file)
        return text.splitlines()[0] if text.strip("\r\n") else ""
    if PASSPHRASE_VARIABLE in os.environ:
        log.info("passphrase: from %s", PASSPHRASE_VARIABLE)
        return os.environ[PASSPHRASE_VARIABLE]
    if not sys.stdin.isatty():
        raise UsageError(
            f"the {what}'s passphrase is needed: give {option} FILE or set"
            f" {PASSPHRASE_VARIABLE} (no terminal to ask on)"
        )
    import getpass

    passphrase = getpass.getpass(f"Passphrase for the {what}: ")
    if confirm and getpass.getpass("The same passphrase again: ") != passphrase:
        raise UsageError("the two passphrases differ: run it again")
    return passphrase


@contextlib.contextmanager
def passphrase_fd(passphrase: str) -> Iterator[int]:
    """An unlinked 0600 file holding ``passphrase``, open for ``/dev/fd/N``."""
    with unlinked_file("idpwrap-pass-", passphrase.encode()) as fd:
        yield fd


def generate(prefix: str, passphrase: str) -> tuple[str, str, str]:
    """PREFIX.key and PREFIX.pub; (private, public, the tool that made them)."""
    private, public = f"{prefix}.key", f"{prefix}.pub"
    for path in (private, public):
        if os.path.lexists(path):
            raise UsageError(f"{path} already exists: remove it or choose another --output-prefix")
    target = os.path.dirname(os.path.abspath(private))
    if not os.path.isdir(target) or not os.access(target, os.W_OK):
        raise UsageError(f"cannot write into {target}: choose another --output-prefix")
    import tempfile

    work = tempfile.mkdtemp(prefix=".idpwrap-keygen-", dir=target)
    try:
        if skopeo_can_generate():
            tool = "skopeo"
            with passphrase_fd(passphrase) as fd:
                finished = run_collecting(
                    skopeo.generate_key_argv(os.path.join(work, "key"), fd), pass_fds=(fd,)
                )
            made = (os.path.join(work, "key.private"), os.path.join(work, "key.pub"))
        elif find_tool("cosign"):
            tool = "cosign"
            finished = run_collecting(
                cosign.generate_key_pair_argv("key"),
                cwd=work, extra_env={"COSIGN_PASSWORD": passphrase},
            )  # fmt: skip
            made = (os.path.join(work, "key.key"), os.path.join(work, "key.pub"))
        else:
            raise ToolMissing(
                f"no tool here makes sigstore keys (skopeo 1.10+ or cosign): {INSTALL_HINT}"
            )
        if finished[0] != 0 or not all(os.path.isfile(path) for path in made):
            raise SigningError(f"{tool} could not make the key pair: {finished[1]}")
        os.chmod(made[0], 0o600)
        # link(2) never replaces a file that appeared meanwhile.
        os.link(made[0], private)
        try:
            os.link(made[1], public)
        except OSError:
            os.unlink(private)
            raise
    except FileExistsError as error:
        raise UsageError(f"{error.filename} already exists: remove it first") from error
    finally:
        remove_tree(work)
    return private, public, tool


def run_collecting(
    argv: list[str],
    *,
    cwd: str | None = None,
    extra_env: dict[str, str] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> tuple[int, str]:
    """Exit code and the last line a tool printed (its reason on failure); a tool that cannot
    run or hangs is exit code 1 with the reason."""
    try:
        done = procs.run(
            argv, timeout=KEY_TOOL_TIMEOUT, env=procs.child_environment(extra_env), cwd=cwd,
            pass_fds=pass_fds,
        )  # fmt: skip
    except ToolNotRun as error:
        return 1, str(error)
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return done.exit_code, lines[-1] if lines else f"exit code {done.exit_code}"
