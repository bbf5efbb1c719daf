"""Push variants that must work: a plain-HTTP registry, and the password on stdin."""

from __future__ import annotations

import pytest

from .helpers import Cli

pytestmark = pytest.mark.integration


def test_push_to_plain_http_registry(prebuilt, prebuilt_cli: Cli, http_registry) -> None:
    result = prebuilt_cli.run(
        "push",
        "--registry",
        f"http://{http_registry.host}",
        "--progress",
        "plain",
        "giteaAdmin/hello:v1",
        credentials=http_registry.credentials,
    )
    assert result.returncode == 0, result.describe()
    digest = prebuilt.hello.digest
    assert f"Pushed {http_registry.host}/giteaadmin/hello:v1@{digest}" in result.stdout
    assert "100%" in result.stderr  # the plain view's last line
    client = http_registry.client()
    assert client.tags("giteaadmin/hello") == ["v1"]
    assert client.manifest_digest("giteaadmin/hello", "v1") == digest


def test_password_from_stdin_with_username_option(prebuilt, prebuilt_cli: Cli, registry) -> None:
    result = prebuilt_cli.run(
        "push",
        "--registry",
        registry.url,
        *registry.tls_options(),
        "--username",
        registry.username,
        "--password-stdin",
        "--progress",
        "none",
        "hello:v1",
        stdin=registry.password + "\n",
    )
    leaked = registry.password in result.stdout or registry.password in result.stderr
    assert not leaked, "the password is in idpwrap's output"
    assert result.returncode == 0, result.describe()
    # No OWNER in SOURCE: the username, lowercased, is the owner.
    assert f"Pushed {registry.host}/giteaadmin/hello:v1@{prebuilt.hello.digest}" in result.stdout
