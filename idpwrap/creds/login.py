"""``login`` and ``logout``: credentials checked with the registry, then kept in the OS keyring,
and removed from it again.

The keyring entry is the service ``idpwrap:HOST[:PORT]`` (``keyrings``); a push finds it when
neither the command line nor the environment gives credentials (``sources``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from idpwrap import log
from idpwrap.creds.sources import NO_KEYRING_VARIABLE
from idpwrap.errors import KeyringNotUsable, UsageError
from idpwrap.refs import DEFAULT_REGISTRY, Registry, parse_registry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.tls import TlsTrust


def default_registry(text: str | None) -> Registry:
    """The registry named, else ``$IDPWRAP_REGISTRY``, else idpbuilder's Gitea."""
    return parse_registry(text or os.environ.get("IDPWRAP_REGISTRY") or DEFAULT_REGISTRY)


def check_keyring_usable() -> str:
    """The keyring backend login would write to; refused before anything is asked or sent."""
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
    notice: Callable[[str], None],
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


def logout(registry_host: str) -> bool:
    """True if credentials were stored for ``registry_host`` and are now removed."""
    from idpwrap.creds import keyrings

    try:
        return keyrings.remove(registry_host)
    except keyrings.KeyringUnavailable as error:
        raise KeyringNotUsable(
            f"cannot remove the credentials for {registry_host}: {error}"
        ) from None
