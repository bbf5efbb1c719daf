"""The skopeo command line: ``copy`` from the store to a registry under a pseudo-terminal, the
conversions and probes around it, and what its failures say, in neutral terms (``Failure``).

What a failure means to the user, Gitea's and ingress-nginx's ways included, is
``idpwrap.push.failures``'s to say.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Callable

from idpwrap import log
from idpwrap.refs import Registry
from idpwrap.tools import procs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from idpwrap.tls import TlsTrust

# Wide enough that no bar is cut ("skipped: alre…" at 40 columns, "…" on a 0x0 pty).
TERMINAL_SIZE = (50, 200)
# A store blob gone or altered under the push layout, in skopeo 1.9.3's words: "reading blob
# sha256:X: open /tmp/idpwrap-push-.../layout/blobs/sha256/X: no such file or directory" and
# "... happened during read: Digest did not match, expected sha256:X, got sha256:Y".
MISSING_BLOB = re.compile(r"reading blob (sha256:[0-9a-f]{64}): open \S+: no such file")
ALTERED_BLOB = re.compile(r"Digest did not match, expected (sha256:[0-9a-f]{64}), got (\S+)")
# A registry's answer as containers/image quotes it: "initiating layer upload to
# /v2/nosuch/hello/blobs/uploads/ in HOST: StatusCode: 404, Not found.\n" (skopeo 1.9.3);
# 1.18.0 quotes the body: "... StatusCode: 404, \"Not found.\\n\"".
ANSWER = re.compile(r"(?:(/v2/\S*) in \S+: )?StatusCode: (\d{3}), (.*)", re.I | re.DOTALL)
# Trading credentials for a token failed: "... obtain access token: invalid status code from
# registry 404" (skopeo 1.9.3, 1.18.0); skopeo 1.22.0 (Debian sid): "... Trying to obtain access
# token: received unexpected HTTP status: 404 Not Found".
TOKEN_ANSWER = re.compile(
    r"obtain access token: (?:invalid status code from registry|received unexpected HTTP"
    r" status:) (\d{3})",
    re.I,
)
FATAL_MESSAGE = re.compile(r'level=fatal msg="((?:[^"\\]|\\.)*)"')
# In skopeo's words: the token endpoint refused the credentials ...
REFUSED_MARKERS = ("invalid username/password", "unable to retrieve auth token")
# ... the registry wants (other) credentials ...
AUTH_MARKERS = ("unauthorized", "authentication required", "status 401")
# ... or it knows who we are and refuses the request.
DENIED_MARKERS = ("denied", "status 403", "insufficient_scope")
# The registry could not be reached, or the connection was cut under an upload (a registry
# restart, a proxy dropping it).
UNREACHABLE_MARKERS = (
    "connection refused", "no such host", "i/o timeout", "network is unreachable",
    "connection reset", "no route to host", "server misbehaving",
    "broken pipe", "use of closed network connection", "tls handshake timeout",
)  # fmt: skip


class CopyOptions(
    namedtuple(
        "CopyOptions",
        "registry authfile_fd digestfile tls retry_times extra_fds all_images",
        defaults=(None, 3, (), False),
    )
):
    """How one ``skopeo copy`` reaches the registry."""

    __slots__ = ()
    registry: Registry
    authfile_fd: int
    digestfile: str | Path
    tls: TlsTrust | None  # its CAs in a directory (TlsTrust.cert_dir_in); None: the system's
    retry_times: int
    extra_fds: tuple[int, ...]  # more descriptors the child reads as /dev/fd/N (a passphrase)
    all_images: bool  # the source is an image index: copy every child, then the index


def destination_tls_flags(registry: Registry, trust: TlsTrust | None) -> list[str]:
    """``--dest-tls-verify`` and ``--dest-cert-dir`` for ``registry``. skopeo reads CAs only
    from a directory: a CA file must have been put in one (``TlsTrust.cert_dir_in``)."""
    if trust is not None and trust.ca_file:
        raise ValueError("skopeo takes a directory of CAs: use TlsTrust.cert_dir_in first")
    flags = []
    if registry.plain_http or (trust is not None and trust.insecure):
        flags.append("--dest-tls-verify=false")
    if trust is not None and trust.cert_dir:
        flags += ["--dest-cert-dir", trust.cert_dir]
    return flags


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
        *destination_tls_flags(options.registry, options.tls),
    ]
    if options.all_images:
        argv.append("--multi-arch=all")  # skopeo 1.9.3 and 1.18 alike (--all is older)
    return [*argv, source, destination]


def source_tls_flags(
    registry: Registry, trust: TlsTrust | None, prefix: str = "--src-"
) -> list[str]:
    """``--src-tls-verify`` and ``--src-cert-dir`` (``prefix="--"``: inspect's own words), as
    ``destination_tls_flags`` for a registry we read from."""
    return [flag.replace("--dest-", prefix, 1) for flag in destination_tls_flags(registry, trust)]


def inspect_raw_argv(reference: str, authfile_fd: int, registry: Registry, trust: TlsTrust | None,
                     retry_times: int) -> list[str]:  # fmt: skip
    """The manifest (or index) a registry holds for ``reference`` (``HOST/PATH:TAG``), as is."""
    return [
        "skopeo", "inspect", "--raw", "--authfile", f"/dev/fd/{authfile_fd}",
        "--retry-times", str(retry_times), *source_tls_flags(registry, trust, "--"),
        f"docker://{reference}",
    ]  # fmt: skip


def pull_argv(reference: str, layout: str, options: CopyOptions) -> list[str]:
    """``reference`` (``HOST/PATH@sha256:...``) copied unchanged into the OCI ``layout``."""
    argv = [
        "skopeo", "copy", "--quiet", "--authfile", f"/dev/fd/{options.authfile_fd}",
        "--retry-times", str(options.retry_times), "--preserve-digests",
        *source_tls_flags(options.registry, options.tls),
    ]  # fmt: skip
    if options.all_images:
        argv.append("--multi-arch=all")
    return [*argv, f"docker://{reference}", layout]


def run_quietly(argv: list[str], authfile_fd: int) -> tuple[procs.Finished, str]:
    """A copy or inspect nobody watches (the build cache's): how it ended, and its stdout."""
    output: list[str] = []
    log.debug("running %s", " ".join(argv))
    finished = procs.run_streaming(
        argv, output.append, env=procs.child_environment(), pass_fds=(authfile_fd,)
    )
    return finished, "".join(output)


def with_signing(argv: list[str], registries_d: str, key: str, passphrase_fd: int) -> list[str]:
    """A ``copy_argv`` that also signs with a sigstore private key; ``registries_d`` holds the
    ``use-sigstore-attachments`` setting for the destination."""
    # skopeo GLOBAL copy OPTIONS... SOURCE DEST
    return [
        argv[0], "--registries.d", registries_d, *argv[1:-2],
        "--sign-by-sigstore-private-key", key, "--sign-passphrase-file", f"/dev/fd/{passphrase_fd}",
        *argv[-2:],
    ]  # fmt: skip


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


def convert(source: str, destination: str) -> procs.Finished:
    """A local ``skopeo copy`` between two transports (``docker-archive:`` to ``oci:``): a file
    the user handed us, so there is no signature policy to check."""
    argv = ["skopeo", "copy", "--quiet", "--insecure-policy", source, destination]
    log.debug("running %s", " ".join(argv))
    return procs.run_streaming(argv, lambda text: None, env=procs.child_environment())


def sign_probe_argv(key: str, passphrase_fd: int, layout: str, output: str) -> list[str]:
    """Sign a one-image OCI ``layout`` (its image named ``probe``) into ``dir:OUTPUT``: does
    this skopeo sign with this key? ``dir:`` names no registry, so the identity is given."""
    return [
        "skopeo", "copy", "--quiet", "--sign-by-sigstore-private-key", key,
        "--sign-passphrase-file", f"/dev/fd/{passphrase_fd}",
        "--sign-identity", "localhost/idpwrap/probe:latest", f"oci:{layout}:probe",
        f"dir:{output}",
    ]  # fmt: skip


def generate_key_help_argv() -> list[str]:
    """skopeo 1.9 answers this with its general help (exit 0): look for ``--output-prefix``."""
    return ["skopeo", "generate-sigstore-key", "--help"]


def generate_key_argv(prefix: str, passphrase_fd: int) -> list[str]:
    """PREFIX.private and PREFIX.pub, the passphrase read from ``/dev/fd/N``."""
    return [
        "skopeo", "generate-sigstore-key", "--output-prefix", prefix,
        "--passphrase-file", f"/dev/fd/{passphrase_fd}",
    ]  # fmt: skip


class Failure(
    namedtuple(
        "Failure",
        "exit_code message status body path token_status missing_blob altered_blob"
        " tls_untrusted plain_http unauthorized denied credentials_refused unreachable",
    )
):
    """What a failed skopeo run says, read without knowing which registry answered."""

    __slots__ = ()
    exit_code: int
    message: str  # skopeo's own one-line reason (its last level=fatal msg)
    status: int | None  # the HTTP status a registry answered (StatusCode: N), if quoted
    body: str  # what followed that status: the answer's body as skopeo quotes it
    path: str  # the /v2/... path of that request, if quoted
    token_status: int | None  # the token endpoint's status when getting a token failed
    missing_blob: str  # a source blob that is gone ("" if none)
    altered_blob: tuple[str, str] | None  # (the blob expected, the digest read instead)
    tls_untrusted: bool  # the registry's certificate did not verify
    plain_http: bool  # an HTTPS request was answered in plain HTTP
    unauthorized: bool  # the registry wants (other) credentials
    denied: bool  # the registry knows who we are and refuses the request
    credentials_refused: bool  # the token endpoint refused the credentials
    unreachable: bool  # no connection, or one cut under a transfer


def parse_failure(stderr: str, exit_code: int) -> Failure:
    message = fatal_message(stderr)
    lowered = message.lower()
    answer = ANSWER.search(message)
    token = TOKEN_ANSWER.search(message)
    missing, altered = MISSING_BLOB.search(message), ALTERED_BLOB.search(message)
    return Failure(
        exit_code=exit_code,
        message=message,
        status=int(answer.group(2)) if answer else None,
        body=answer.group(3) if answer else "",
        path=(answer.group(1) or "") if answer else "",
        token_status=int(token.group(1)) if token else None,
        missing_blob=missing.group(1) if missing else "",
        altered_blob=(altered.group(1), altered.group(2)) if altered else None,
        tls_untrusted="x509:" in lowered or ("certificate" in lowered and "verify" in lowered),
        plain_http="server gave http response to https client" in lowered,
        unauthorized=any(marker in lowered for marker in AUTH_MARKERS),
        denied=any(marker in lowered for marker in DENIED_MARKERS),
        credentials_refused=any(marker in lowered for marker in REFUSED_MARKERS),
        unreachable=any(marker in lowered for marker in UNREACHABLE_MARKERS)
        or re.search(r"\beof\b", lowered) is not None,
    )


def fatal_message(stderr: str) -> str:
    """skopeo's own one-line reason, from its ``level=fatal msg="..."`` line."""
    matches = FATAL_MESSAGE.findall(stderr)
    if matches:
        return matches[-1].replace('\\"', '"')
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


def innermost(message: str) -> str:
    """The innermost reasons of Go's wrapped errors ("a: b: c" -> "b: c")."""
    parts = [part.strip() for part in message.split(": ") if part.strip()]
    return ": ".join(parts[-2:]) if len(parts) > 1 else message
