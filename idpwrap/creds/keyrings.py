"""The OS keyring, through the ``keyring`` package: what ``idpwrap login`` stores there.

Each registry is one service, ``idpwrap:HOST[:PORT]``, holding two entries: the secret under
the username as account, and the username under the account ``idpwrap:username`` (a colon
cannot be part of an HTTP Basic username, so it never clashes with a real one). Keeping the
username in an entry of its own works with every backend, also those that cannot find an
entry by service alone.

``keyring`` is imported inside the functions: it costs about 0.2 s of start-up, and most
pushes find their credentials before the keyring is asked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

SERVICE_PREFIX = "idpwrap:"
USERNAME_ACCOUNT = "idpwrap:username"


class KeyringUnavailable(Exception):
    """No usable backend, or the backend failed (locked, no D-Bus session, ...)."""


def service_name(registry_host: str) -> str:
    return f"{SERVICE_PREFIX}{registry_host.lower()}"


def lookup(registry_host: str) -> tuple[str, str] | None:
    """(username, secret) stored for ``registry_host``, or None."""
    service = service_name(registry_host)
    with _backend_errors():
        import keyring

        username = keyring.get_password(service, USERNAME_ACCOUNT)
        if not username:
            return None
        secret = keyring.get_password(service, username)
    if not secret:
        return None
    return username, secret


def store(registry_host: str, username: str, secret: str) -> None:
    """Replace what is stored for ``registry_host`` with ``username`` and ``secret``."""
    remove(registry_host)
    service = service_name(registry_host)
    with _backend_errors():
        import keyring

        keyring.set_password(service, username, secret)
        keyring.set_password(service, USERNAME_ACCOUNT, username)


def remove(registry_host: str) -> bool:
    """Forget ``registry_host``; False if nothing was stored."""
    service = service_name(registry_host)
    with _backend_errors():
        import keyring

        username = keyring.get_password(service, USERNAME_ACCOUNT)
        removed = False
        for account in (username, USERNAME_ACCOUNT):
            if account:
                removed = _delete(keyring, service, account) or removed
    return removed


def usable_backend() -> str:
    """The name of the backend that would store credentials; KeyringUnavailable if none would
    (keyring's ``fail`` backend raises, its ``null`` backend forgets what it is given)."""
    with _backend_errors():
        import keyring

        backend = keyring.get_keyring()
    module = type(backend).__module__
    if module in ("keyring.backends.fail", "keyring.backends.null"):
        raise KeyringUnavailable(
            f"no keyring backend is available ({module.rsplit('.', 1)[-1]} backend; install one,"
            " e.g. gnome-keyring with SecretService, or keyrings.alt)"
        )
    return str(getattr(backend, "name", None) or f"{module}.{type(backend).__name__}")


def _delete(keyring: object, service: str, account: str) -> bool:
    from keyring.errors import PasswordDeleteError

    try:
        keyring.delete_password(service, account)  # type: ignore[attr-defined]
    except PasswordDeleteError:
        return False
    return True


@contextlib.contextmanager
def _backend_errors() -> Iterator[None]:
    """Turn whatever a backend raises (each has its own exceptions) into KeyringUnavailable."""
    try:
        yield
    except Exception as error:
        kind = type(error).__name__
        if kind == "NoKeyringError":
            raise KeyringUnavailable(
                "no keyring backend is available (install one, e.g. gnome-keyring with"
                " SecretService, or keyrings.alt)"
            ) from None
        if isinstance(error, ImportError):
            raise KeyringUnavailable(f"the keyring package cannot be loaded: {error}") from None
        raise KeyringUnavailable(f"{kind}: {_first_line(error)}") from None


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no details"
