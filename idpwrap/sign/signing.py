"""Signing what ``push`` pushed: a sigstore signature stored as cosign's tag attachment
``sha256-<digest>.sig`` in the same repository (Gitea has no referrers API; tags work).

skopeo signs during its own copy where its sigstore support works (a private ``registries.d``
turns ``use-sigstore-attachments`` on for the destination); whether it does is probed once, by
signing a one-blob image into a private ``dir:`` with the user's key, before anything is pushed
(Debian 12's skopeo 1.9.3 refuses: "Debian-local change: sigstore disabled"). Otherwise cosign
signs the pushed digest (``--tlog-upload=false``: nothing goes to a public transparency log),
with the registry's credentials only in a private 0600 docker config that is removed
afterwards. Neither the passphrase nor a credential is ever in an argv.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator

from idpwrap import log
from idpwrap.creds import sources as creds
from idpwrap.errors import SigningError, ToolMissing, UsageError
from idpwrap.scratch import private_directory, remove_tree
from idpwrap.sign import keys as sigstore
from idpwrap.tools import cosign, skopeo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.refs import Registry
    from idpwrap.tls import TlsTrust

SIGSTORE_DISABLED = "sigstore disabled"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def attachment_tag(digest: str) -> str:
    """cosign's tag for the signatures of ``digest``."""
    return digest.replace(":", "-", 1) + ".sig"


@contextlib.contextmanager
def docker_config(registry_host: str, credentials: creds.Credentials | None) -> Iterator[str]:
    """A private directory for DOCKER_CONFIG holding a 0600 config.json with only these
    credentials (cosign reads no /dev/fd auth file); removed on the way out."""
    directory = private_directory("idpwrap-cosign-")
    try:
        path = os.path.join(directory, "config.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, creds.auth_file_content(registry_host, credentials))
        finally:
            os.close(fd)
        yield directory
    finally:
        remove_tree(directory)


class Signer:
    """The key and passphrase of one push, the tool that signs, and what it has signed."""

    def __init__(self, key: str, passphrase: str, tool: str) -> None:
        self.key = key
        self.passphrase = passphrase
        self.tool = tool  # "skopeo" (during the copy) or "cosign" (after it)
        self.signed: set[tuple[str, str]] = set()  # (repository, digest)
        self.attested: set[tuple[str, str]] = set()  # the provenance attached (sign/attest.py)

    def __repr__(self) -> str:
        return f"Signer(key={self.key!r}, tool={self.tool!r})"

    def wants(self, repository: str, digest: str) -> bool:
        """--all-tags: each digest of a repository is signed once."""
        return (repository, digest) not in self.signed

    @contextlib.contextmanager
    def skopeo_copy(self, argv: list[str], registry_host: str) -> Iterator[tuple[list[str], int]]:
        """A ``skopeo copy`` argv that also signs, and the passphrase's fd it must inherit."""
        directory = private_directory("idpwrap-sign-")
        try:
            with open(os.path.join(directory, "idpwrap.yaml"), "w", encoding="utf-8") as file:
                file.write(f"docker:\n  {json.dumps(registry_host)}:\n"
                           "    use-sigstore-attachments: true\n")  # fmt: skip
            with sigstore.passphrase_fd(self.passphrase) as fd:
                yield skopeo.with_signing(argv, directory, self.key, fd), fd
        finally:
            remove_tree(directory)

    def sign_with_cosign(
        self,
        reference: str,
        registry: Registry,
        trust: TlsTrust,
        credentials: creds.Credentials | None,
    ) -> None:
        """``cosign sign`` of ``HOST/REPO@DIGEST``, signature stored in the registry."""
        with docker_config(registry.host, credentials) as config_dir:
            flags = cosign.registry_flags(registry, trust, config_dir)
            argv = cosign.sign_argv(self.key, reference, flags)
            log.debug("running %s", " ".join(argv))
            failure = cosign.run_with_key(argv, config_dir, self.passphrase)
        if failure is not None:
            raise SigningError(f"cosign could not sign {reference}: {failure}")


def prepare(key: str, passphrase_file: str | None) -> Signer:
    """Check the key, read its passphrase and choose the tool, before anything is pushed."""
    try:
        with open(key, "rb") as handle:
            head = handle.read(200)
    except OSError as error:
        raise UsageError(
            f"--sign-by-sigstore-private-key {key}: {error.strerror}; make a key pair with"
            " idpwrap keygen"
        ) from error
    if b"PRIVATE KEY" not in head:
        raise UsageError(
            f"--sign-by-sigstore-private-key {key} is not a sigstore private key (cosign.key"
            " from idpwrap keygen or cosign generate-key-pair)"
        )
    passphrase = sigstore.read_passphrase(
        passphrase_file, what="signing key", option="--sign-passphrase-file"
    )
    key = os.path.abspath(key)
    if skopeo_signs(key, passphrase):
        return Signer(key, passphrase, "skopeo")
    if sigstore.find_tool("cosign"):
        # cosign signs after the push: a passphrase that cannot open the key must stop it first.
        code, reason = sigstore.run_collecting(
            cosign.public_key_argv(key), extra_env={"COSIGN_PASSWORD": passphrase}
        )
        if code != 0:
            reason = reason.removeprefix("error during command execution: ")
            hint = " (a wrong passphrase?)" if "decrypt" in reason else ""
            raise SigningError(
                f"the signing key cannot be used: {reason}{hint}; nothing was pushed"
            )
        return Signer(key, passphrase, "cosign")
    raise ToolMissing(
        "cannot sign here: this skopeo cannot (Debian 12's 1.9.3: sigstore disabled) and cosign"
        f" is not installed: {sigstore.INSTALL_HINT}; nothing was pushed"
    )


def skopeo_signs(key: str, passphrase: str) -> bool:
    """Whether skopeo signs with this key: a real signature of a one-blob image into a
    private ``dir:``. A key or passphrase skopeo refuses is the user's to fix: an error."""
    if sigstore.find_tool("skopeo") is None:
        return False
    work = private_directory("idpwrap-probe-")
    try:
        layout = os.path.join(work, "layout")
        _write_probe_layout(layout)
        with sigstore.passphrase_fd(passphrase) as fd:
            code, reason = sigstore.run_collecting(
                skopeo.sign_probe_argv(key, fd, layout, os.path.join(work, "out")),
                pass_fds=(fd,),
            )
    finally:
        remove_tree(work)
    if code == 0:
        log.info("signing: skopeo signs (probed)")
        return True
    lowered = reason.lower()
    if SIGSTORE_DISABLED in lowered or "unknown flag" in lowered:
        log.info("signing: skopeo cannot (%s): cosign signs", reason)
        return False
    if "passphrase" in lowered or "decrypt" in lowered or "private key" in lowered:
        raise SigningError(f"the signing key cannot be used: {reason}; nothing was pushed")
    log.info("signing: skopeo's probe failed (%s): cosign signs", reason)
    return False


def _write_probe_layout(layout: str) -> None:
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs)
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    config_digest = hashlib.sha256(config).hexdigest()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
        "config": {"mediaType": OCI_CONFIG, "digest": f"sha256:{config_digest}",
                   "size": len(config)},
    }).encode()  # fmt: skip
    manifest_digest = hashlib.sha256(manifest).hexdigest()
    for digest, data in ((config_digest, config), (manifest_digest, manifest)):
        with open(os.path.join(blobs, digest), "wb") as file:
            file.write(data)
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": f"sha256:{manifest_digest}", "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "probe"}}]}  # fmt: skip
    with open(os.path.join(layout, "index.json"), "w", encoding="utf-8") as file:
        json.dump(index, file)
    with open(os.path.join(layout, "oci-layout"), "w", encoding="utf-8") as file:
        file.write('{"imageLayoutVersion":"1.0.0"}')


@contextlib.contextmanager
def signing_copy(
    signer: Signer | None,
    registry_host: str,
    repository: str,
    digest: str,
    argv: list[str],
    notice: Callable[[str], None] | None = None,
) -> Iterator[tuple[list[str], tuple[int, ...]]]:
    """skopeo's argv (and the fds it must inherit), signing when skopeo is the signer."""
    if signer is None or signer.tool != "skopeo" or not signer.wants(repository, digest):
        yield argv, ()
        return
    if notice is not None:
        notice(f"signing {repository}@{digest} with {signer.key} (skopeo, during the copy)")
    with signer.skopeo_copy(argv, registry_host) as (signing_argv, fd):
        yield signing_argv, (fd,)


def after_push(
    signer: Signer | None,
    repository_reference: str,
    digest: str,
    registry: Registry,
    trust: TlsTrust,
    credentials: creds.Credentials | None,
    notice: Callable[[str], None],
) -> None:
    """Sign ``REPO@DIGEST`` with cosign (skopeo signed during the copy), once per digest."""
    if signer is None or not signer.wants(repository_reference, digest):
        return
    reference = f"{repository_reference}@{digest}"
    if signer.tool == "cosign":
        notice(f"signing {reference} with {signer.key} (cosign)")
        signer.sign_with_cosign(reference, registry, trust, credentials)
    signer.signed.add((repository_reference, digest))
    notice(f"signed {reference}: signature stored as {repository_reference}:"
           f"{attachment_tag(digest)} ({signer.tool})")  # fmt: skip
