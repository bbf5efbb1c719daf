"""``idpwrap login`` and ``logout`` against real registries, with a real file-backed keyring.

login checks the credentials the way the registry asks (Basic for htpasswd, the Bearer token
dance for the Gitea-shaped registry, Gitea's exact ``/v2/`` challenge from our token server),
keeps them in the keyring only when they are accepted, and ``push`` then finds them there.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.cli import Cli, Result
from testing.credentials import (
    USERNAME,
    CredentialWorld,
    GiteaRegistry,
    make_world,
    start_gitea_registry,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gitea(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GiteaRegistry]:
    running = start_gitea_registry(tmp_path_factory.mktemp("gitea-login-registry"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def world(prebuilt_cli: Cli, tmp_path: Path) -> CredentialWorld:
    return make_world(prebuilt_cli, tmp_path / "world")


def login(
    world: CredentialWorld, url: str, password: str, *extra: str, env: dict | None = None
) -> Result:
    return world.cli.run(
        "login", "-u", USERNAME, "--password-stdin", *extra, url,
        stdin=password + "\n", env=world.env(**(env or {})),
    )  # fmt: skip


def no_secret(result: Result, secret: str) -> None:
    leaked = secret in result.stdout or secret in result.stderr
    assert not leaked, "the secret is in idpwrap's output"


def test_login_push_logout_with_the_token_registry(prebuilt, world, gitea) -> None:
    result = login(world, gitea.url, gitea.password, "--ca-file", gitea.ca_file, "--verbose")
    no_secret(result, gitea.password)
    assert result.returncode == 0, result.describe()
    assert f"Login Succeeded: {USERNAME} at {gitea.host}" in result.stdout
    assert "(bearer)" in result.stderr
    service = f"idpwrap:{gitea.host}"
    assert world.keyring_entries() == {
        service: {"idpwrap:username": USERNAME, USERNAME: gitea.password}
    }

    pushed = world.cli.run(
        "push", "--verbose", "--registry", gitea.url, *gitea.tls_options(), "hello:v1",
        env=world.env(),
    )  # fmt: skip
    no_secret(pushed, gitea.password)
    assert pushed.returncode == 0, pushed.describe()
    assert f"credentials: keyring ({service})" in pushed.stderr
    # The owner comes from the keyring's username, lowercased.
    assert f"Pushed {gitea.host}/giteaadmin/hello:v1@{prebuilt.hello.digest}" in pushed.stdout

    out = world.cli.run("logout", gitea.url, env=world.env())
    assert out.returncode == 0 and f"Removed login credentials for {gitea.host}" in out.stdout
    assert world.keyring_entries() == {}
    again = world.cli.run("logout", gitea.url, env=world.env())
    assert again.returncode == 0 and f"Not logged in to {gitea.host}" in again.stdout

    anonymous = world.cli.run(
        "push", "--registry", gitea.url, *gitea.tls_options(), "hello:v1", "giteaadmin/x:v1",
        env=world.env(),
    )  # fmt: skip
    assert anonymous.returncode == 4, anonymous.describe()
    assert "no credentials were found" in anonymous.error_lines()[0]


def test_login_with_a_wrong_password_stores_nothing(world, gitea) -> None:
    wrong = "wrong-password-for-login"
    result = login(world, gitea.url, wrong, "--ca-file", gitea.ca_file)
    no_secret(result, wrong)
    assert result.returncode == 4, result.describe()
    assert len(result.error_lines()) == 1
    assert f"refused the credentials for {USERNAME}" in result.error_lines()[0]
    assert world.keyring_entries() == {}


def test_a_failed_login_keeps_the_previous_credentials(world, gitea) -> None:
    assert login(world, gitea.url, gitea.password, "--ca-file", gitea.ca_file).returncode == 0
    before = world.keyring_entries()
    assert login(world, gitea.url, "wrong", "--ca-file", gitea.ca_file).returncode == 4
    assert world.keyring_entries() == before


def test_login_answers_giteas_exact_challenge(world, gitea) -> None:
    """Our token server answers /v2/ as Gitea does: Bearer realm, service, scope="*"."""
    result = login(world, gitea.token_url, gitea.password, "--ca-file", gitea.ca_file, "-v")
    assert result.returncode == 0, result.describe()
    assert "(bearer)" in result.stderr
    host = gitea.token_url.split("://", 1)[1]
    assert world.keyring_entries()[f"idpwrap:{host}"][USERNAME] == gitea.password


def test_login_with_basic_auth_over_tls(world, registry) -> None:
    result = login(world, registry.url, registry.password, *registry.tls_options(), "-v")
    assert result.returncode == 0, result.describe()
    assert "(basic)" in result.stderr
    wrong = login(world, registry.url, "wrong", *registry.tls_options())
    assert wrong.returncode == 4, wrong.describe()


def test_login_to_a_plain_http_registry(world, http_registry) -> None:
    result = login(world, http_registry.url, http_registry.password)
    assert result.returncode == 0, result.describe()
    assert f"idpwrap:{http_registry.host}" in world.keyring_entries()


def test_login_tls_failures_name_the_flags(world, gitea) -> None:
    untrusted = login(world, gitea.url, gitea.password)
    assert untrusted.returncode == 6, untrusted.describe()
    assert "--ca-file" in untrusted.error_lines()[0]
    assert world.keyring_entries() == {}
    insecure = login(world, gitea.url, gitea.password, "--insecure")
    assert insecure.returncode == 0, insecure.describe()
    assert "TLS verification is off" in insecure.stderr


def test_login_to_nothing_listening_exits_5(world) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = login(world, f"https://127.0.0.1:{port}", "whatever")
    assert result.returncode == 5, result.describe()
    assert world.keyring_entries() == {}


@pytest.mark.parametrize(
    ("env", "code", "words"),
    [
        ({"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}, 1, "no keyring backend"),
        ({"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}, 1, "no keyring backend"),
        ({"IDPWRAP_NO_KEYRING": "1"}, 2, "IDPWRAP_NO_KEYRING=1"),
    ],
    ids=["fail-backend", "null-backend", "no-keyring-variable"],
)
def test_login_without_a_usable_keyring_is_one_line(world, gitea, env, code, words) -> None:
    result = login(world, gitea.url, gitea.password, "--ca-file", gitea.ca_file, env=env)
    no_secret(result, gitea.password)
    assert result.returncode == code, result.describe()
    assert "Traceback" not in result.stderr
    assert len(result.error_lines()) == 1 and words in result.error_lines()[0]


def test_login_without_a_terminal_needs_password_stdin(world, gitea) -> None:
    result = world.cli.run("login", "-u", USERNAME, gitea.url, env=world.env())
    assert result.returncode == 2, result.describe()
    assert "--password-stdin" in result.error_lines()[0]


def test_interactive_login_prompts_without_echo(world, gitea) -> None:
    """On a terminal: a username prompt, then a hidden password prompt (getpass)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*world.cli.command, "login", "--ca-file", gitea.ca_file, gitea.url],
        stdin=terminal, stdout=terminal, stderr=terminal,
        env=world.cli.environment(extra=world.env()), cwd=world.cli.cwd,
        start_new_session=True,
    )  # fmt: skip
    os.close(terminal)
    seen = b""

    def read_until(marker: bytes, timeout: float = 20) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.1)
            if ready:
                try:
                    seen += os.read(controller, 4096)
                except OSError:
                    break
        assert marker in seen, seen.decode(errors="replace").replace(gitea.password, "***")

    try:
        read_until(b"Username: ")
        os.write(controller, f"{USERNAME}\n".encode())
        read_until(b"Password or token for")
        os.write(controller, f"{gitea.password}\n".encode())
        read_until(b"Login Succeeded")
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    assert gitea.password.encode() not in seen, "the password was echoed"
    assert world.keyring_entries()[f"idpwrap:{gitea.host}"][USERNAME] == gitea.password
