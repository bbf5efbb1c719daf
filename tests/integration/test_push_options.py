"""Push variants that must work: a plain-HTTP registry, the password on stdin, a terminal."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios

import pytest

from testing.cli import Cli

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
    # Pushed, or up to date when another test pushed hello:v1 there first.
    assert f" {registry.host}/giteaadmin/hello:v1@{prebuilt.hello.digest}" in result.stdout


def run_on_terminal(cli: Cli, args: list[str], env: dict[str, str], columns: int) -> tuple:
    """Run idpwrap with stdin and stderr on a pseudo-terminal of ``columns``; stdout piped."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
    try:
        process = subprocess.Popen(
            cli.argv(args),
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=env,
            cwd=cli.cwd,
            start_new_session=True,
        )
    finally:
        os.close(slave)
    screen = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last user has closed it
                break
            if not data:
                break
            screen += data
        stdout = process.stdout.read() if process.stdout else b""
        process.wait(timeout=60)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stdout.decode(), screen.decode(errors="replace")


def test_push_on_a_terminal_draws_bars_and_ends_at_100(
    prebuilt, prebuilt_cli: Cli, registry
) -> None:
    args = [
        "push",
        "--registry",
        registry.url,
        *registry.tls_options(),
        "three:v1",
        "giteaadmin/on-a-terminal:v1",
    ]
    env = prebuilt_cli.environment(registry.credentials, {"TERM": "xterm-256color"})
    code, stdout, screen = run_on_terminal(prebuilt_cli, args, env, 120)
    assert code == 0, screen[-3000:]
    assert "Traceback" not in screen
    assert f"@{prebuilt.three.digest}" in stdout
    assert "100%" in screen and "pushed" in screen, screen[-3000:]
    for digest, _ in prebuilt.three.layers:  # one bar per blob, by short digest
        assert digest.split(":")[1][:12] in screen


def test_quiet_push_shows_no_progress_only_the_result(prebuilt, prebuilt_cli: Cli, registry):
    result = prebuilt_cli.run(
        "push", "-q", "--registry", registry.url, *registry.tls_options(), "hello:v1",
        "giteaadmin/quiet:v1", credentials=(registry.username, registry.password),
        env={"IDPWRAP_PROGRESS": "plain"},
    )  # fmt: skip
    assert result.returncode == 0, result.describe()
    assert result.stdout == f"Pushed {registry.host}/giteaadmin/quiet:v1@{prebuilt.hello.digest}\n"
    assert result.stderr == ""  # no progress, although IDPWRAP_PROGRESS asks for plain lines
    both = prebuilt_cli.run("push", "--quiet", "--progress", "plain", "hello:v1")
    assert both.returncode == 2
    assert "--quiet means no progress" in both.error_lines()[0]
