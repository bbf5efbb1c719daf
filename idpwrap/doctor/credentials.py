"""doctor's credential check: the credentials a push would use, tried for real.

The same ``/v2/`` challenge and token exchange as ``idpwrap login`` (registry_api), so that a
wrong token is an error in doctor and not at push time; for Gitea also whose account the
credentials are and whether a token may push (its scope).
"""

from __future__ import annotations

from idpwrap.errors import AuthFailed, IdpwrapError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.creds.credentials import Credentials
    from idpwrap.doctor.result import Check
    from idpwrap.refs import Registry
    from idpwrap.tls import TlsTrust


def check(registry: Registry, found: Credentials, trust: TlsTrust) -> Check:
    from idpwrap.doctor.result import ERROR, OK, Check
    from idpwrap.registry import api as registry_api
    from idpwrap.registry import gitea

    named = f"{found.source} (user {found.username})"
    if found.identity_token:
        return Check(
            "credentials", OK, f"{named} for {registry.host}: an identity token, not tried here"
        )
    try:
        account = gitea.account(registry, found.username, found.secret, trust)
        if account is None:
            how = registry_api.verify_credentials(registry, found.username, found.secret, trust)
            if how == "none":
                return Check("credentials", OK, f"{named}: {registry.host} asks for none")
            return Check("credentials", OK, f"{named} accepted by {registry.host} ({how})")
    except AuthFailed as error:
        return Check(
            "credentials", ERROR, f"{named}: {error}",
            "fix the secret where it comes from (GITEA_TOKEN, idpwrap login, the auth file)",
        )  # fmt: skip
    except IdpwrapError as error:
        return Check("credentials", ERROR, f"{named} could not be checked: {error}")
    who = account.describe(found.username)
    if account.scope and account.scope not in gitea.WRITE_SCOPES:
        return Check(
            "credentials", ERROR,
            f"{named}: Gitea at {registry.host} accepts them as {who}, but the token's scope is"
            f" {account.scope}: pushes will be refused",
            "a token with the write:package scope (Gitea: Settings > Applications)",
        )  # fmt: skip
    scope = f", token scope {account.scope}" if account.scope not in ("", "all") else ""
    return Check(
        "credentials", OK, f"{named}: Gitea at {registry.host} accepts them as {who}{scope}"
    )
