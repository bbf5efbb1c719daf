"""A build's provenance as a signed in-toto attestation in the registry, and its check.

On a push with a signing key, ``cosign attest --type slsaprovenance1`` signs the SLSA v1
predicate the build kept in the store (store/referrers.py) for each pushed digest (an index
and each of its children), once per digest; cosign wraps it in an in-toto statement whose
subject is that digest, signs the DSSE envelope and stores it as the tag attachment
``sha256-<digest>.att`` (Gitea has no referrers API; tags work). ``verify`` reads it back with
``cosign verify-attestation``, which checks the signature and the subject; the source, commit
and builder the user asks for are checked here. Credentials reach cosign as signing.py does it
(a private 0600 DOCKER_CONFIG), the passphrase as COSIGN_PASSWORD, never in an argv.
"""

from __future__ import annotations

import base64
import json
import os
from collections import namedtuple
from collections.abc import Callable, Sequence

from idpwrap import log
from idpwrap.creds import sources as creds
from idpwrap.errors import NotVerified, SigningError, ToolMissing
from idpwrap.scratch import private_directory, remove_tree
from idpwrap.sign import keys as sigstore
from idpwrap.sign.signing import Signer, docker_config
from idpwrap.tools import cosign, procs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from idpwrap.refs import Registry
    from idpwrap.tls import TlsTrust

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
# cosign verify-attestation's words when the image has no attestation of the type at all
NONE_FOUND = ("no matching attestations", "no attestations found", "none of the attestations")


def attachment_tag(digest: str) -> str:
    """cosign's tag for the attestations of ``digest``."""
    return digest.replace(":", "-", 1) + ".att"


def after_push(
    signer: Signer,
    repository: str,
    statements: dict[str, bytes],
    registry: Registry,
    trust: TlsTrust,
    credentials: creds.Credentials | None,
    notice: Callable[[str], None],
) -> None:
    """Attest each pushed digest that has a provenance (once per repository and digest)."""
    if not statements:
        notice(
            f"{repository}: the store has no provenance for this image (built before idpwrap"
            " recorded one, or loaded from a docker-archive): no attestation attached"
        )
        return
    wanted = [(d, s) for d, s in statements.items() if (repository, d) not in signer.attested]
    if not wanted:
        return
    if sigstore.find_tool("cosign") is None:
        raise ToolMissing(
            f"{repository} is pushed and signed, but attaching its provenance needs cosign:"
            f" {sigstore.INSTALL_HINT}"
        )
    work = private_directory("idpwrap-attest-")
    try:
        with docker_config(registry.host, credentials) as config_dir:
            flags = cosign.registry_flags(registry, trust, config_dir)
            for digest, statement in wanted:
                predicate = os.path.join(work, f"{digest.replace(':', '-')}.json")
                with open(predicate, "wb") as file:
                    file.write(json.dumps(json.loads(statement)["predicate"], sort_keys=True,
                                          separators=(",", ":")).encode())  # fmt: skip
                reference = f"{repository}@{digest}"
                argv = cosign.attest_argv(signer.key, predicate, reference, flags)
                log.debug("running %s", " ".join(argv))
                failure = cosign.run_with_key(argv, config_dir, signer.passphrase)
                if failure is not None:
                    raise SigningError(
                        f"cosign could not attach the provenance of {reference}: {failure}"
                    )
                signer.attested.add((repository, digest))
                notice(f"attested {reference}: SLSA provenance stored as {repository}:"
                       f"{attachment_tag(digest)} (cosign)")  # fmt: skip
    finally:
        remove_tree(work)


class Expected(namedtuple("Expected", "source_uri source_commit builder")):
    """What ``verify --source-uri/--source-commit/--builder`` asks the provenance to say."""

    __slots__ = ()
    source_uri: str | None
    source_commit: str | None
    builder: str | None

    def any(self) -> bool:
        return any(self)


def verify(
    reference: str,
    key: str,
    registry: Registry,
    trust: TlsTrust,
    credentials: creds.Credentials | None,
) -> list[dict[str, Any]]:
    """The in-toto statements of ``HOST/REPO@DIGEST`` whose signature by ``key`` cosign
    verified; [] when it has none. An attestation that fails the check is NotVerified."""
    output: list[str] = []
    with docker_config(registry.host, credentials) as config_dir:
        flags = cosign.registry_flags(registry, trust, config_dir)
        argv = cosign.verify_attestation_argv(key, reference, flags)
        log.debug("running %s", " ".join(argv))
        finished = procs.run_streaming(argv, output.append, env=cosign.environment(config_dir))
    if finished.exit_code != 0:
        reason = cosign.reason([finished.stderr])
        if any(words in reason.lower() for words in NONE_FOUND):
            log.info("attestations of %s: %s", reference, reason)
            return []
        raise NotVerified(f"the provenance attestation of {reference} is not signed by {key}:"
                          f" {reason}")  # fmt: skip
    statements = []
    for line in "".join(output).splitlines():
        try:
            envelope = json.loads(line)
            statement = json.loads(base64.b64decode(envelope["payload"]))
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(statement, dict) and statement.get("predicateType") == PREDICATE_TYPE:
            statements.append(statement)
    return statements


def source_of(predicate: dict[str, Any]) -> tuple[str | None, str | None]:
    """(the source repository's URI, its commit) among the resolved dependencies."""
    for entry in predicate.get("buildDefinition", {}).get("resolvedDependencies") or []:
        commit = (entry.get("digest") or {}).get("gitCommit")
        if commit:
            return entry.get("uri"), commit
    return None, None


def _same_repository(left: str, right: str) -> bool:
    def plain(uri: str) -> str:
        return uri.removeprefix("git+").rstrip("/").removesuffix(".git").lower()

    return plain(left) == plain(right)


def check(statements: Sequence[dict[str, Any]], digest: str, expected: Expected) -> str:
    """One line saying what the provenance says; NotVerified (exit 10) with the reason when
    no statement about ``digest`` matches ``expected``."""
    about = [s for s in statements
             if any((subject.get("digest") or {}).get("sha256") == digest.split(":", 1)[-1]
                    for subject in s.get("subject") or [])]  # fmt: skip
    if not about:
        if statements:
            raise NotVerified(f"the provenance attestations name other digests than {digest}")
        if expected.any():
            raise NotVerified(f"{digest} has no provenance attestation to check the source or"
                              " builder against (pushed without a signing key?)")  # fmt: skip
        return "none attached"
    reasons = []
    for statement in about:
        predicate = statement.get("predicate") or {}
        uri, commit = source_of(predicate)
        builder = ((predicate.get("runDetails") or {}).get("builder") or {}).get("id")
        wrong = []
        if expected.source_uri and not (uri and _same_repository(uri, expected.source_uri)):
            wrong.append(f"built from {uri or 'no recorded repository'},"
                         f" not {expected.source_uri}")  # fmt: skip
        if expected.source_commit and not (
            commit and len(expected.source_commit) >= 7
            and commit.lower().startswith(expected.source_commit.lower())
        ):  # fmt: skip
            wrong.append(f"built from commit {commit or 'none recorded'},"
                         f" not {expected.source_commit}")  # fmt: skip
        if expected.builder and builder != expected.builder:
            wrong.append(f"built by {builder or 'no recorded builder'}, not {expected.builder}")
        if not wrong:
            return (f"SLSA v1, built from {uri or 'an unrecorded repository'} at"
                    f" {commit or 'an unrecorded commit'} by {builder}")  # fmt: skip
        reasons.append("; ".join(wrong))
    raise NotVerified(f"the provenance of {digest} does not match: {reasons[0]}")
