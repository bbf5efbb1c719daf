"""``idpwrap login``: check credentials with the registry, then keep them in the OS keyring.

The keyring entry is the service ``idpwrap:HOST[:PORT]`` (see ``idpwrap.creds.keyrings``); ``push``
finds it when neither the command line nor the environment gives credentials.
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
from idpwrap.creds.sources import NO_KEYRING_VARIABLE
from idpwrap.errors import KeyringNotUsable, UsageError
from idpwrap.refs import DEFAULT_REGISTRY, Registry, parse_registry
from idpwrap.tls import TlsTrust

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def default_registry(text: str | None) -> Registry:
    return parse_registry(text or os.environ.get("IDPWRAP_REGISTRY") or DEFAULT_REGISTRY)


def check_keyring_usable() -> str:
    from idpwrap.creds import keyrings

    if os.environ.get(NO_KEYRING_VARIABLE, "") not in ("", "0"):
        raise UsageError(
            f"{NO_KEYRING_VARIABLE}=1 is set, and login keeps credentials in the keyring: unset"
            " it, or give push its credentials in GITEA_USERNAME and GITEA_TOKEN"
        )
    try:
        return keyrings.usable_backend()
    except keyrings.KeyringUnavailable as error:
        raise KeyringNotUsable(
            f"cannot keep credentials: {error}; or give push its credentials in GITEA_USERNAME"
            " and GITEA_TOKEN, or in an auth file (--authfile)"
        ) from None


def login(
    registry: Registry,
    username: str,
    secret: str,
    trust: TlsTrust,
) -> str:
    """Verify, then store; returns the keyring service name. Nothing is stored on a refusal."""
    from idpwrap.creds import keyrings
    from idpwrap.registry import api as registry_api

    how = registry_api.verify_credentials(registry, username, secret, trust)
    if how == "none":
        notice(f"{registry.host} asks for no credentials: keeping them without a check")
    else:
        log.info("login: %s accepted the credentials for %s (%s)", registry.host, username, how)
    try:
        keyrings.store(registry.host, username, secret)
    except keyrings.KeyringUnavailable as error:
        raise KeyringNotUsable(
            f"{registry.host} accepted the credentials, but they cannot be kept: {error}"
        ) from None
    return keyrings.service_name(registry.host)


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
    service = login(registry, username, secret, trust)
    print(f"Login Succeeded: {username} at {registry.host} (kept in the keyring as {service})")
    return 0
