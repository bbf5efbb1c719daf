"""The skopeo command line: ``copy`` from the store to a registry, under a pseudo-terminal."""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Callable, Sequence

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
from idpwrap.tools import procs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

# Wide enough that no bar is cut ("skipped: alre…" at 40 columns, "…" on a 0x0 pty).
TERMINAL_SIZE = (50, 200)
ANONYMOUS_TRIED = (
    "--username with --password-stdin, GITEA_USERNAME with GITEA_TOKEN or GITEA_PASSWORD,"
    " REGISTRY_USERNAME with REGISTRY_PASSWORD"
)
# Gitea's ctx.NotFound for an owner that does not exist, as skopeo 1.9.3 quotes it: "initiating
# layer upload to /v2/nosuch/hello/blobs/uploads/ in HOST: StatusCode: 404, Not found.\n"; 1.18.0
# quotes the body: "... StatusCode: 404, \"Not found.\\n\""
# A store blob gone or altered under the push layout, in skopeo 1.9.3's words: "reading blob
# sha256:X: open /tmp/idpwrap-push-.../layout/blobs/sha256/X: no such file or directory" and
# "... happened during read: Digest did not match, expected sha256:X, got sha256:Y".
MISSING_BLOB = re.compile(r"reading blob (sha256:[0-9a-f]{64}): open \S+: no such file")
ALTERED_BLOB = re.compile(r"Digest did not match, expected (sha256:[0-9a-f]{64}), got (\S+)")
UNKNOWN_OWNER = re.compile(r'/v2/([^/\s]+)/\S* in \S+: StatusCode: 404, (?:\\?")?Not found\.')
FATAL_MESSAGE = re.compile(r'level=fatal msg="((?:[^"\\]|\\.)*)"')
# In skopeo's words: the token endpoint refused the credentials ...
REFUSED_MARKERS = ("invalid username/password", "unable to retrieve auth token")
# ... the registry wants (other) credentials ...
AUTH_MARKERS = ("unauthorized", "authentication required", "status 401")
# ... or it knows who we are and refuses the push.
DENIED_MARKERS = ("denied", "status 403", "insufficient_scope")


class CopyOptions(
    namedtuple(
        "CopyOptions",
        "registry authfile_fd digestfile tls_verify cert_dir retry_times extra_fds all_images",
        defaults=(True, None, 3, (), False),
    )
):
    """How one ``skopeo copy`` reaches the registry."""

    __slots__ = ()
    registry: Registry
    authfile_fd: int
    digestfile: str | Path
    tls_verify: bool
    cert_dir: str | Path | None
    retry_times: int
    extra_fds: tuple[int, ...]  # more descriptors the child reads as /dev/fd/N (a passphrase)
    all_images: bool  # the source is an image index: copy every child, then the index


def copy_argv(source: str, destination: str, options: CopyOptions) -> list[str]:
    argv = [
        "skopeo",
        "copy",
        "--authfile",
        f"/dev/fd/{options.authfile_fd}",
        "--digestfile",
        str(options.digestfile),
        "--retry-times",
        str(options.retry_times),
        "--preserve-digests",
    ]
    if options.registry.plain_http or not options.tls_verify:
        argv.append("--dest-tls-verify=false")
    if options.cert_dir is not None:
        argv += ["--dest-cert-dir", str(options.cert_dir)]
    if options.all_images:
        argv.append("--multi-arch=all")  # skopeo 1.9.3 and 1.18 alike (--all is older)
    return [*argv, source, destination]


def copy(
    argv: list[str],
    options: CopyOptions,
    on_output: Callable[[str], None],
    on_started: Callable[[], None] | None = None,
) -> procs.Finished:
    return procs.run_streaming(
        argv,
        on_output,
        env=procs.child_environment({"TERM": "xterm"}),
        terminal_size=TERMINAL_SIZE,
        pass_fds=(options.authfile_fd, *options.extra_fds),
        on_started=on_started,
    )


def fatal_message(stderr: str) -> str:
    """skopeo's own one-line reason, from its ``level=fatal msg="..."`` line."""
    matches = FATAL_MESSAGE.findall(stderr)
    if matches:
        return matches[-1].replace('\\"', '"')
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


def refusal_is_unclear(stderr: str) -> bool:
    """A plain "unauthorized" after a token was issued: wrong credentials on a registry that
    checks them per request, or (Gitea) an account or token that may not write there."""
    lowered = fatal_message(stderr).lower()
    return (
        any(marker in lowered for marker in AUTH_MARKERS)
        and not any(marker in lowered for marker in REFUSED_MARKERS)
        and not any(marker in lowered for marker in DENIED_MARKERS)
    )


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
    message = fatal_message(stderr)
    lowered = message.lower()
    host = registry.host
    # ingress-nginx's HTML 413 page: "uploading layer chunked: StatusCode: 413, <html>..."
    if "statuscode: 413" in lowered and ("<html" in lowered or "entity too large" in lowered):
        return BodyTooLarge.from_proxy(host, pending_size)
    if "obtain access token: invalid status code from registry 404" in lowered:
        # containers/image trades an auth file's identitytoken by POST /v2/token, which Gitea
        # answers 404 (routers/api/packages/api.go: AuthenticateNotImplemented).
        return AuthFailed(
            f"{host} has no OAuth2 token endpoint (POST /v2/token answered 404, as Gitea's"
            f" does): the identity token from {credentials_source or 'the auth file'} cannot be"
            f" used there; give a username with a password or access token (idpwrap login"
            f" {host}, or GITEA_USERNAME with GITEA_TOKEN)"
        )
    missing, altered = MISSING_BLOB.search(message), ALTERED_BLOB.search(message)
    if missing or altered:
        blob, got = (missing.group(1), "") if missing else (altered.group(1), altered.group(2))
        return StoreError.damaged_blob(image, blob, store_root or "(the store)", got)
    unknown_owner = UNKNOWN_OWNER.search(message)
    if unknown_owner:
        return OwnerNotFound.on_gitea(host, unknown_owner.group(1))
    if "x509:" in lowered or ("certificate" in lowered and "verify" in lowered):
        return TlsNotTrusted(
            f"the TLS certificate of {host} is not trusted ({_tail(message)}): pass --ca-file"
            " with its CA certificate, or --insecure to skip verification"
        )
    if "server gave http response to https client" in lowered:
        return TlsNotTrusted(f"{host} speaks plain HTTP: use --registry http://{host}")
    refused = any(marker in lowered for marker in AUTH_MARKERS)
    denied = any(marker in lowered for marker in DENIED_MARKERS)
    if (refused or denied) and not credentials_source:
        return AuthFailed(
            f"{host} requires credentials and none were found: tried"
            f" {', '.join(tried) if tried else ANONYMOUS_TRIED}"
        )
    if any(marker in lowered for marker in REFUSED_MARKERS) or (refused and not denied):
        return AuthFailed(
            f"{host} refused the credentials from {credentials_source}: check the username and"
            " password or token"
        )
    if denied or refused:
        return _denied(host, message, credentials_source, username, repository)
    if any(
        marker in lowered
        for marker in (
            "connection refused",
            "no such host",
            "i/o timeout",
            "network is unreachable",
            "connection reset",
            "no route to host",
            "server misbehaving",
            # a connection cut under an upload (a registry restart, a proxy dropping it)
            "broken pipe",
            "use of closed network connection",
            "tls handshake timeout",
        )
    ) or re.search(r"\beof\b", lowered):
        return RegistryUnreachable(
            f"cannot reach registry {registry.url} ({_tail(message)}): check that it is running"
            " and the address is right"
        )
    return PushFailed(f"skopeo copy failed (exit code {exit_code}): {message}")


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
        f" ({_tail(message)}): check the account may write to that repository"
    )


def _tail(message: str) -> str:
    """The innermost reason of Go's wrapped errors ("a: b: c" -> "c")."""
    parts = [part.strip() for part in message.split(": ") if part.strip()]
    return ": ".join(parts[-2:]) if len(parts) > 1 else message
