"""The cosign command line: make a key pair, check a key, sign, attest and verify in a
registry.

cosign reads no ``/dev/fd`` auth file: the registry's credentials reach it in a private
``DOCKER_CONFIG`` directory (made by the caller), its key's passphrase as ``COSIGN_PASSWORD`` in
its environment, never in an argv.
"""

from __future__ import annotations

import functools

from idpwrap.tools import procs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.refs import Registry
    from idpwrap.tls import TlsTrust

PROGRAM = "cosign"
# cosign's name for https://slsa.dev/provenance/v1
ATTESTATION_TYPE = "slsaprovenance1"


def registry_flags(registry: Registry, trust: TlsTrust, work: str) -> list[str]:
    """How cosign reaches ``registry``; a --cert-dir's ``*.crt`` become one bundle in ``work``."""
    if registry.plain_http:
        return ["--allow-http-registry=true", "--allow-insecure-registry=true"]
    if trust.insecure:
        return ["--allow-insecure-registry=true"]
    bundle = trust.bundle_in(work)
    return ["--registry-cacert", bundle] if bundle else []


@functools.cache
def offline_flags() -> tuple[str, ...]:
    """The flags that keep a signature out of any public transparency log. cosign 3 reads a
    signing config from sigstore's TUF repository by default and refuses --tlog-upload=false
    beside it ("not supported with --signing-config or --use-signing-config"); cosign 2 has no
    such setting (Debian 13's 2.5 lists none). Asked once per run, of the help text."""
    completed = procs.run([PROGRAM, "sign", "--help"], timeout=30, what="cosign sign --help")
    if "--use-signing-config" in completed.stdout + completed.stderr:
        return ("--use-signing-config=false", "--tlog-upload=false")
    return ("--tlog-upload=false",)


def sign_argv(key: str, reference: str, flags: list[str]) -> list[str]:
    """Sign ``HOST/REPO@DIGEST``; nothing goes to a public transparency log."""
    return [PROGRAM, "sign", "--key", key, *offline_flags(), "--yes", *flags, reference]


def verify_argv(key: str, reference: str, flags: list[str]) -> list[str]:
    """Verify ``reference``'s signatures against a public key; idpwrap signs without a
    transparency log, so none is consulted."""
    return [PROGRAM, "verify", "--key", key, "--insecure-ignore-tlog=true", *flags, reference]


def attest_argv(key: str, predicate: str, reference: str, flags: list[str]) -> list[str]:
    """Attach ``predicate`` (a SLSA v1 provenance predicate file) to ``HOST/REPO@DIGEST`` as
    an in-toto attestation signed by ``key``, stored as ``sha256-<digest>.att``; one per
    type (``--replace``), nothing in a public transparency log."""
    return [PROGRAM, "attest", "--key", key, "--type", ATTESTATION_TYPE, "--predicate", predicate,
            "--replace=true", *offline_flags(), "--yes", *flags, reference]  # fmt: skip


def verify_attestation_argv(key: str, reference: str, flags: list[str]) -> list[str]:
    """Verify ``reference``'s SLSA v1 provenance attestations against a public key; prints
    each verified DSSE envelope as one JSON line."""
    return [PROGRAM, "verify-attestation", "--key", key, "--type", ATTESTATION_TYPE,
            "--insecure-ignore-tlog=true", *flags, reference]  # fmt: skip


def public_key_argv(key: str) -> list[str]:
    """Print a private key's public half: proves the passphrase opens the key."""
    return [PROGRAM, "public-key", "--key", key]


def generate_key_pair_argv(prefix: str) -> list[str]:
    """PREFIX.key and PREFIX.pub in the working directory."""
    return [PROGRAM, "generate-key-pair", "--output-key-prefix", prefix]


def environment(config_dir: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The child environment, with the credentials of ``config_dir``; cosign keeps caches under
    HOME: a private one leaves nothing in the user's."""
    values = {"DOCKER_CONFIG": config_dir, "HOME": config_dir, **(extra or {})}
    return procs.child_environment(values)


def reason(output: list[str]) -> str:
    """cosign's own reason for a failure: its last ``Error:`` line, else its last line."""
    lines = [line.strip() for line in "".join(output).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    if errors:
        return errors[-1].removeprefix("Error:").strip()
    return lines[-1] if lines else "no output"


def run_with_key(argv: list[str], config_dir: str, passphrase: str) -> str | None:
    """Run a cosign command that opens the private key (sign, attest); the passphrase goes in
    its environment, never its argv. None when it succeeded, else the reason it gave."""
    output: list[str] = []
    finished = procs.run_streaming(
        argv, output.append, merge_stderr=True,
        env=environment(config_dir, {"COSIGN_PASSWORD": passphrase}),
    )  # fmt: skip
    return None if finished.exit_code == 0 else reason(output)
