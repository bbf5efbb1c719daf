#!/usr/bin/env python3
"""A throwaway CNCF distribution registry on 127.0.0.1 with TLS and htpasswd auth.

Used by the test fixtures, scripts/demo and scripts/bench. Standard library only, so it runs
before the package is installed. As a command:

    localregistry.py start DIR [--user U] [--plain-http] [--token]  # prints its facts as JSON
    localregistry.py start --gitea DIR [--body-limit BYTES]  # Gitea 1.24.3 as idpbuilder runs it
    localregistry.py stop DIR

With ``--gitea`` the registry answers as idpbuilder's Gitea behind ingress-nginx (see
gitearegistry.py, which models each answer on Gitea's source).

With ``--token`` (``start(..., token=True)``) it is shaped like Gitea's registry: docker-registry
runs with ``auth: token`` and a token server of ours (``localregistry.py token-server``, a
separate process) answers ``GET /v2/token`` with HTTP Basic in and ``{"token": JWT}`` out,
granting push and pull only in the user's own lowercase namespace. The token server also
answers ``GET /v2/`` exactly as Gitea does: ``401`` with
``WWW-Authenticate: Bearer realm=".../v2/token",service="container_registry",scope="*"``, and
``200`` for a token it issued. ``POST /v2/token`` with ``grant_type=refresh_token`` trades a
user's ``refresh_token`` (an auth file's ``identitytoken``) for ``{"access_token": JWT}``, as
containers/image asks. JWTs are signed RS256 with ``openssl dgst`` and name their key
by its libtrust ``kid``; the signing certificate is the registry's ``rootcertbundle``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
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
TOKEN_SERVICE = "container_registry"  # what Gitea calls its registry service
TOKEN_ISSUER = "idpwrap-throwaway-token-issuer"
TOKEN_LIFETIME_SECONDS = 300


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost signed by it.

    A registry started again in the same directory keeps them, as a restarted registry keeps
    its certificate: clients that trusted it go on trusting it.
    """
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    if ca_crt.exists() and crt.exists() and key.exists():
        return ca_crt, crt, key
    ext = directory / "server.ext"
    # What Python 3.13's VERIFY_X509_STRICT and OpenSSL 3.5 ask of a CA and a leaf: a CA
    # marked critical with keyCertSign, a leaf naming its issuer's key.
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:gitea.cnoe.localtest.me\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
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
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
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
    storage: Path,
    port: int,
    htpasswd: Path | None,
    tls: tuple[Path, Path] | None,
    token: tuple[str, Path] | None = None,
) -> str:
    """The registry's YAML; ``token`` is (realm URL, signing certificate) for ``auth: token``."""
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


# -- a Gitea-shaped token server -----------------------------------------------------------------


def make_signing_key(directory: Path) -> tuple[Path, Path, str]:
    """A throwaway RSA key and self-signed certificate for signing tokens, and its libtrust kid."""
    key, crt = directory / "token-signing.key", directory / "token-signing.crt"
    quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=idpwrap throwaway token signer", "-keyout", str(key), "-out", str(crt)],
        **quiet,
    )  # fmt: skip
    public_pem = subprocess.run(
        ["openssl", "x509", "-in", str(crt), "-pubkey", "-noout"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    public_der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "DER"],
        input=public_pem, check=True, capture_output=True,
    ).stdout  # fmt: skip
    return key, crt, libtrust_key_id(public_der)


def libtrust_key_id(public_der: bytes) -> str:
    """distribution's key id: SHA-256 of the DER public key, 30 bytes, base32, 12 groups of 4."""
    encoded = base64.b32encode(hashlib.sha256(public_der).digest()[:30]).decode()
    return ":".join(encoded[index : index + 4] for index in range(0, 48, 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(claims: dict, key: Path, kid: str) -> str:
    header = {"typ": "JWT", "alg": "RS256", "kid": kid}
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(key)],
        input=signing_input.encode(), check=True, capture_output=True,
    ).stdout  # fmt: skip
    return f"{signing_input}.{_b64url(signature)}"


def granted_actions(user: dict | None, scope: str) -> dict | None:
    """One ``repository:NAME:ACTIONS`` scope, cut down to what ``user`` may do: push and pull in
    their own lowercase namespace, within the actions their secret allows; nothing elsewhere."""
    parts = scope.split(":")
    if len(parts) < 3 or parts[0] != "repository":
        return None
    name, requested = ":".join(parts[1:-1]), parts[-1].split(",")
    allowed: set[str] = set()
    if user is not None and name.split("/", 1)[0] == user["username"].lower():
        allowed = set(user["actions"])
    actions = [action for action in requested if action in allowed]
    return {"type": "repository", "name": name, "actions": actions}


def serve_tokens(config: dict) -> None:
    """The token server's main loop (``localregistry.py token-server``, config on stdin)."""
    import http.server
    import threading
    import urllib.parse

    # [{"username", "password", "actions": ["pull", "push"], "refresh_token" (optional)}]
    users = config["users"]
    key, kid, realm = Path(config["key"]), config["kid"], config["realm"]
    issued: set[str] = set()
    lock = threading.Lock()

    def authenticate(header: str) -> tuple[bool, dict | None]:
        """(acceptable, user): no header is an anonymous request; a wrong secret is refused."""
        if not header:
            return True, None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False, None
        try:
            username, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False, None
        for user in users:
            if user["username"] == username and secrets.compare_digest(
                user["password"].encode(), password.encode()
            ):
                return True, user
        return False, None

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass  # a request line may carry an account name; the log stays quiet

        def reply(self, status: int, body: dict, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/v2/token":
                self.token(urllib.parse.parse_qs(url.query))
            elif url.path == "/v2/":
                self.ping()
            else:
                self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": "not found"}]})

        def do_POST(self) -> None:
            """OAuth2 as containers/image speaks it for an auth file's ``identitytoken``:
            ``grant_type=refresh_token`` with the token in a form, ``{"access_token": ...}`` out."""
            url = urllib.parse.urlsplit(self.path)
            form = urllib.parse.parse_qs(self.read_body().decode())
            refresh = form.get("refresh_token", [""])[0]
            user = next((u for u in users if refresh and u.get("refresh_token") == refresh), None)
            if url.path != "/v2/token" or form.get("grant_type") != ["refresh_token"] or not user:
                self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid"}]})
                return
            scopes = [scope for value in form.get("scope", []) for scope in value.split(" ")]
            self.reply(200, {"access_token": self.issue(user, scopes, form)})

        def read_body(self) -> bytes:
            """The request body; Go's client (skopeo) sends its form chunked."""
            if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()  # the CRLF after each chunk

        def issue(self, user: dict | None, scopes: list[str], query: dict) -> str:
            access = [
                grant
                for scope in scopes
                for grant in [granted_actions(user, scope)]
                if grant is not None
            ]
            now = int(time.time())
            claims = {
                "iss": TOKEN_ISSUER,
                "sub": user["username"] if user else "",
                "aud": query.get("service", [TOKEN_SERVICE])[0],
                "exp": now + TOKEN_LIFETIME_SECONDS,
                "nbf": now - 10,
                "iat": now,
                "jti": secrets.token_hex(16),
                "access": access,
            }
            token = sign_jwt(claims, key, kid)
            with lock:
                issued.add(token)
            return token

        def ping(self) -> None:
            scheme, _, token = self.headers.get("Authorization", "").partition(" ")
            with lock:
                known = scheme.lower() == "bearer" and token in issued
            if known:
                self.reply(200, {})
                return
            challenge = f'Bearer realm="{realm}",service="{TOKEN_SERVICE}",scope="*"'
            self.reply(
                401,
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                {"WWW-Authenticate": challenge},
            )

        def token(self, query: dict[str, list[str]]) -> None:
            acceptable, user = authenticate(self.headers.get("Authorization", ""))
            if not acceptable:
                self.reply(
                    401,
                    {"errors": [{"code": "UNAUTHORIZED", "message": "invalid credentials"}]},
                    {"WWW-Authenticate": 'Basic realm="Gitea Container Registry"'},
                )
                return
            token = self.issue(user, query.get("scope", []), query)
            self.reply(200, {"token": token})

    serve_loopback(Handler, config)


def serve_loopback(handler: type, config: dict) -> None:
    """A helper server's main loop on 127.0.0.1:``config["port"]`` (TLS when ``config`` names a
    certificate); says "ready" on stdout for ``spawn_helper`` and stops on SIGTERM."""
    import http.server

    server = http.server.ThreadingHTTPServer(("127.0.0.1", config["port"]), handler)
    server.daemon_threads = True
    if config.get("tls_cert"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(config["tls_cert"], config["tls_key"])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    server.serve_forever()


def spawn_helper(argv: list[str], config: dict, log: Path, what: str) -> int:
    """A helper server as its own process (``argv``); its config, secrets included, reaches it
    on stdin, never on its command line or in a file. Returns its pid once it is ready."""
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,
        )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(config).encode() + b"\n")
    process.stdin.close()
    ready = process.stdout.readline()
    process.stdout.close()
    if ready.strip() != b"ready":
        stop_pid(process.pid)
        raise RuntimeError(f"{what} did not start: {log.read_text()[-2000:]}")
    return process.pid


def start_token_server(
    directory: Path, users: list[dict], port: int, tls: tuple[Path, Path] | None
) -> tuple[int, str, Path]:
    """The token server as its own process: (pid, base URL, signing certificate).

    The users' secrets reach it on stdin, never on its command line or in a file.
    """
    key, crt, kid = make_signing_key(directory)
    scheme = "https" if tls else "http"
    base = f"{scheme}://127.0.0.1:{port}"
    config = {
        "users": users,
        "key": str(key),
        "kid": kid,
        "realm": f"{base}/v2/token",
        "port": port,
        "tls_cert": str(tls[0]) if tls else "",
        "tls_key": str(tls[1]) if tls else "",
    }
    argv = [sys.executable, os.path.abspath(__file__), "token-server"]
    pid = spawn_helper(argv, config, directory / "token-server.log", "the token server")
    return pid, base, crt


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
    token: bool = False,
    token_users: list[dict] | None = None,
) -> Registry:
    """Start docker-registry in the background on 127.0.0.1 only; return once it answers.

    With ``token``, it is Gitea-shaped (see the module's doc): ``username`` may push to its own
    namespace, and so may each of ``token_users`` (``{"username", "password", "actions"}``,
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
    config.write_text(registry_config(storage, port, htpasswd, tls_pair, token_auth))
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start_parser = sub.add_parser("start")
    start_parser.add_argument("directory", type=Path)
    start_parser.add_argument("--user", default="giteaAdmin")
    start_parser.add_argument("--plain-http", action="store_true")
    start_parser.add_argument("--no-auth", action="store_true")
    start_parser.add_argument(
        "--token", action="store_true", help="Gitea-shaped: auth: token and our token server"
    )
    start_parser.add_argument(
        "--gitea", action="store_true", help="Gitea 1.24.3 behind ingress-nginx (gitearegistry.py)"
    )
    start_parser.add_argument(
        "--body-limit", type=int, default=None, help="with --gitea: the ingress proxy-body-size"
    )
    stop_parser = sub.add_parser("stop")
    stop_parser.add_argument("directory", type=Path)
    sub.add_parser("token-server", help="(internal) serve tokens; JSON config on stdin")
    args = parser.parse_args(argv)
    if args.command == "token-server":
        serve_tokens(json.loads(sys.stdin.readline()))
        return 0
    if args.command == "start" and args.gitea:
        import gitearegistry

        limit = args.body_limit or gitearegistry.DEFAULT_BODY_LIMIT
        facts = gitearegistry.start(args.directory, limit)
        print(json.dumps({key: facts[key] for key in ("url", "host", "ca_file", "pids")}))
        return 0
    if args.command == "start":
        registry = start(
            args.directory,
            args.user,
            tls=not args.plain_http,
            auth=not args.no_auth,
            token=args.token,
        )
        print(json.dumps(asdict(registry)))
        return 0
    facts = json.loads((args.directory / "registry.json").read_text())
    for pid in facts.get("pids", []):  # the Gitea mode: its front and the registry behind
        stop_pid(pid)
    if "pid" in facts:
        stop_pid(facts["pid"])
    if facts.get("token_pid"):
        stop_pid(facts["token_pid"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
