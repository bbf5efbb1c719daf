"""A Gitea-shaped token server for docker-registry's ``auth: token``, as its own process.

It answers ``GET /v2/token`` with HTTP Basic in and ``{"token": JWT}`` out, granting push and pull
only in the user's own lowercase namespace. It also answers ``GET /v2/`` exactly as Gitea does:
``401`` with the challenge
``WWW-Authenticate: Bearer realm=".../v2/token",service="container_registry",scope="*"``,
and ``200`` for a token it issued. ``POST /v2/token`` with ``grant_type=refresh_token`` trades a
user's ``refresh_token`` (an auth file's ``identitytoken``) for ``{"access_token": JWT}``, as
containers/image asks. JWTs are signed RS256 with ``openssl dgst`` and name their key by its
libtrust ``kid``; the signing certificate is the registry's ``rootcertbundle``.

``python -m testing.registry.tokens`` serves, its JSON config (users' secrets included) on stdin.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

from testing.servers import helper_argv, serve_loopback, spawn_helper

TOKEN_SERVICE = "container_registry"  # what Gitea calls its registry service
TOKEN_ISSUER = "idpwrap-throwaway-token-issuer"
TOKEN_LIFETIME_SECONDS = 300


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
    """The token server's main loop (``python -m testing.registry.tokens``, config on stdin)."""
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
    argv = helper_argv("testing.registry.tokens")
    pid = spawn_helper(argv, config, directory / "token-server.log", "the token server")
    return pid, base, crt


if __name__ == "__main__":
    serve_tokens(json.loads(sys.stdin.readline()))
