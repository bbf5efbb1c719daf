"""No credential source leaks its secret: not into any process's argv or environment while the
push runs, not into --verbose or --debug output, not onto disk; skopeo reads it from an unlinked
0600 file whose private directory is already gone, and nothing is left after success, failure,
SIGINT or SIGTERM.

The pushes go through a throttling relay so that they last a few seconds: time to sweep /proc
many times while skopeo runs. The checks never print the secret.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.credentials import (
    USERNAME,
    CredentialWorld,
    GiteaRegistry,
    auth_json,
    make_world,
    start_gitea_registry,
    store_in_keyring,
    write_credential_helper,
    write_json,
)
from testing.images import MiB
from testing.processes import StreamWatcher, is_the_root_itself, processes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gitea(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GiteaRegistry]:
    running = start_gitea_registry(tmp_path_factory.mktemp("gitea-leak-registry"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def fresh_gitea(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GiteaRegistry]:
    """Empty storage: every blob is uploaded (none mounted from an earlier push), slowly."""
    running = start_gitea_registry(tmp_path_factory.mktemp("gitea-fresh-registry"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def world(prebuilt_cli, tmp_path: Path) -> CredentialWorld:
    return make_world(prebuilt_cli, tmp_path / "world")


def put_source(name: str, world: CredentialWorld, host: str, secret: str, tmp_path: Path):
    """(extra env, extra args, stdin text) that give the push ``secret`` through ``name``."""
    if name == "keyring":
        store_in_keyring(world.keyring_file, host, USERNAME, secret)
        return {}, [], None
    if name == "cred-helper":
        write_credential_helper(world.bin_dir, "test", {host: (USERNAME, secret)})
        write_json(world.home / ".docker" / "config.json", {"credsStore": "test"})
        return {}, [], None
    if name == "authfile":
        path = write_json(tmp_path / "world" / "auth.json", auth_json(host, USERNAME, secret))
        return {}, ["--authfile", str(path)], None
    if name == "password-stdin":
        return {}, ["--username", USERNAME, "--password-stdin"], secret + "\n"
    if name == "docker-auth-config":
        return {"DOCKER_AUTH_CONFIG": json.dumps(auth_json(host, USERNAME, secret))}, [], None
    raise AssertionError(name)


def start_push(world, gitea, host, extra_args, extra_env, stdin_text, repository, *flags):
    argv = world.cli.argv(
        ["push", *flags, "--registry", f"https://{host}", *gitea.tls_options(),
         "--progress", "json", *extra_args, "three:v1", f"giteaadmin/{repository}:v1"]
    )  # fmt: skip
    process = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=world.cli.environment(extra=world.env(**extra_env)),
        cwd=world.cli.cwd,
    )
    if stdin_text is not None:
        assert process.stdin is not None
        process.stdin.write(stdin_text)
        process.stdin.close()
    return process, StreamWatcher(process.stdout), StreamWatcher(process.stderr)


class Sweeper:
    """Sweeps /proc while the push runs: secrets in argv or environ, and skopeo's auth file."""

    def __init__(self, root_pid: int, secret: bytes, given: bytes = b"") -> None:
        self.root_pid = root_pid
        self.secret = secret
        # What the user gave idpwrap itself (DOCKER_AUTH_CONFIG's base64 "auth"): in idpwrap's
        # own environment by the user's choice, in no other process.
        self.given = given
        self.leaks: list[str] = []
        self.sweeps = 0
        self.auth_files: list[tuple[str, int, bool]] = []  # (link target, mode, dir exists)

    def sweep(self) -> None:
        family = {self.root_pid}
        snapshot = list(processes())
        for _ in range(3):  # children, grandchildren (setpriv execs in place)
            family |= {info.pid for info in snapshot if info.ppid in family}
        root = next((info for info in snapshot if info.pid == self.root_pid), None)
        for info in snapshot:
            # the given auth is in idpwrap's own environment by the user's choice; a child
            # idpwrap forked is idpwrap until it execs (a sweep met one once, on sid)
            own = is_the_root_itself(info, root)
            for name, data in (("cmdline", info.cmdline), ("environ", info.environ)):
                if self.secret in data:
                    where = "idpwrap itself" if info.pid == self.root_pid else f"pid {info.pid}"
                    self.leaks.append(f"{where} ({Path(info.argv[0]).name}) in its {name}")
                if self.given and self.given in data and not own:
                    program = Path(info.argv[0]).name if info.argv else "?"
                    self.leaks.append(f"pid {info.pid} ({program}) has the given auth in {name}")
            if info.pid in family and info.argv and Path(info.argv[0]).name == "skopeo":
                self._look_at_auth_file(info.pid, info.argv)
        self.sweeps += 1

    def _look_at_auth_file(self, pid: int, argv: list[str]) -> None:
        if "--authfile" not in argv:
            return
        given = argv[argv.index("--authfile") + 1]
        if not given.startswith("/dev/fd/"):
            self.leaks.append(f"skopeo reads a named auth file {given}")
            return
        fd_path = f"/proc/{pid}/fd/{given.rsplit('/', 1)[1]}"
        try:
            target = os.readlink(fd_path)
            mode = stat.S_IMODE(os.stat(fd_path).st_mode)
        except OSError:
            return  # skopeo exited meanwhile
        directory = os.path.dirname(target.removesuffix(" (deleted)"))
        self.auth_files.append((target, mode, os.path.exists(directory)))


def leftovers(world: CredentialWorld) -> list[str]:
    return [name for name in os.listdir(world.cli.tmpdir) if name.startswith("idpwrap-")]


def secret_files(world: CredentialWorld, secret: bytes, since: float) -> list[str]:
    """Files holding the secret, besides the keyring files, auth files and helpers that this
    and earlier tests wrote on purpose (each test's ``world`` directory).

    Only one filesystem per root is walked: a build running meanwhile (another test run) may
    have a /proc mounted in its root filesystem under /tmp, and its files never end."""
    base = world.keyring_file.parent.parent.parent  # pytest's base temporary directory
    skip = {str(path) for path in base.glob("*/world") if path.is_dir()}
    found: set[str] = set()
    for root in (Path("/tmp"), Path("/var/tmp"), world.cli.store, world.cli.home):
        device = root.stat().st_dev
        for directory, dirs, files in os.walk(root):
            dirs[:] = [
                name
                for name in dirs
                if os.path.join(directory, name) not in skip
                and _on_device(os.path.join(directory, name), device)
            ]
            for name in files:
                path = os.path.join(directory, name)
                if _holds(path, secret, since, device):
                    found.add(path)
    return sorted(found)


def _on_device(path: str, device: int) -> bool:
    try:
        return os.lstat(path).st_dev == device
    except OSError:
        return False


def _holds(path: str, secret: bytes, since: float, device: int) -> bool:
    try:
        status = os.lstat(path)
        if not stat.S_ISREG(status.st_mode) or status.st_dev != device:
            return False
        if max(status.st_mtime, status.st_ctime) < since or status.st_size > 64 * MiB:
            return False
        with open(path, "rb") as handle:
            return secret in handle.read()
    except OSError:
        return False


@pytest.mark.parametrize(
    "source", ["keyring", "cred-helper", "authfile", "password-stdin", "docker-auth-config"]
)
def test_no_leak_while_pushing(source, prebuilt, world, gitea, relay_to, tmp_path) -> None:
    secret = gitea.password
    relay = relay_to(gitea, 6 * MiB)
    env, args, stdin_text = put_source(source, world, relay.host, secret, tmp_path)
    process, stdout, stderr = start_push(
        world, gitea, relay.host, args, env, stdin_text, f"leak-{source}", "--debug"
    )
    given = auth_json(relay.host, USERNAME, secret)["auths"][relay.host]["auth"].encode()
    sweeper = Sweeper(process.pid, secret.encode(), given if "DOCKER_AUTH_CONFIG" in env else b"")
    deadline = time.monotonic() + 120  # bounded, whatever happens to the push
    try:
        while process.poll() is None and time.monotonic() < deadline:
            sweeper.sweep()
            time.sleep(0.002)  # leave the CPU to skopeo and the relay between sweeps
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    out, err = stdout.text(), stderr.text()
    assert secret not in out and secret not in err, "the secret is in idpwrap's --debug output"
    assert given.decode() not in out + err, "the given auth is in idpwrap's --debug output"
    assert process.returncode == 0, err[-2000:]
    if source == "docker-auth-config":
        assert f"idpwrap: credentials: DOCKER_AUTH_CONFIG ({relay.host})" in err
    assert "Pushed " in out
    assert "idpwrap: running skopeo copy --authfile /dev/fd/" in err  # --debug shows argv
    assert sweeper.leaks == []
    assert sweeper.auth_files, f"skopeo's auth file was never seen in {sweeper.sweeps} sweeps"
    for target, mode, directory_exists in sweeper.auth_files:
        assert target.endswith(" (deleted)") and "/idpwrap-auth-" in target, target
        assert mode == 0o600
        assert not directory_exists
    assert leftovers(world) == []
    assert secret_files(world, secret.encode(), gitea.started) == []


def test_no_leak_after_a_refused_push(world, gitea, tmp_path) -> None:
    secret = "refused-" + os.urandom(8).hex()
    store_in_keyring(world.keyring_file, gitea.host, USERNAME, secret)
    result = world.cli.run(
        "push", "--debug", "--registry", gitea.url, *gitea.tls_options(), "hello:v1",
        env=world.env(),
    )  # fmt: skip
    assert secret not in result.stdout + result.stderr, "the secret is in the output"
    assert result.returncode == 4
    assert leftovers(world) == []
    assert secret_files(world, secret.encode(), gitea.started) == []


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_no_leak_after_a_signal(signum, code, prebuilt, world, fresh_gitea, relay_to, tmp_path):
    gitea = fresh_gitea
    secret = gitea.password
    relay = relay_to(gitea, 512 * 1024)
    env, args, stdin_text = put_source("keyring", world, relay.host, secret, tmp_path)
    process, stdout, stderr = start_push(
        world, gitea, relay.host, args, env, stdin_text, f"leak-{signum.name.lower()}"
    )
    try:
        line = stderr.wait_for_line(lambda text: '"event":"progress"' in text.replace(" ", ""), 30)
        assert line is not None, "no progress within 30 s: " + stderr.text(0)[-1500:].replace(
            secret, "***"
        )
        process.send_signal(signum)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == code
    assert secret not in stdout.text() + stderr.text()
    assert leftovers(world) == []
    assert secret_files(world, secret.encode(), gitea.started) == []
