"""``idpwrap login`` and ``idpwrap doctor`` against the Gitea mode.

Gitea's ``/v2/token`` is GET only (POST is 404: no OAuth2 refresh-token flow); login trades
Basic credentials for a token there and keeps the secret as given. doctor takes push's
registry, TLS and credential flags and tries the credentials for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testing.cli import Cli
from testing.credentials import CredentialWorld, make_world

pytestmark = pytest.mark.integration


@pytest.fixture
def world(prebuilt_cli: Cli, tmp_path: Path) -> CredentialWorld:
    return make_world(prebuilt_cli, tmp_path / "world")


@pytest.mark.parametrize("kind", ["password", "token"])
def test_login_then_push_from_the_keyring(world, gitea_registry, kind) -> None:
    gitea, secret = gitea_registry, gitea_registry.secret("developer", kind)
    result = world.cli.run(
        "login", "-u", "developer", "--password-stdin", "--ca-file", gitea.ca_file, "--verbose",
        gitea.url, stdin=secret + "\n", env=world.env(),
    )  # fmt: skip
    assert result.returncode == 0, result.describe()
    assert secret not in result.stdout + result.stderr
    assert f"Login Succeeded: developer at {gitea.host}" in result.stdout
    assert "(bearer)" in result.stderr
    # The secret is kept as given: a password or an access token, never an identity token.
    assert world.keyring_entries() == {
        f"idpwrap:{gitea.host}": {"idpwrap:username": "developer", "developer": secret}
    }
    push = world.cli.run(
        "push", "--registry", gitea.url, "--ca-file", gitea.ca_file, "--progress", "none",
        "hello:v1", f"developer/login-{kind}:v1", env=world.env(),
    )  # fmt: skip
    assert push.returncode == 0, push.describe()


def test_login_with_a_wrong_token_keeps_nothing(world, gitea_registry) -> None:
    result = world.cli.run(
        "login", "-u", "developer", "--password-stdin", "--ca-file", gitea_registry.ca_file,
        gitea_registry.url, stdin="0" * 40 + "\n", env=world.env(),
    )  # fmt: skip
    assert result.returncode == 4
    assert "refused the credentials for developer" in result.error_lines()[0]
    assert world.keyring_entries() == {}


def doctor(cli: Cli, gitea, user: str, secret: str, *flags: str):
    result = cli.run(
        "doctor", "--json", "--registry", gitea.url, *flags, credentials=(user, secret)
    )
    report = json.loads(result.stdout)
    return result, {check["name"]: check for check in report["checks"]}


def test_doctor_names_the_gitea_user_and_takes_push_flags(
    prebuilt_cli: Cli, gitea_registry
) -> None:
    gitea = gitea_registry
    secret = gitea.secret("giteaAdmin")
    result, checks = doctor(prebuilt_cli, gitea, "giteaAdmin", secret, "--ca-file", gitea.ca_file)
    assert checks["registry"]["status"] == "ok", checks["registry"]
    assert checks["credentials"]["status"] == "ok", checks["credentials"]
    assert (
        f"Gitea at {gitea.host} accepts them as Gitea user giteaAdmin"
        in (checks["credentials"]["message"])
    )
    assert secret not in result.stdout + result.stderr
    cert_dir = prebuilt_cli.home / "certs"
    cert_dir.mkdir()
    (cert_dir / "ca.crt").write_bytes(Path(gitea.ca_file).read_bytes())
    token = gitea.secret("developer", "token")
    _, checks = doctor(prebuilt_cli, gitea, "developer", token, "--cert-dir", str(cert_dir))
    assert checks["credentials"]["status"] == "ok", checks["credentials"]
    assert (
        "Gitea user id 2 (given as developer), token scope write:package"
        in (checks["credentials"]["message"])
    )
    _, checks = doctor(prebuilt_cli, gitea, "developer", token, "--insecure")
    assert "TLS not verified" in checks["registry"]["message"]
    assert checks["credentials"]["status"] == "ok"


def test_doctor_refuses_a_wrong_or_read_only_token(prebuilt_cli: Cli, gitea_registry) -> None:
    gitea = gitea_registry
    result, checks = doctor(prebuilt_cli, gitea, "giteaAdmin", "wrong", *gitea.tls_options())
    assert result.returncode == 1
    assert checks["credentials"]["status"] == "error"
    assert "refused the credentials for giteaAdmin" in checks["credentials"]["message"]
    read_token = gitea.secret("giteaAdmin", "read_token")
    result, checks = doctor(prebuilt_cli, gitea, "giteaAdmin", read_token, *gitea.tls_options())
    assert result.returncode == 1
    assert "scope is read:package: pushes will be refused" in checks["credentials"]["message"]
    assert "write:package" in checks["credentials"]["fix"]


def test_doctor_reads_credentials_from_authfile(prebuilt_cli: Cli, gitea_registry) -> None:
    import base64

    gitea = gitea_registry
    pair = f"outsider:{gitea.secret('outsider')}".encode()
    authfile = prebuilt_cli.home / "auth.json"
    authfile.write_text(
        json.dumps({"auths": {gitea.host: {"auth": base64.b64encode(pair).decode()}}})
    )
    result = prebuilt_cli.run(
        "doctor", "--json", "--registry", gitea.url, *gitea.tls_options(),
        "--authfile", str(authfile),
    )  # fmt: skip
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    assert "Gitea user outsider" in checks["credentials"]["message"], checks["credentials"]
    missing = prebuilt_cli.run("doctor", "--authfile", str(authfile) + ".nope")
    assert missing.returncode == 2
    assert "--authfile" in missing.error_lines()[0]


def test_an_identity_token_is_not_offered_to_gitea(prebuilt_cli: Cli, gitea_registry) -> None:
    """Gitea has no OAuth2 refresh-token flow: POST /v2/token is 404 (api.go)."""
    import base64

    gitea = gitea_registry
    authfile = prebuilt_cli.home / "identity.json"
    entry = {"auth": base64.b64encode(b"<token>:").decode(), "identitytoken": "refresh-me"}
    authfile.write_text(json.dumps({"auths": {gitea.host: entry}}))
    result = prebuilt_cli.run(
        "push", "--registry", gitea.url, *gitea.tls_options(), "--authfile", str(authfile),
        "--progress", "none", "hello:v1", "giteaadmin/identity:v1",
    )  # fmt: skip
    assert result.returncode == 4
    message = result.error_lines()[0]
    assert "no OAuth2 token endpoint (POST /v2/token answered 404" in message
    assert "idpwrap login" in message
