"""What the credential tests share: a Gitea-shaped token registry, and each credential source
written the way its real owner writes it (auth files, a credential helper, idpbuilder, the
keyring file), all inside the test's private HOME and PATH.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shlex
import shutil
import stat
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from testing.cli import Cli, idpwrap_command
from testing.filekeyring import BACKEND, FILE_VARIABLE, read_entries, write_entries
from testing.paths import ROOT
from testing.processes import Watchdog
from testing.registry import distribution

USERNAME = "giteaAdmin"
OTHER_USERNAME = "Bob"  # owns the namespace "bob"
IDPBUILDER_HOST = "gitea.cnoe.localtest.me"


@dataclass
class GiteaRegistry:
    """docker-registry with ``auth: token`` and our Gitea-shaped token server."""

    info: distribution.Registry
    read_only_token: str  # giteaAdmin's token that may pull but not push
    other_password: str  # Bob's
    refresh_token: str  # giteaAdmin's OAuth2 refresh token (an auth file's identitytoken)
    started: float
    watchdogs: list[Watchdog] = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.info.host

    @property
    def url(self) -> str:
        return self.info.url

    @property
    def port(self) -> int:
        return self.info.port

    @property
    def ca_file(self) -> str:
        return self.info.ca_file

    @property
    def password(self) -> str:
        return self.info.password

    @property
    def token_url(self) -> str:
        return self.info.token_url

    def tls_options(self) -> list[str]:
        return ["--ca-file", self.ca_file]

    def stop(self) -> None:
        try:
            self.info.stop()
        finally:
            for watchdog in self.watchdogs:
                watchdog.release()


def start_gitea_registry(directory: Path) -> GiteaRegistry:
    started = time.time() - 2
    read_only, other = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    refresh = secrets.token_urlsafe(18)
    info = distribution.start(
        directory,
        USERNAME,
        token=True,
        token_users=[
            {"username": USERNAME, "password": read_only, "actions": ["pull"]},
            {"username": OTHER_USERNAME, "password": other, "actions": ["pull", "push"]},
            {
                "username": USERNAME,
                "password": secrets.token_urlsafe(18),
                "actions": ["pull", "push"],
                "refresh_token": refresh,
            },
        ],
    )
    (directory / "registry.json").unlink(missing_ok=True)  # it holds the password
    return GiteaRegistry(
        info, read_only, other, refresh, started, [Watchdog(info.pid), Watchdog(info.token_pid)]
    )


# -- the sources -------------------------------------------------------------------------------


def basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def write_json(path: Path, content: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    path.chmod(0o600)
    return path


def auth_json(key: str, username: str, password: str) -> dict:
    return {"auths": {key: {"auth": basic(username, password)}}}


def python_header() -> str:
    """The first lines of a script that this test run's Python runs. A ``#!`` line ends its
    program at the first space, so from a checkout whose path has one (``/home/me/my
    projects/idpwrap``) /bin/sh execs Python instead, as pip's launchers do: the second line is
    a command to sh and the start of a string to Python."""
    if not any(character.isspace() for character in sys.executable):
        return f"#!{sys.executable}\n"
    return "#!/bin/sh\n" + f"'''exec' {shlex.quote(sys.executable)} \"$0\" \"$@\"\n" + "' '''\n"


def write_executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o700)
    return path


def write_credential_helper(
    bin_dir: Path, name: str, answers: dict[str, tuple[str, str]], log: Path | None = None
) -> Path:
    """A real ``docker-credential-NAME`` on PATH: ``get`` reads the registry from stdin and
    prints docker's JSON for it, or "credentials not found in native keychain" and exit 1.
    ``log`` records the registries it was asked about."""
    table = {host: {"Username": user, "Secret": secret} for host, (user, secret) in answers.items()}
    script = f"""\
        import json, sys
        TABLE = {json.dumps(table)!r}
        if sys.argv[1:] != ["get"]:
            sys.exit("only get")
        host = sys.stdin.read().strip()
        if {str(log) if log else ""!r}:
            with open({str(log) if log else ""!r}, "a") as handle:
                handle.write(host + "\\n")
        table = json.loads(TABLE)
        if host not in table:
            print("credentials not found in native keychain")
            sys.exit(1)
        print(json.dumps({{"ServerURL": host, **table[host]}}))
        """
    path = bin_dir / f"docker-credential-{name}"
    return write_executable(path, python_header() + textwrap.dedent(script))


def write_idpbuilder(bin_dir: Path, output: object, exit_code: int = 0) -> Path:
    """A real ``idpbuilder`` on PATH that prints ``output`` for ``get secrets -p gitea -o json``."""
    script = f"""\
        import sys
        if sys.argv[1:] != ["get", "secrets", "-p", "gitea", "-o", "json"]:
            sys.exit("unexpected arguments: " + " ".join(sys.argv[1:]))
        if {exit_code}:
            sys.stderr.write("Error: cluster unreachable\\n")
            sys.exit({exit_code})
        print({json.dumps(output)!r})
        """
    return write_executable(bin_dir / "idpbuilder", python_header() + textwrap.dedent(script))


def store_in_keyring(keyring_file: Path, host: str, username: str, password: str) -> None:
    """What ``idpwrap login`` stores, written directly (service ``idpwrap:HOST``)."""
    entries = read_entries(keyring_file)
    entries[f"idpwrap:{host}"] = {"idpwrap:username": username, username: password}
    write_entries(keyring_file, entries)


@dataclass
class CredentialWorld:
    """A Cli with a private PATH directory (helpers, idpbuilder) and a file keyring."""

    cli: Cli
    bin_dir: Path
    keyring_file: Path

    @property
    def home(self) -> Path:
        return self.cli.home

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH') or os.defpath}",
            "PYTHONPATH": str(ROOT),
            "PYTHON_KEYRING_BACKEND": BACKEND,
            FILE_VARIABLE: str(self.keyring_file),
        }
        env.update(extra)
        return env

    def keyring_entries(self) -> dict[str, dict[str, str]]:
        return read_entries(self.keyring_file)


def make_world(cli: Cli, base: Path) -> CredentialWorld:
    bin_dir = base / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    return CredentialWorld(cli, bin_dir, base / "keyring.json")


def unshare_command(hosts_file: Path) -> list[str] | None:
    """idpwrap in a private mount namespace whose /etc/hosts maps idpbuilder's Gitea name to
    127.0.0.1 (as public DNS does for *.localtest.me), without touching the real /etc/hosts.
    None where that is not possible (not root, no unshare)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return None
    hosts_file.write_text(f"127.0.0.1 localhost {IDPBUILDER_HOST}\n")
    wrapper = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", wrapper, str(hosts_file), *idpwrap_command()]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)
