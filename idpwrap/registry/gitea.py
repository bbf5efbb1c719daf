"""Gitea's container registry as idpwrap meets it: recognise it, name the account behind a
set of credentials, and explain the refusals skopeo reports only as "authentication required".

Gitea 1.24.3 (routers/api/packages/container/container.go) challenges with
``Bearer realm=".../v2/token",service="container_registry",scope="*"`` and issues an HS256 JWT
whose claims are the user's id and the access token's scope (services/packages/auth.go). It
decides a push per owner at request time (routers/api/packages/api.go, reqPackageAccess), so a
token is issued to anyone whose credentials are right, and the refusal comes later as a 401.
These explanations are looked for only after a push failed, so a push that works pays nothing.
"""

from __future__ import annotations

import base64
import json
from typing import NamedTuple

from idpwrap import log
from idpwrap.errors import AuthFailed, IdpwrapError
from idpwrap.refs import Destination, Registry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from idpwrap.creds.credentials import Credentials
    from idpwrap.tls import TlsTrust

SERVICE = "container_registry"
WRITE_SCOPES = ("write:package", "all")


class Account(NamedTuple):
    """Who Gitea says the credentials belong to."""

    user_id: int | None
    scope: str  # the access token's scope; "all" for a password
    login: str  # the user name from /api/v1/user, when the credentials may read it

    def describe(self, username: str) -> str:
        if self.login:
            return f"Gitea user {self.login}"
        if self.user_id is not None:
            return f"Gitea user id {self.user_id} (given as {username})"
        return f"Gitea user {username}"


def is_gitea(challenge: object) -> bool:
    params = getattr(challenge, "params", {})
    return getattr(challenge, "scheme", "") == "bearer" and params.get("service") == SERVICE


def token_claims(token: str) -> dict:
    """The JWT's claims, read without checking the signature: the registry checks it; we only
    want to say whose token it is and what it may do."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def account(registry: Registry, username: str, secret: str, trust: TlsTrust) -> Account | None:
    """The account behind the credentials if the registry is Gitea, else None.

    AuthFailed when Gitea refuses the credentials themselves."""
    from idpwrap.registry import api as registry_api

    verified = registry_api.check_credentials(registry, username, secret, trust)
    if not is_gitea(verified.challenge):
        return None
    claims = token_claims(verified.token)
    user_id = claims.get("UserID")
    login = ""
    # The API names the user to a password, or to a token with the read:user scope.
    answer = verified.client.get(
        f"{registry.url}/api/v1/user", registry_api.basic_authorization(username, secret)
    )
    if answer.status == 200:
        try:
            login = str(json.loads(answer.body).get("login") or "")
        except (ValueError, AttributeError):
            login = ""
    scope = str(claims.get("Scope", ""))
    return Account(user_id if isinstance(user_id, int) else None, scope, login)


def explain_refused_push(
    credentials: Credentials, destination: Destination, trust: TlsTrust
) -> AuthFailed | None:
    """Why Gitea refused a push with credentials it accepts; None when that is not the case
    (not Gitea, or the credentials themselves are wrong: the first message stands)."""
    registry, username = destination.registry, credentials.username
    try:
        found = account(registry, username, credentials.secret, trust)
    except IdpwrapError as error:
        log.debug("no closer look at the refusal: %s", error)
        return None
    if found is None:
        return None
    host, source = registry.host, credentials.source
    who = found.describe(username)
    if found.scope and found.scope not in WRITE_SCOPES:
        return AuthFailed(
            f"{host} accepted the token from {source} ({who}) but its scope is {found.scope}:"
            " a push needs the write:package scope; create a token with package read and write"
            " access in Gitea (Settings > Applications) and use that"
        )
    owner = destination.repository.split("/", 1)[0]
    own = (found.login or username).lower()
    return AuthFailed(
        f"{host} accepted the credentials from {source} ({who}), but that account may not"
        f" write to {owner}: push to your own namespace (--owner {own}), get write access to"
        f" {owner} (a team with package write access, if {owner} is an organization), or use a"
        " site administrator's credentials"
    )


def announce_lowercased_tag(
    destination: Destination, trust: TlsTrust, notice: Callable[[str], None]
) -> bool:
    """A tag with capitals going to Gitea: say how Gitea will keep it. True if it is Gitea."""
    if not lowercases_tags(destination.registry, trust):
        return False
    lowered = destination.tag.lower()
    notice(
        f"Gitea stores tags lowercased: {destination.tag!r} is kept as {lowered!r}"
        f" ({destination.repository}:{lowered}); the registry is asked about {lowered!r}"
    )
    return True


def lowercases_tags(registry: Registry, trust: TlsTrust) -> bool:
    """Is this Gitea, which stores and looks up tags lowercased (manifest.go)? One GET /v2/."""
    from idpwrap.registry import api as registry_api

    client = registry_api.client_for(registry, trust)
    try:
        ping = client.get(f"{registry.url}/v2/")
    except IdpwrapError as error:
        log.debug("no Gitea probe: %s", error)
        return False
    challenges = registry_api.parse_challenges(ping.headers.get("WWW-Authenticate", ""))
    return ping.status == 401 and any(is_gitea(challenge) for challenge in challenges)
