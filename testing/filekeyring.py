"""Keyring backends for the tests, loaded by idpwrap through ``PYTHON_KEYRING_BACKEND``.

``FileKeyring`` is a real backend of the ``keyring`` package that keeps its entries in the JSON
file named by ``IDPWRAP_TEST_KEYRING_FILE`` (0600): ``idpwrap login`` and ``push`` make real
keyring API calls against it, and the test reads the file to see what they did.
``LockedKeyring`` fails every call, as a locked or unreachable desktop keyring does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import KeyringError, PasswordDeleteError

FILE_VARIABLE = "IDPWRAP_TEST_KEYRING_FILE"
# Dotted paths for PYTHON_KEYRING_BACKEND: an idpwrap child imports them when the repository
# root is on its PYTHONPATH (testing.credentials.CredentialWorld.env puts it there).
BACKEND = "testing.filekeyring.FileKeyring"
LOCKED_BACKEND = "testing.filekeyring.LockedKeyring"


def read_entries(path: Path) -> dict[str, dict[str, str]]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def write_entries(path: Path, entries: dict[str, dict[str, str]]) -> None:
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(entries, handle)
    os.replace(temporary, path)


class FileKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    @property
    def path(self) -> Path:
        return Path(os.environ[FILE_VARIABLE])

    def get_password(self, service: str, username: str) -> str | None:
        return read_entries(self.path).get(service, {}).get(username)

    def set_password(self, service: str, username: str, password: str) -> None:
        entries = read_entries(self.path)
        entries.setdefault(service, {})[username] = password
        write_entries(self.path, entries)

    def delete_password(self, service: str, username: str) -> None:
        entries = read_entries(self.path)
        if username not in entries.get(service, {}):
            raise PasswordDeleteError(f"no entry for {username} in {service}")
        del entries[service][username]
        if not entries[service]:
            del entries[service]
        write_entries(self.path, entries)


class LockedKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringError("the collection is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringError("the collection is locked")

    def delete_password(self, service: str, username: str) -> None:
        raise KeyringError("the collection is locked")
