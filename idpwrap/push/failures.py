"""What a failed ``skopeo copy`` means to the user who pushed: the error to act on.

``idpwrap.tools.skopeo`` reads skopeo's ``level=fatal`` line into a neutral ``Failure`` (an
HTTP status, the kind of refusal, a network failure); here it is interpreted with what we know
of the registries a push meets: Gitea (its 404 for an unknown owner, its missing OAuth2 token
endpoint, its per-owner and per-scope refusals) and an ingress-nginx in front of it (its HTML
413 page for a body over its limit).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from idpwrap.errors import (
    AuthFailed,
    BodyTooLarge,
    IdpwrapError,
    OwnerNotFound,
    PushFailed,
    RegistryUnreachable,
    StoreError,
    TlsNotTrusted,
)
from idpwrap.refs import Registry
from idpwrap.tools.skopeo import Failure, innermost, parse_failure

ANONYMOUS_TRIED = (
    "--username with --password-stdin, GITEA_USERNAME with GITEA_TOKEN or GITEA_PASSWORD,"
    " REGISTRY_USERNAME with REGISTRY_PASSWORD"
)
GIVE_CREDENTIALS = (
    "give them with GITEA_USERNAME and GITEA_TOKEN, DOCKER_AUTH_CONFIG, an auth file"
    " (--authfile, DOCKER_CONFIG), or idpwrap login"
)
# Gitea's ctx.NotFound for an owner that does not exist, as skopeo 1.9.3 quotes the body:
# "Not found.\n"; 1.18.0 quotes it again: "\"Not found.\\n\"".
GITEA_NOT_FOUND = re.compile(r'(?:\\?")?Not found\.')
OWNER_IN_PATH = re.compile(r"/v2/([^/\s]+)/")


def classify_failure(
    stderr: str,
    exit_code: int,
    registry: Registry,
    credentials_source: str,
    *,
    username: str = "",
    repository: str = "",
    tried: Sequence[str] = (),
    pending_size: int = 0,
    image: str = "",
    store_root: str = "",
) -> IdpwrapError:
    """Turn skopeo's failure into the error a user can act on.

    ``credentials_source`` is empty for an anonymous push, whose message then lists ``tried``
    (the sources looked at). ``username`` and ``repository`` make a refused push say who may
    not push where; ``pending_size`` is the largest blob not yet uploaded (a body the proxy
    refused).
    """
    from idpwrap import diskfull

    places = [diskfull.store_place(store_root)] if store_root else []
    full = diskfull.from_output(stderr, [*places, diskfull.temp_place()], "nothing was pushed")
    if full is not None:
        return full
    failure = parse_failure(stderr, exit_code)
    message, host = failure.message, registry.host
    body = failure.body.lower()
    # ingress-nginx's HTML 413 page: "uploading layer chunked: StatusCode: 413, <html>..."
    if failure.status == 413 and ("<html" in body or "entity too large" in body):
        return BodyTooLarge.from_proxy(host, pending_size)
    if failure.token_status == 404:
        # containers/image trades an auth file's identitytoken by POST /v2/token, which Gitea
        # answers 404 (routers/api/packages/api.go: AuthenticateNotImplemented).
        return AuthFailed(
            f"{host} has no OAuth2 token endpoint (POST /v2/token answered 404, as Gitea's"
            f" does): the identity token from {credentials_source or 'the auth file'} cannot be"
            f" used there; give a username with a password or access token (idpwrap login"
            f" {host}, or GITEA_USERNAME with GITEA_TOKEN)"
        )
    if failure.missing_blob or failure.altered_blob:
        blob, got = (failure.missing_blob, "") if failure.missing_blob else failure.altered_blob
        return StoreError.damaged_blob(image, blob, store_root or "(the store)", got)
    unknown_owner = _unknown_gitea_owner(failure)
    if unknown_owner:
        if credentials_source:
            return OwnerNotFound.on_gitea(host, unknown_owner)
        # Anonymous, the missing credentials come first: they are the likelier mistake.
        return OwnerNotFound(
            f"{_none_found(host, tried)}, and to an anonymous push {host} has no user or"
            f" organization {unknown_owner!r} (Gitea answered 404 Not found): {GIVE_CREDENTIALS};"
            f" if {unknown_owner} does not exist, create it in Gitea first, or push to an existing"
            " owner with --owner"
        )
    if failure.tls_untrusted:
        return TlsNotTrusted(
            f"the TLS certificate of {host} is not trusted ({innermost(message)}): pass"
            " --ca-file with its CA certificate, or --insecure to skip verification"
        )
    if failure.plain_http:
        return TlsNotTrusted(f"{host} speaks plain HTTP: use --registry http://{host}")
    refused, denied = failure.unauthorized, failure.denied
    if (refused or denied) and not credentials_source:
        return AuthFailed(
            f"{_none_found(host, tried)}, and {host} requires them for a push: {GIVE_CREDENTIALS}"
        )
    if failure.credentials_refused or (refused and not denied):
        return AuthFailed(
            f"{host} refused the credentials from {credentials_source}: check the username and"
            " password or token"
        )
    if denied or refused:
        return _denied(host, message, credentials_source, username, repository)
    if failure.unreachable:
        return RegistryUnreachable(
            f"cannot reach registry {registry.url} ({innermost(message)}): check that it is"
            " running and the address is right"
        )
    return PushFailed(f"skopeo copy failed (exit code {exit_code}): {message}")


def _none_found(host: str, tried: Sequence[str]) -> str:
    return f"no credentials were found for {host} (tried {', '.join(tried) or ANONYMOUS_TRIED})"


def refusal_is_unclear(stderr: str) -> bool:
    """A plain "unauthorized" after a token was issued: wrong credentials on a registry that
    checks them per request, or (Gitea) an account or token that may not write there."""
    failure = parse_failure(stderr, 1)
    return failure.unauthorized and not failure.credentials_refused and not failure.denied


def _unknown_gitea_owner(failure: Failure) -> str:
    """The owner of a request Gitea answered with its plain "Not found." 404 ("" if not that):
    Gitea's answer to an upload into an owner that does not exist."""
    if failure.status != 404 or not GITEA_NOT_FOUND.match(failure.body):
        return ""
    owner = OWNER_IN_PATH.match(failure.path)
    return owner.group(1) if owner else ""


def _denied(
    host: str, message: str, credentials_source: str, username: str, repository: str
) -> AuthFailed:
    """The registry took the credentials but refused the push: a namespace or a scope."""
    owner = repository.split("/", 1)[0] if "/" in repository else ""
    if username and owner and owner != username.lower():
        return AuthFailed(
            f"denied: {username} may not push to {repository} on {host} (credentials from"
            f" {credentials_source}): push to your own namespace, e.g. --owner"
            f" {username.lower()}, or get write access to {owner}"
        )
    if username and repository:
        return AuthFailed(
            f"denied: {host} accepted the credentials from {credentials_source} but not a push"
            f" to {repository}: the token lacks package write access (Gitea: a token with the"
            " write:package scope)"
        )
    return AuthFailed(
        f"{host} denied the push with credentials from {credentials_source}"
        f" ({innermost(message)}): check the account may write to that repository"
    )
