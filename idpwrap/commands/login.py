"""``idpwrap login``: check credentials with the registry, then keep them in the OS keyring
(``idpwrap.creds.login``); this module reads the username and the secret and says the result.
"""

from __future__ import annotations

import os
import sys

from idpwrap import log
from idpwrap.commands.shared import (
    add_tls_arguments,
    notice,
    password_argument_refused,
    refuse_password_argument,
)
from idpwrap.creds.login import check_keyring_usable, default_registry, login
from idpwrap.errors import UsageError
from idpwrap.refs import DEFAULT_REGISTRY
from idpwrap.tls import TlsTrust

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def read_username(args: argparse.Namespace, interactive: bool) -> str:
    if args.username:
        return str(args.username)
    if not interactive or args.password_stdin:
        raise UsageError("give the username with -u USER")
    sys.stderr.write("Username: ")
    sys.stderr.flush()
    username = sys.stdin.readline().strip()
    if not username:
        raise UsageError("no username given")
    return username


def read_secret(args: argparse.Namespace, interactive: bool, username: str, host: str) -> str:
    if args.password_stdin:
        if sys.stdin.isatty():
            raise UsageError('--password-stdin reads a pipe: echo "$TOKEN" | idpwrap login ...')
        secret = sys.stdin.read().rstrip("\r\n")
    elif interactive:
        import getpass

        secret = getpass.getpass(f"Password or token for {username}@{host}: ")
    else:
        raise UsageError(
            'no terminal to ask for the password: pipe it in, echo "$TOKEN" | idpwrap login -u'
            f" {username} --password-stdin {host}"
        )
    if not secret:
        raise UsageError("the password or token is empty")
    return secret


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "registry", metavar="REGISTRY", nargs="?",
        help="https://host:port, host:port or http://host:port (default: $IDPWRAP_REGISTRY,"
        f" else {DEFAULT_REGISTRY})",
    )  # fmt: skip
    parser.add_argument("-u", "--username", help="registry username (asked on a terminal)")
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password or token from stdin"
    )
    refuse_password_argument(parser)
    parser.add_argument(
        "--non-interactive", action="store_true", help="fail instead of prompting for anything"
    )
    add_tls_arguments(parser)


def execute(args: argparse.Namespace) -> int:
    if args.password_argument is not None:
        raise UsageError(password_argument_refused("login"))
    registry = default_registry(args.registry)
    backend = check_keyring_usable()
    log.info("login: keyring backend %s", backend)
    interactive = sys.stdin.isatty() and not args.non_interactive
    username = read_username(args, interactive)
    secret = read_secret(args, interactive, username, registry.host)
    # login reads no config file: the flags alone say how the registry is trusted.
    trust = TlsTrust.of(args.insecure or args.tls_verify is False, args.ca_file, args.cert_dir)
    if trust.ca_file is not None and not os.path.isfile(trust.ca_file):
        raise UsageError(f"--ca-file {trust.ca_file} does not exist")
    if trust.cert_dir is not None and not os.path.isdir(trust.cert_dir):
        raise UsageError(f"--cert-dir {trust.cert_dir} is not a directory")
    if trust.insecure and not registry.plain_http:
        notice(f"TLS verification is off for {registry.host} (--insecure)")
    service = login(registry, username, secret, trust, notice)
    print(f"Login Succeeded: {username} at {registry.host} (kept in the keyring as {service})")
    return 0
