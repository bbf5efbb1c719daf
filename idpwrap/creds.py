"""Where registry credentials come from, and how they reach skopeo without leaking.

Order, first match wins (DESIGN.md, Credentials): the command line (``--username`` with
``--password-stdin``), then the environment (``GITEA_USERNAME`` with ``GITEA_TOKEN`` or else
``GITEA_PASSWORD``; then ``REGISTRY_USERNAME`` with ``REGISTRY_PASSWORD``), then anonymous.
Every source is named in messages by where it came from, never by its value.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import os
from collections.abc import Iterator, Mapping

from idpwrap import log
from idpwrap.errors import CredentialsError
from idpwrap.scratch import private_directory


class Credentials:
    """A username and its password or token, and where they came from.

    The secret is left out of ``repr`` so that no debug output or traceback can show it.
    """

    __slots__ = ("secret", "source", "username")

    def __init__(self, username: str, secret: str, source: str) -> None:
        self.username = username
        self.secret = secret
        self.source = source  # e.g. "environment (GITEA_USERNAME, GITEA_TOKEN)"

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, source={self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credentials) and (
            (self.username, self.secret, self.source)
            == (other.username, other.secret, other.source)
        )

    def __hash__(self) -> int:
        return hash((self.username, self.source))


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
) -> Credentials | None:
    """The credentials to use for ``registry_host``, or None for an anonymous push."""
    environ = os.environ if environ is None else environ
    if username is not None or password is not None:
        if not username:
            raise CredentialsError("--password-stdin needs --username too")
        if password is None:
            raise CredentialsError("--username needs a password: pipe it in with --password-stdin")
        credentials = Credentials(username, password, "command line (--username, --password-stdin)")
    else:
        credentials = from_environment(environ)
    if credentials is None:
        log.info("credentials: none found, pushing to %s anonymously", registry_host)
    else:
        log.info("credentials: %s", credentials.source)
    return credentials


def auth_file_content(registry_host: str, credentials: Credentials | None) -> bytes:
    auths = {}
    if credentials is not None:
        pair = f"{credentials.username}:{credentials.secret}".encode()
        token = binascii.b2a_base64(pair, newline=False).decode()
        auths[registry_host] = {"auth": token}
    return json.dumps({"auths": auths}).encode()


@contextlib.contextmanager
def temporary_auth_file(registry_host: str, credentials: Credentials | None) -> Iterator[int]:
    """An open descriptor on a 0600 auth file that no longer has a name on disk.

    The file is created in a private 0700 directory and unlinked at once, so nothing is left
    behind even after ``kill -9``; the tool reads it as ``/dev/fd/N``. Always passed, even
    when anonymous, so that skopeo uses no credentials we did not choose.
    """
    directory = private_directory("idpwrap-auth-")
    path = os.path.join(directory, "auth.json")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.unlink(path)
    finally:
        os.rmdir(directory)
    try:
        os.write(fd, auth_file_content(registry_host, credentials))
        os.lseek(fd, 0, os.SEEK_SET)
        yield fd
    finally:
        os.close(fd)
