#!/usr/bin/env python3
"""A throwaway CNCF distribution registry on 127.0.0.1 with TLS and htpasswd auth.

Used by the test fixtures, scripts/demo and scripts/bench. Standard library only, so it runs
before the package is installed. As a command:

    localregistry.py start DIR [--user U] [--plain-http]   # prints the registry's facts as JSON
    localregistry.py stop DIR
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

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

    def stop(self) -> None:
        stop_pid(self.pid)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost signed by it."""
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "server.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=idpwrap throwaway test CA",
            "-keyout",
            str(ca_key),
            "-out",
            str(ca_crt),
        ],
        **quiet,
    )
    subprocess.run(
        [
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(csr),
        ],
        **quiet,
    )
    subprocess.run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca_crt),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            str(ext),
            "-out",
            str(crt),
        ],
        **quiet,
    )
    return ca_crt, crt, key


def write_htpasswd(path: Path, username: str, password: str) -> None:
    # The password goes to htpasswd on stdin (-i), never on its command line.
    result = subprocess.run(
        ["htpasswd", "-niB", username], input=password, capture_output=True, text=True, check=True
    )
    path.write_text(result.stdout)


def registry_config(
    storage: Path, port: int, htpasswd: Path | None, tls: tuple[Path, Path] | None
) -> str:
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
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "  secret: idpwrap-throwaway",
    ]
    if tls:
        lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
    if htpasswd:
        lines += ["auth:", "  htpasswd:", "    realm: idpwrap-test", f"    path: {htpasswd}"]
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
            if not pid_alive(pid):
                raise RuntimeError(
                    f"docker-registry exited at start: {log.read_text()[-2000:]}"
                ) from error
            time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not answer on {url} within {READY_TIMEOUT_SECONDS}s")


def pid_alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def start(
    directory: Path,
    username: str = "giteaAdmin",
    password: str | None = None,
    *,
    tls: bool = True,
    auth: bool = True,
    port: int | None = None,
    storage: Path | None = None,
) -> Registry:
    """Start docker-registry in the background on 127.0.0.1 only; return once it answers."""
    if shutil.which(REGISTRY_BINARY) is None:
        raise RuntimeError("docker-registry is not installed: apt-get install docker-registry")
    directory.mkdir(parents=True, exist_ok=True)
    password = password if password is not None else secrets.token_urlsafe(18)
    port = port or free_port()
    storage = storage or directory / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    htpasswd = None
    if auth:
        htpasswd = directory / "htpasswd"
        write_htpasswd(htpasswd, username, password)
    ca_file = ""
    tls_pair = None
    if tls:
        ca, crt, key = make_certificates(directory)
        ca_file, tls_pair = str(ca), (crt, key)
    config = directory / "config.yml"
    config.write_text(registry_config(storage, port, htpasswd, tls_pair))
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
    )
    (directory / "registry.json").write_text(json.dumps(asdict(registry)))
    (directory / "registry.json").chmod(0o600)
    return registry


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start_parser = sub.add_parser("start")
    start_parser.add_argument("directory", type=Path)
    start_parser.add_argument("--user", default="giteaAdmin")
    start_parser.add_argument("--plain-http", action="store_true")
    start_parser.add_argument("--no-auth", action="store_true")
    stop_parser = sub.add_parser("stop")
    stop_parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    if args.command == "start":
        registry = start(args.directory, args.user, tls=not args.plain_http, auth=not args.no_auth)
        print(json.dumps(asdict(registry)))
        return 0
    facts = json.loads((args.directory / "registry.json").read_text())
    stop_pid(facts["pid"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
