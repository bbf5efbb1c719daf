"""Signing and verifying command lines and cosign's answers, without the tools."""

from __future__ import annotations

import pytest

from idpwrap.errors import ImageNotFound, NotVerified, TlsNotTrusted
from idpwrap.refs import Registry
from idpwrap.sign import signing, verifying
from idpwrap.tls import TlsTrust
from idpwrap.tools import cosign

REGISTRY = Registry("registry.test:5000")
DIGEST = "sha256:" + "ab" * 32


def test_attachment_tag():
    assert signing.attachment_tag(DIGEST) == f"sha256-{'ab' * 32}.sig"


def test_skopeo_signs_during_the_copy_with_a_private_registries_d():
    signer = signing.Signer("/k/cosign.key", "secret words", "skopeo")
    argv = ["skopeo", "copy", "--authfile", "/dev/fd/5", "oci:/l:image", "docker://r/o/n:v1"]
    with signing.signing_copy(signer, REGISTRY.host, "registry.test:5000/o/n", DIGEST, argv) as (
        signed,
        fds,
    ):
        directory = signed[signed.index("--registries.d") + 1]
        with open(f"{directory}/idpwrap.yaml", encoding="utf-8") as file:
            assert file.read() == (
                'docker:\n  "registry.test:5000":\n    use-sigstore-attachments: true\n'
            )
        assert signed[:3] == ["skopeo", "--registries.d", directory]
        assert signed[-2:] == argv[-2:]
        assert signed[signed.index("--sign-passphrase-file") + 1] == f"/dev/fd/{fds[0]}"
        assert "secret words" not in " ".join(signed)
    signer.signed.add(("registry.test:5000/o/n", DIGEST))
    with signing.signing_copy(signer, REGISTRY.host, "registry.test:5000/o/n", DIGEST, argv) as (
        again,
        fds,
    ):
        assert again == argv and fds == ()  # --all-tags: the digest is signed once


def test_cosign_signs_after_the_copy():
    signer = signing.Signer("/k/cosign.key", "x", "cosign")
    argv = ["skopeo", "copy", "oci:/l:image", "docker://r/o/n:v1"]
    with signing.signing_copy(signer, REGISTRY.host, "r/o/n", DIGEST, argv) as (same, fds):
        assert same == argv and fds == ()


def test_cosign_tls_arguments(tmp_path):
    assert cosign.registry_flags(Registry("h:1", True), TlsTrust(), str(tmp_path)) == [
        "--allow-http-registry=true",
        "--allow-insecure-registry=true",
    ]
    assert cosign.registry_flags(REGISTRY, TlsTrust(insecure=True), str(tmp_path)) == [
        "--allow-insecure-registry=true"
    ]
    assert cosign.registry_flags(REGISTRY, TlsTrust(ca_file="/ca.pem"), str(tmp_path)) == [
        "--registry-cacert",
        "/ca.pem",
    ]
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "a.crt").write_text("A")
    (certs / "b.crt").write_text("B\n")
    (certs / "client.key").write_text("not a CA")
    arguments = cosign.registry_flags(REGISTRY, TlsTrust(cert_dir=str(certs)), str(tmp_path))
    assert arguments[0] == "--registry-cacert"
    assert (tmp_path / "ca-bundle.crt").read_text() == "A\nB\n"
    assert cosign.registry_flags(REGISTRY, TlsTrust(), str(tmp_path)) == []


@pytest.mark.parametrize(
    ("code", "stderr", "kind", "words"),
    [
        (10, "Error: no signatures found\n", NotVerified, "is not signed: no signature"),
        (11, "Error: image tag not found: GET ...\n", ImageNotFound, "is not in the registry"),
        (
            12,
            "Error: no matching signatures: invalid signature when validating ASN.1 encoded"
            " signature\n",
            NotVerified,
            "is not signed by /k.pub",
        ),
        (
            12,
            f"Error: no matching signatures: invalid or missing digest in claim: {DIGEST}\n",
            NotVerified,
            f"does not match its digest: it signs {DIGEST}",
        ),
        (
            1,
            "Error: Get https://h/v2/: x509: certificate signed by unknown authority\n",
            TlsNotTrusted,
            "--ca-file",
        ),
    ],
)
def test_cosigns_failures(code, stderr, kind, words):
    error = verifying._failure(code, [stderr], "r/o/n:v1", "/k.pub", REGISTRY)
    assert isinstance(error, kind)
    assert words in str(error)


def test_signer_repr_has_no_passphrase():
    assert "secret" not in repr(signing.Signer("/k", "secret", "cosign"))
