"""idpwrap's own HTTPS (``login``, ``doctor``'s probe) trusts exactly what skopeo trusts.

A CA made by plain ``openssl req -x509`` has no keyUsage extension. Go (skopeo) accepts it;
Python 3.13's default context (``VERIFY_X509_STRICT``) refuses it. These tests run on every
Python the matrix runs (3.11 on the host, 3.13 in ``scripts/test --in trixie``): with the same
``--ca-file`` login, doctor and push all succeed, and a CA nobody trusts, or a certificate
that names its host only in the CN (Go ignores the CN), is refused by all three.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.cli import Cli
from testing.credentials import USERNAME, CredentialWorld, make_world
from testing.registry.running import RunningRegistry, start_registry

pytestmark = pytest.mark.integration


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def plain_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A CA the common way: ``openssl req -x509``, no keyUsage, no ``-addext``."""
    key, crt = directory / f"{name}.key", directory / f"{name}.crt"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(crt))  # fmt: skip
    return key, crt


def registry_signed_by(directory: Path, extensions: str) -> tuple[RunningRegistry, Path]:
    """A registry whose server certificate a keyUsage-less CA signed with ``extensions``."""
    directory.mkdir()
    ca_key, ca_crt = plain_ca(directory, "ca")
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "server.ext"
    ext.write_text(extensions)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", str(key), "-out", str(csr))  # fmt: skip
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))  # fmt: skip
    # localregistry keeps a directory's certificates: it serves these instead of its own.
    return start_registry(directory), ca_crt


@pytest.fixture(scope="module")
def keyusage_less(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    base = tmp_path_factory.mktemp("tls-trust")
    running, _ = registry_signed_by(base / "registry", "subjectAltName=IP:127.0.0.1\n")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def cn_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    base = tmp_path_factory.mktemp("tls-cn-only")
    running, _ = registry_signed_by(base / "registry", "basicConstraints=CA:FALSE\n")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def world(prebuilt_cli: Cli, tmp_path: Path) -> CredentialWorld:
    return make_world(prebuilt_cli, tmp_path / "world")


def login(world: CredentialWorld, registry: RunningRegistry, ca_file: str):
    return world.cli.run(
        "login", "-u", USERNAME, "--password-stdin", "--ca-file", ca_file, registry.url,
        stdin=registry.password + "\n", env=world.env(),
    )  # fmt: skip


def doctor_registry(cli: Cli, registry: RunningRegistry, ca_file: str) -> dict:
    config = cli.home / ".config" / "idpwrap" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"registry: {registry.url}\nca_file: {ca_file}\n")
    result = cli.run("doctor", "--json", credentials=registry.credentials)
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    return checks["registry"]


def skopeo_reaches(registry: RunningRegistry, ca_file: str, tmp_path: Path) -> str:
    """What skopeo says about the registry's TLS with this CA ('' when it is trusted)."""
    cert_dir = tmp_path / "skopeo-certs"
    cert_dir.mkdir(exist_ok=True)
    (cert_dir / "ca.crt").write_bytes(Path(ca_file).read_bytes())
    completed = subprocess.run(
        ["skopeo", "inspect", "--cert-dir", str(cert_dir), "--retry-times", "0",
         f"docker://{registry.host}/nobody/nothing:v1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert completed.returncode != 0  # no credentials: at best a 401
    return completed.stderr if "x509" in completed.stderr else ""


def test_a_ca_without_key_usage_is_trusted_as_skopeo_trusts_it(
    prebuilt, world, keyusage_less, tmp_path
) -> None:
    ca_file = keyusage_less.ca_file
    text = subprocess.run(["openssl", "x509", "-in", ca_file, "-noout", "-text"],
                          capture_output=True, text=True).stdout  # fmt: skip
    assert "Key Usage" not in text
    assert skopeo_reaches(keyusage_less, ca_file, tmp_path) == ""
    result = login(world, keyusage_less, ca_file)
    assert result.returncode == 0, result.describe()
    check = doctor_registry(world.cli, keyusage_less, ca_file)
    assert check["status"] == "ok", check
    assert "TLS trusted" in check["message"]
    pushed = world.cli.run(
        "push", "--registry", keyusage_less.url, "--ca-file", ca_file, "--progress", "none",
        "hello:v1", credentials=keyusage_less.credentials,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.describe()
    assert prebuilt.hello.digest in pushed.stdout


def test_a_ca_nobody_trusts_is_refused_with_its_reason(world, keyusage_less, tmp_path) -> None:
    _, other = plain_ca(tmp_path, "other")
    assert "x509" in skopeo_reaches(keyusage_less, str(other), tmp_path)
    result = login(world, keyusage_less, str(other))
    assert result.returncode == 6, result.describe()
    line = result.error_lines()[0]
    assert "not trusted (unable to get local issuer certificate)" in line, line
    assert world.keyring_entries() == {}
    check = doctor_registry(world.cli, keyusage_less, str(other))
    assert check["status"] == "error"
    assert "TLS not trusted: unable to get local issuer certificate" in check["message"]


def test_a_host_named_only_in_the_cn_is_refused_as_go_refuses_it(world, cn_only, tmp_path) -> None:
    assert "x509" in skopeo_reaches(cn_only, cn_only.ca_file, tmp_path)
    result = login(world, cn_only, cn_only.ca_file)
    assert result.returncode == 6, result.describe()
    assert "mismatch" in result.error_lines()[0], result.describe()
    check = doctor_registry(world.cli, cn_only, cn_only.ca_file)
    assert check["status"] == "error" and "mismatch" in check["message"], check
