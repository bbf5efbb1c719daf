"""Where registry credentials come from, and how they reach skopeo without leaking.

Order, first match wins (docs/credentials.md): the command line (``--username`` with
``--password-stdin``), then the environment (``GITEA_USERNAME`` with ``GITEA_TOKEN`` or else
``GITEA_PASSWORD``; then ``REGISTRY_USERNAME`` with ``REGISTRY_PASSWORD``), then the OS keyring
(``idpwrap login``), then ``--authfile FILE``, ``$DOCKER_AUTH_CONFIG`` (a config.json's
content, as GitLab CI and kaniko pass it) and docker's and podman's auth files
(``$DOCKER_CONFIG/config.json`` among them), with their credential helpers (``authfiles``), then
idpbuilder's own Gitea secret (``idpbuilder``), then anonymous.
Every source is named in messages by where it came from, never by its value.

The later sources live in their own modules, imported only when the command line and the
environment gave nothing: ``keyring`` alone costs a push about 0.3 s of start-up.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import os
from collections.abc import Iterator, Mapping

from idpwrap import log
from idpwrap.creds.credentials import Credentials
from idpwrap.errors import CredentialsError
from idpwrap.scratch import unlinked_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

NO_KEYRING_VARIABLE = "IDPWRAP_NO_KEYRING"


# (username variable, secret variables in order of preference)
ENVIRONMENT_PAIRS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("GITEA_USERNAME", ("GITEA_TOKEN", "GITEA_PASSWORD")),
    ("REGISTRY_USERNAME", ("REGISTRY_PASSWORD",)),
)


def from_environment(environ: Mapping[str, str]) -> Credentials | None:
    for user_variable, secret_variables in ENVIRONMENT_PAIRS:
        username = environ.get(user_variable, "")
        secret_variable = next((name for name in secret_variables if environ.get(name)), None)
        if username and secret_variable:
            return Credentials(
                username,
                environ[secret_variable],
                f"environment ({user_variable}, {secret_variable})",
            )
        if username:
            raise CredentialsError(
                f"{user_variable} is set but {' or '.join(secret_variables)} is not: set the"
                f" secret too, or unset {user_variable}"
            )
        if secret_variable:
            raise CredentialsError(
                f"{secret_variable} is set but {user_variable} is not: set {user_variable}"
                " to the account the secret belongs to"
            )
    return None


def resolve(
    registry_host: str,
    *,
    username: str | None = None,
    password: str | None = None,
    environ: Mapping[str, str] | None = None,
    authfile: str | Path | None = None,
    tried: list[str] | None = None,
) -> Credentials | None:
    """The credentials to use for ``registry_host``, or None for an anonymous push.

    ``authfile`` is ``--authfile`` (it takes the place of ``$REGISTRY_AUTH_FILE``). Each source
    looked at is appended to ``tried`` (by name, never a value), for the message that an
    anonymous push refused by the registry shows.
    """
    environ = os.environ if environ is None else environ
    tried = [] if tried is None else tried
    credentials = _from_command_line(username, password)
    tried.append("--username with --password-stdin")
    if credentials is None:
        tried.append(
            "GITEA_USERNAME with GITEA_TOKEN or GITEA_PASSWORD, REGISTRY_USERNAME with"
            " REGISTRY_PASSWORD"
        )
        credentials = from_environment(environ)
    if credentials is None:
        credentials = _from_keyring(registry_host, environ, tried)
    if credentials is None:
        from idpwrap.creds import authfiles

        credentials = authfiles.lookup(registry_host, environ, authfile, tried)
    if credentials is None:
        from idpwrap.creds import idpbuilder

        if idpbuilder.serves(registry_host):
            credentials = idpbuilder.lookup(environ, tried)
    if credentials is None:
        log.info("credentials: none found, pushing to %s anonymously", registry_host)
    else:
        log.info("credentials: %s", credentials.source)
    return credentials


def _from_command_line(username: str | None, password: str | None) -> Credentials | None:
    if username is None and password is None:
        return None
    if not username:
        raise CredentialsError("--password-stdin needs --username too")
    if password is None:
        raise CredentialsError("--username needs a password: pipe it in with --password-stdin")
    return Credentials(username, password, "command line (--username, --password-stdin)")


def _from_keyring(
    registry_host: str, environ: Mapping[str, str], tried: list[str]
) -> Credentials | None:
    """What ``idpwrap login`` stored; a keyring that cannot be used is a warning, not an error."""
    from idpwrap.creds import keyrings

    service = keyrings.service_name(registry_host)
    if environ.get(NO_KEYRING_VARIABLE, "") not in ("", "0"):
        log.info("credentials: keyring skipped (%s=1)", NO_KEYRING_VARIABLE)
        return None
    tried.append(f"the keyring ({service})")
    try:
        found = keyrings.lookup(registry_host)
    except keyrings.KeyringUnavailable as error:
        log.info(
            "credentials: warning: keyring not usable (%s); going on without it (set %s=1 to"
            " skip it)",
            error,
            NO_KEYRING_VARIABLE,
        )
        return None
    if found is None:
        return None
    return Credentials(found[0], found[1], f"keyring ({service})")


def auth_file_content(
    registry_host: str,
    credentials: Credentials | None,
    others: Mapping[str, Credentials | None] | None = None,
) -> bytes:
    """``{"auths": ...}`` for ``registry_host`` and, in the same file, ``others`` (a build's
    FROM registries beside its cache's: buildah reads one auth file)."""
    auths: dict[str, dict[str, str]] = {}
    for host, found in [(registry_host, credentials), *(others or {}).items()]:
        if found is not None and found.identity_token:
            # containers/image wants a well-formed "auth" beside the refresh token.
            pair = f"{found.username}:".encode()
            token = binascii.b2a_base64(pair, newline=False).decode()
            auths[host] = {"auth": token, "identitytoken": found.secret}
        elif found is not None:
            pair = f"{found.username}:{found.secret}".encode()
            token = binascii.b2a_base64(pair, newline=False).decode()
            auths[host] = {"auth": token}
    return json.dumps({"auths": auths}).encode()


@contextlib.contextmanager
def temporary_auth_file(
    registry_host: str,
    credentials: Credentials | None,
    others: Mapping[str, Credentials | None] | None = None,
) -> Iterator[int]:
    """An open descriptor on a 0600 auth file that no longer has a name on disk.

    The file is created in a private 0700 directory and unlinked at once, so nothing is left
    behind even after ``kill -9``; the tool reads it as ``/dev/fd/N``. Always passed, even
    when anonymous, so that skopeo uses no credentials we did not choose.
    """
    content = auth_file_content(registry_host, credentials, others)
    with unlinked_file("idpwrap-auth-", content) as fd:
        yield fd
