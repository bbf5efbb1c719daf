"""Checking that an image in a registry carries a valid sigstore signature by a public key.

cosign reads the tag attachment ``sha256-<digest>.sig`` (skopeo's and cosign's signatures
alike), checks each signature against the key and the claim against the image's digest; no
transparency log is consulted (``--insecure-ignore-tlog``), since idpwrap signs without one.
Its exit codes tell the cases apart: 10 no signature, 11 no such image, 12 no signature
that matches (another key, or a claim about another digest).
"""

from __future__ import annotations

import json

from idpwrap import log
from idpwrap.creds import sources as creds
from idpwrap.errors import (
    AuthFailed,
    IdpwrapError,
    ImageNotFound,
    NotVerified,
    RegistryUnreachable,
    TlsNotTrusted,
    ToolMissing,
    UsageError,
)
from idpwrap.sign import keys as sigstore
from idpwrap.sign.signing import docker_config
from idpwrap.tools import cosign, procs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.refs import Registry
    from idpwrap.tls import TlsTrust

NO_SIGNATURES = 10
NO_SUCH_IMAGE = 11
NO_MATCHING_SIGNATURE = 12
DIGEST_CLAIM = "invalid or missing digest in claim"
# cosign 3 (Debian sid's 3.1) exits 1, not 12, for a signature by another key, in these words.
OTHER_KEY_WORDS = ("no matching signatures", "no matching attestations", "do not match threshold")


def verify(
    reference: str,
    key: str,
    registry: Registry,
    trust: TlsTrust,
    credentials: creds.Credentials | None,
) -> tuple[str, int]:
    """The digest the signatures vouch for and how many verified; NotVerified otherwise."""
    try:
        with open(key, "rb") as handle:
            if b"PUBLIC KEY" not in handle.read(200):
                raise UsageError(f"--key {key} is not a PEM public key (cosign.pub)")
    except OSError as error:
        raise UsageError(f"--key {key}: {error.strerror}") from error
    if sigstore.find_tool("cosign") is None:
        raise ToolMissing(f"verifying needs cosign: {sigstore.INSTALL_HINT}")
    output: list[str] = []
    errors: list[str] = []
    with docker_config(registry.host, credentials) as config_dir:
        flags = cosign.registry_flags(registry, trust, config_dir)
        argv = cosign.verify_argv(key, reference, flags)
        log.debug("running %s", " ".join(argv))
        finished = procs.run_streaming(argv, output.append, env=cosign.environment(config_dir))
        errors.append(finished.stderr)
    if finished.exit_code == 0:
        return _signed_digest("".join(output), reference)
    raise _failure(finished.exit_code, errors, reference, key, registry)


def _signed_digest(stdout: str, reference: str) -> tuple[str, int]:
    try:
        claims = json.loads(stdout)
        digests = {claim["critical"]["image"]["docker-manifest-digest"] for claim in claims}
    except (ValueError, KeyError, TypeError) as error:
        raise NotVerified(f"cosign verified {reference} but its output is unreadable") from error
    if len(digests) != 1:
        raise NotVerified(f"the signatures of {reference} name {len(digests)} digests")
    return digests.pop(), len(claims)


def _failure(
    code: int, stderr: list[str], reference: str, key: str, registry: Registry
) -> IdpwrapError:
    reason = cosign.reason(stderr)
    lowered = reason.lower()
    if code == NO_SIGNATURES:
        return NotVerified(f"{reference} is not signed: no signature in its repository"
                           " (no sha256-<digest>.sig tag)")  # fmt: skip
    if code == NO_SUCH_IMAGE:
        return ImageNotFound(f"{reference} is not in the registry: {reason}")
    if code == NO_MATCHING_SIGNATURE and DIGEST_CLAIM in lowered:
        signed = reason.rsplit(":", 2)
        claim = ":".join(signed[-2:]).strip() if len(signed) >= 2 else "another digest"
        return NotVerified(f"the signature of {reference} does not match its digest: it signs"
                           f" {claim}")  # fmt: skip
    if code == NO_MATCHING_SIGNATURE or any(words in lowered for words in OTHER_KEY_WORDS):
        return NotVerified(f"{reference} is not signed by {key}: {reason}")
    if "x509" in lowered or "certificate" in lowered:
        return TlsNotTrusted(f"TLS: {registry.host} is not trusted ({reason}): pass"
                             " --ca-file PEM or --cert-dir DIR, or --insecure")  # fmt: skip
    if "unauthorized" in lowered or "denied" in lowered or "401" in lowered:
        return AuthFailed(f"{registry.host} refused to show {reference}: {reason}; give"
                          " credentials (GITEA_USERNAME/GITEA_TOKEN, idpwrap login)")  # fmt: skip
    if "connection refused" in lowered or "no such host" in lowered or "timeout" in lowered:
        return RegistryUnreachable(f"cannot reach {registry.host}: {reason}")
    return NotVerified(f"cosign could not verify {reference}: {reason} (exit code {code})")
