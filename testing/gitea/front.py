"""The front of the Gitea mode: TLS, ingress-nginx's body limit, authentication, routing.

Sources (tag v1.24.3): routers/api/packages/api.go (ContainerRoutes, verifyAuth,
reqPackageAccess), routers/api/packages/container/container.go (apiErrorDefined,
apiUnauthorizedError, Authenticate), services/context/base.go (HTTPError),
services/context/user.go (owner lookup), modules/httplib/url.go (GuessCurrentHostURL).
"""

from __future__ import annotations

import http.client
import http.server
import json
import re
import sys
import urllib.parse
from collections.abc import Callable, Iterator

from testing.gitea.content import Content
from testing.gitea.model import (
    GHOST_ID,
    IMAGE_NAME,
    NGINX_413,
    READ,
    SCOPES_IMPLYING,
    WRITE,
    Gitea,
    sign_token,
)
from testing.servers import serve_loopback


class Refused(Exception):
    """A body over the ingress limit: nginx answered 413 already."""


class Front(Content, http.server.BaseHTTPRequestHandler):
    """One request, answered as Gitea (and the ingress in front of it) would."""

    gitea: Gitea  # set by serve()
    protocol_version = "HTTP/1.1"
    server_version = "idpwrap-gitea-model"

    def log_message(self, format: str, *args: object) -> None:
        pass

    # -- answers --------------------------------------------------------------------------

    def send(
        self, status: int, body: bytes = b"", headers: dict | None = None, close: bool = False
    ) -> None:
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def named_error(
        self, status: int, code: str, message: str = "", extra: dict | None = None
    ) -> None:
        """apiErrorDefined: JSON with an (almost always empty) message."""
        body = json.dumps({"errors": [{"code": code, "message": message}]}) + "\n"
        headers = {
            "Content-Type": "application/json",
            "Docker-Distribution-Api-Version": "registry/2.0",
            **(extra or {}),
        }
        self.send(status, body.encode(), headers)

    def plain(self, status: int, text: str, extra: dict | None = None) -> None:
        """Go's http.Error (Base.HTTPError) and Base.plainTextInternal."""
        headers = {
            "Content-Type": "text/plain; charset=utf-8",
            "X-Content-Type-Options": "nosniff",
            **(extra or {}),
        }
        self.send(status, text.encode(), headers)

    def unauthorized(self) -> None:
        """apiUnauthorizedError: the Bearer challenge, realm from the request."""
        scheme = self.headers.get("X-Forwarded-Proto") or "https"
        realm = f"{scheme}://{self.headers.get('Host', '')}/v2/token"
        challenge = f'Bearer realm="{realm}",service="container_registry",scope="*"'
        self.named_error(401, "UNAUTHORIZED", extra={"WWW-Authenticate": challenge})

    def no_permission(self) -> None:
        # reqPackageAccess: ctx.HTTPError(401, "reqPackageAccess", "user should ...");
        # Base.HTTPError writes its first content argument only.
        self.plain(
            401, "reqPackageAccess\n", {"WWW-Authenticate": 'Basic realm="Gitea Package API"'}
        )

    # -- bodies ---------------------------------------------------------------------------

    def body_chunks(self) -> Iterator[bytes]:
        """The request body in pieces, with the ingress limit applied as nginx does."""
        limit = self.gitea.body_limit
        length = self.headers.get("Content-Length")
        chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
        if length is not None and int(length) > limit:
            self.too_large(int(length), chunked)
        seen = 0
        if chunked:
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                remaining = size
                while remaining:
                    piece = self.rfile.read(min(remaining, 1 << 20))
                    if not piece:
                        return
                    remaining -= len(piece)
                    seen += len(piece)
                    if seen > limit:
                        self.too_large(seen, True, remaining)
                    yield piece
                self.rfile.readline()
        else:
            remaining = int(length or 0)
            while remaining:
                piece = self.rfile.read(min(remaining, 1 << 20))
                if not piece:
                    return
                remaining -= len(piece)
                yield piece

    def too_large(self, size: int, chunked: bool, left_in_chunk: int = 0) -> None:
        self.send(413, NGINX_413, {"Content-Type": "text/html"}, close=True)
        self.wfile.flush()
        # nginx's lingering close: read what the client still sends so that it reads
        # the answer instead of a reset connection.
        self.connection.settimeout(5)
        try:
            while self.rfile.read(1 << 20):
                pass
        except OSError:
            pass
        raise Refused

    def read_body(self, cap: int | None = None) -> bytes:
        data = bytearray()
        for piece in self.body_chunks():
            if cap is None or len(data) <= cap:
                data += piece
        return bytes(data)

    # -- the backend ----------------------------------------------------------------------

    def backend(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, dict, bytes]:
        connection = http.client.HTTPConnection(self.gitea.backend, timeout=120)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
            return response.status, dict(response.getheaders()), data
        finally:
            connection.close()

    def relay(self, status: int, headers: dict, body: bytes, keep: tuple[str, ...]) -> None:
        chosen = {name: value for name, value in headers.items() if name.lower() in keep}
        chosen["Docker-Distribution-Api-Version"] = "registry/2.0"
        if self.command == "HEAD":
            chosen["Content-Length"] = headers.get("Content-Length", "0")
        self.send(status, body, chosen)

    # -- routing --------------------------------------------------------------------------

    def do_GET(self) -> None:
        self.route()

    do_HEAD = do_PUT = do_PATCH = do_DELETE = do_GET

    def do_POST(self) -> None:
        self.route()

    def route(self) -> None:
        try:
            self._route()
        except Refused:
            return
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        self.query = urllib.parse.parse_qs(url.query)
        path = url.path
        ok, doer, scope = self.gitea.authenticate(self.headers.get("Authorization", ""))
        if not ok:
            self.discard_body()
            self.plain(401, "authGroup.Verify\n")  # verifyAuth
            return
        self.doer, self.scope = doer, scope
        if path in ("/v2", "/v2/"):
            self.discard_body()
            if self.command not in ("GET", "HEAD"):
                self.send(405)
            elif doer is None:
                self.unauthorized()
            else:
                self.send(200, b"", {"Docker-Distribution-Api-Version": "registry/2.0"})
            return
        if path == "/v2/token":
            self.discard_body()
            if self.command == "GET":
                self.token()
            elif self.command == "POST":
                self.send(404)  # AuthenticateNotImplemented: no OAuth2 refresh flow
            else:
                self.send(405)
            return
        if path == "/api/v1/user" and self.command == "GET":
            self.discard_body()
            self.api_user()
            return
        if not path.startswith("/v2/"):
            self.discard_body()
            self.plain(404, "Not found.\n")
            return
        self.container(path[len("/v2/") :])

    def api_user(self) -> None:
        """routers/api/v1/api.go: GET /api/v1/user (user.GetAuthenticatedUser) needs a signed-in
        user; a token needs the read:user scope (tokenRequiresScopes), which package tokens lack."""
        basic = self.headers.get("Authorization", "").lower().startswith("basic ")
        if self.doer is None or self.doer["id"] == GHOST_ID or not basic:
            body = {"message": "token is required", "url": self.api_url()}
            self.send(401, json.dumps(body).encode(), {"Content-Type": "application/json"})
        elif self.scope != "all":
            message = (
                "token does not have at least one of required scope(s), required=[read:user],"
                f" token scope={self.scope}"
            )
            body = {"message": message, "url": self.api_url()}
            self.send(403, json.dumps(body).encode(), {"Content-Type": "application/json"})
        else:
            user = {
                "id": self.doer["id"],
                "login": self.doer["name"],
                "is_admin": self.doer["admin"],
            }
            self.send(200, json.dumps(user).encode(), {"Content-Type": "application/json"})

    def api_url(self) -> str:
        return f"https://{self.headers.get('Host', '')}/api/swagger"

    def discard_body(self) -> None:
        for _ in self.body_chunks():
            pass

    def token(self) -> None:
        """container.Authenticate: a JWT for the doer (or the ghost user)."""
        if self.doer is None:
            user_id, scope = GHOST_ID, ""
        else:
            if self.scope not in ("read:package", "write:package", "all"):
                self.unauthorized()
                return
            user_id, scope = self.doer["id"], self.scope
        body = json.dumps({"token": sign_token(self.gitea.secret, user_id, scope)}).encode()
        self.send(200, body, {"Content-Type": "application/json;charset=utf-8"})

    def scope_allows(self, mode: int) -> bool:
        if not self.scope or self.doer is None or self.doer["id"] == GHOST_ID:
            return True
        needed = "write:package" if mode >= WRITE else "read:package"
        return self.scope in SCOPES_IMPLYING[needed]

    def may(self, mode: int) -> bool:
        """reqPackageAccess(mode): token scope first, then the owner's access mode."""
        if not self.scope_allows(mode):
            return False
        return self.gitea.access(self.owner, self.doer) >= mode or bool(
            self.doer and self.doer.get("admin")
        )

    def container(self, rest: str) -> None:
        if self.command == "GET" and rest == "_catalog":
            self.discard_body()
            if self.doer is None:
                self.unauthorized()
                return
            status, headers, body = self.backend("GET", "/v2/_catalog")
            self.relay(status, headers, body, ("content-type",))
            return
        owner_name, _, tail = rest.partition("/")
        match = re.fullmatch(
            r"(?P<image>.+?)/(?:(?P<tags>tags/list)|blobs/uploads/?(?P<uuid>[-.=\w]*)"
            r"|blobs/(?P<digest>[^/]+)|manifests/(?P<reference>[^/]+))",
            tail,
        )
        if self.doer is None:  # ReqContainerAccess
            self.discard_body()
            self.unauthorized()
            return
        owner = self.gitea.owner(owner_name)
        if owner is None:  # UserAssignmentWeb -> ctx.NotFound
            self.discard_body()
            self.plain(404, "Not found.\n")
            return
        self.owner = owner
        self.owner_lower = owner["name"].lower()
        if not self.may(READ):
            self.discard_body()
            self.no_permission()
            return
        if match is None:
            self.discard_body()
            self.send(404, b"404 page not found\n", {"Content-Type": "text/plain"})
            return
        image = match["image"]
        self.image = image
        self.repo = f"{self.owner_lower}/{image}"
        method = self.command
        if match["tags"] is not None and method == "GET":
            self.guarded(READ, self.tag_list)
        elif match["uuid"] is not None:
            self.uploads(match["uuid"])
        elif match["digest"] is not None and method in ("GET", "HEAD", "DELETE"):
            self.guarded(WRITE if method == "DELETE" else READ, self.blob)
        elif match["reference"] is not None and method == "HEAD" and self.refuses_head():
            self.discard_body()
            self.plain(401, "refused by the test's refuse_manifest_head\n")
        elif match["reference"] is not None and method in ("GET", "HEAD", "PUT", "DELETE"):
            self.guarded(WRITE if method in ("PUT", "DELETE") else READ, self.manifest)
        else:
            self.discard_body()
            self.send(405)

    def refuses_head(self) -> bool:
        return self.gitea.refuse_manifest_head

    def name_valid(self) -> bool:
        if IMAGE_NAME.match(self.image):
            return True
        self.discard_body()
        self.named_error(400, "NAME_INVALID")
        return False

    def guarded(self, mode: int, handler: Callable[[], None]) -> None:
        """VerifyImageName, then reqPackageAccess(mode), as the route table orders them."""
        if not self.name_valid():
            return
        if mode >= WRITE and not self.may(WRITE):
            self.discard_body()
            self.no_permission()
            return
        handler()


def serve(config: dict) -> None:
    Front.gitea = Gitea(config)
    Front.gitea.uploads_dir.mkdir(parents=True, exist_ok=True)
    serve_loopback(Front, config)


if __name__ == "__main__":  # python -m testing.gitea.front, its JSON config on stdin
    serve(json.loads(sys.stdin.readline()))
