"""A throwaway CNCF distribution registry (docker-registry) on 127.0.0.1, with TLS and htpasswd
auth, or with ``auth: token`` and our Gitea-shaped token server (testing.registry.tokens).

Used by the test fixtures, scripts/localregistry.py (so scripts/demo) and scripts/bench.
Standard library only, so it runs before the package is installed.
"""

from __future__ import annotations

import json
import secrets
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from testing.registry.certificates import make_certificates, write_htpasswd
from testing.registry.tokens import TOKEN_ISSUER, TOKEN_SERVICE, start_token_server
from testing.servers import free_port, pid_alive, stop_pid

REGISTRY_BINARY = "docker-registry"
READY_TIMEOUT_SECONDS = 20.0


@dataclass
class Registry:
    """What a client needs to know about a running throwaway registry."""

    host: str  # host:port
    url: str
    ca_file: str  # the CA that signed the server certificate; empty for plain HTTP
    username: str
    password: str
    directory: str
    storage: str
    pid: int
    port: int
    token_url: str = ""  # the token server's base URL with --token: GET {token_url}/v2/token
    token_pid: int = 0

    def stop(self) -> None:
        try:
            stop_pid(self.pid)
        finally:
            if self.token_pid:
                stop_pid(self.token_pid)


def registry_config(
    storage: Path,
    port: int,
    htpasswd: Path | None,
    tls: tuple[Path, Path] | None,
    token: tuple[str, Path] | None = None,
    deletes: bool = True,
) -> str:
    """The registry's YAML; ``token`` is (realm URL, signing certificate) for ``auth: token``;
    ``deletes`` False is distribution's default (DELETE answered 405 UNSUPPORTED)."""
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {storage}",
        "  delete:",
        f"    enabled: {'true' if deletes else 'false'}",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "  secret: idpwrap-throwaway",
    ]
    if tls:
        lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
    if htpasswd:
        lines += ["auth:", "  htpasswd:", "    realm: idpwrap-test", f"    path: {htpasswd}"]
    elif token:
        realm, certificate = token
        lines += [
            "auth:",
            "  token:",
            f"    realm: {realm}",
            f"    service: {TOKEN_SERVICE}",
            f"    issuer: {TOKEN_ISSUER}",
            f"    rootcertbundle: {certificate}",
        ]
    return "\n".join(lines) + "\n"


def wait_until_ready(url: str, ca_file: str, pid: int, log: Path) -> None:
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/v2/", timeout=1, context=context)
            return
        except urllib.error.HTTPError:
            return  # 401 means it is up and asking for credentials
        except OSError as error:
            if isinstance(getattr(error, "reason", None), ssl.SSLCertVerificationError):
                return  # it answers TLS: whether a client trusts it is that client's test
            if not pid_alive(pid):
                raise RuntimeError(
                    f"docker-registry exited at start: {log.read_text()[-2000:]}"
                ) from error
            time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not answer on {url} within {READY_TIMEOUT_SECONDS}s")


def start(
    directory: Path,
    username: str = "giteaAdmin",
    password: str | None = None,
    *,
    tls: bool = True,
    auth: bool = True,
    port: int | None = None,
    storage: Path | None = None,
    token: bool = False,
    token_users: list[dict] | None = None,
    deletes: bool = True,
) -> Registry:
    """Start docker-registry in the background on 127.0.0.1 only; return once it answers.

    With ``token``, it is Gitea-shaped (see testing.registry.tokens): ``username`` may push to
    its own namespace, and so may each of ``token_users`` (``{"username", "password", "actions"}``,
    actions a subset of ``["pull", "push"]``, e.g. a read-only token).
    """
    if shutil.which(REGISTRY_BINARY) is None:
        raise RuntimeError("docker-registry is not installed: apt-get install docker-registry")
    directory.mkdir(parents=True, exist_ok=True)
    password = password if password is not None else secrets.token_urlsafe(18)
    port = port or free_port()
    storage = storage or directory / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    htpasswd = None
    if auth and not token:
        htpasswd = directory / "htpasswd"
        write_htpasswd(htpasswd, username, password)
    ca_file = ""
    tls_pair = None
    if tls:
        ca, crt, key = make_certificates(directory)
        ca_file, tls_pair = str(ca), (crt, key)
    token_pid, token_url, token_auth = 0, "", None
    if token:
        users = [{"username": username, "password": password, "actions": ["pull", "push"]}]
        token_pid, token_url, signing_cert = start_token_server(
            directory, users + list(token_users or []), free_port(), tls_pair
        )
        token_auth = (f"{token_url}/v2/token", signing_cert)
    config = directory / "config.yml"
    config.write_text(registry_config(storage, port, htpasswd, tls_pair, token_auth, deletes))
    log = directory / "registry.log"
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )
    scheme = "https" if tls else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        wait_until_ready(url, ca_file, process.pid, log)
    except BaseException:
        stop_pid(process.pid)
        if token_pid:
            stop_pid(token_pid)
        raise
    registry = Registry(
        host=f"127.0.0.1:{port}",
        url=url,
        ca_file=ca_file,
        username=username if auth else "",
        password=password if auth else "",
        directory=str(directory),
        storage=str(storage),
        pid=process.pid,
        port=port,
        token_url=token_url,
        token_pid=token_pid,
    )
    (directory / "registry.json").write_text(json.dumps(asdict(registry)))
    (directory / "registry.json").chmod(0o600)
    return registry
