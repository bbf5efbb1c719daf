"""What several commands share: the store they open (and when an image came into it), notices
on stderr, and the arguments for TLS trust, auth files and refused passwords, declared once so
every command reads them alike.
"""

from __future__ import annotations

import sys

from idpwrap.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from idpwrap.store.api import Store


def open_store(args: argparse.Namespace) -> Store:
    """``--store``, else ``$IDPWRAP_STORE``, else the config file's ``store``, else
    ``$XDG_DATA_HOME/idpwrap/images``."""
    from idpwrap.config.settings import store_root
    from idpwrap.store.api import Store

    return Store(store_root(getattr(args, "store", None)))


def stored_at(store: Store, digest: str) -> float | None:
    """When an image's manifest came into ``store`` (its file's time): said beside a
    reproducible image's fixed created time, which tells nothing of when it was built."""
    import os

    from idpwrap.errors import StoreError

    try:
        return os.stat(store.blob_file(digest)).st_mtime
    except (OSError, StoreError):
        return None


def notice(message: str) -> None:
    """A line for the person at the terminal, on stderr, so stdout stays the result."""
    sys.stderr.write(f"idpwrap: {message}\n")
    sys.stderr.flush()


def refuse_password_argument(parser: argparse.ArgumentParser) -> None:
    """--password/-p are declared so that their value is consumed, never mistaken for another
    argument and echoed in an error; the command refuses them (password_argument_refused)."""
    import argparse

    parser.add_argument("-p", "--password", dest="password_argument", help=argparse.SUPPRESS)


def password_argument_refused(command: str) -> str:
    return (
        "a password is never taken as an argument, where every user could read it in the process"
        f' list: pipe it in with --password-stdin, e.g. echo "$TOKEN" | idpwrap {command} -u USER'
        " --password-stdin ..."
    )


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """How to trust a registry, the same for every command that talks to one."""
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify the registry's TLS certificate"
    )
    parser.add_argument(
        "--tls-verify", metavar="BOOL", nargs="?", const="true", type=parse_bool,
        help="--tls-verify=false is --insecure, as in podman and skopeo",
    )  # fmt: skip
    parser.add_argument("--ca-file", metavar="PEM", help="trust this CA certificate")
    parser.add_argument("--cert-dir", metavar="DIR", help="trust the *.crt CA files in DIR")


def add_credential_arguments(parser: argparse.ArgumentParser) -> None:
    """-u, --password-stdin, --authfile (and the refused -p/--password): a command's own
    credentials for a registry, before the other sources (creds/sources.py)."""
    parser.add_argument("-u", "--username", help="registry username (with --password-stdin)")
    refuse_password_argument(parser)
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password or token from stdin"
    )
    add_authfile_argument(parser)


def read_password(args: argparse.Namespace, command: str = "push") -> str | None:
    """--password-stdin's secret, read once however many registries a command talks to."""
    if args.password_argument is not None:
        raise UsageError(password_argument_refused(command))
    if not args.password_stdin:
        return None
    if not hasattr(args, "password_read"):
        if sys.stdin.isatty():
            raise UsageError(
                f'--password-stdin reads a pipe: echo "$TOKEN" | idpwrap {command} ...'
            )
        args.password_read = sys.stdin.read().rstrip("\r\n")
    return args.password_read  # type: ignore[no-any-return]


def add_authfile_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--authfile", metavar="FILE",
        help="read credentials from this auth.json first (then: $DOCKER_AUTH_CONFIG,"
        " $REGISTRY_AUTH_FILE, podman's and docker's auth files, $DOCKER_CONFIG/config.json)",
    )  # fmt: skip


def parse_bool(text: str) -> bool:
    """true/1/yes or false/0/no, for --tls-verify=BOOL."""
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    import argparse

    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")
