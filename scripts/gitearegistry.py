#!/usr/bin/env python3
"""A registry front that answers as idpbuilder's Gitea 1.24.3 behind ingress-nginx does.

``localregistry.py start --gitea DIR [--body-limit BYTES]`` starts it; standard library only.
No Gitea binary can be had on these machines, so its answers are modelled on Gitea's source
(tag v1.24.3; each rule below names its file). One TLS origin on 127.0.0.1 answers ``/v2/``,
``/v2/token`` and the OCI API; CNCF distribution on another loopback port (plain HTTP, no auth
of its own) keeps blobs and manifests, and the front forwards to it after its own checks.

- routers/api/packages/api.go (ContainerRoutes, reqPackageAccess, verifyAuth): the route
  table, GET-only ``/v2/token`` (POST is 404), Basic accepted on every endpoint, per-owner
  permission at request time with site admins allowed everywhere, the plain-text 401s.
- routers/api/packages/container/container.go: the challenge, the token answer, name and tag
  patterns, uploads (monolithic, chunked with Content-Range, mount fallback), manifest size.
- routers/api/packages/container/manifest.go: config and layers in the same image with the
  stated sizes, index children present, nested index invalid, tags stored lowercased.
- routers/api/packages/container/errors.go: the error codes and their statuses.
- services/packages/auth.go: the HS256 JWT of 24 h carrying user id and token scope.
- services/auth/basic.go: user:password, user:token, token as user name; password logins have
  the ``all`` scope (GetAccessScope).
- services/context/package.go, services/context/user.go, services/context/base.go: owner
  lookup (404 "Not found."), access modes for users and orgs, ``HTTPError`` bodies.
- modules/httplib/url.go (GuessCurrentHostURL): the realm from X-Forwarded-Proto and Host.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

DEFAULT_BODY_LIMIT = 1024 * 1024 * 1024  # idpbuilder's proxy-body-size: 1024m
MAX_MANIFEST_SIZE = 10 * 1024 * 1024
TOKEN_LIFETIME_SECONDS = 24 * 3600
ORG = "platform"
GHOST_ID = -1

IMAGE_NAME = re.compile(r"\A[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*\Z")
REFERENCE = re.compile(r"\A[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}\Z")
DIGEST = re.compile(r"\Asha256:[a-f0-9]{64}\Z")
IMAGE_MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
IMAGE_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
# ingress-nginx's answer to a body over proxy-body-size (nginx's built-in error page).
NGINX_413 = (
    b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
    b"<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
# Access modes of models/perm: none < read < write < admin < owner.
NONE, READ, WRITE, OWNER = 0, 1, 2, 4
SCOPES_IMPLYING = {
    "read:package": {"read:package", "write:package", "all"},
    "write:package": {"write:package", "all"},
}


def make_users() -> dict[str, dict]:
    """giteaAdmin (site admin), developer (write member of org platform) and outsider."""
    users = {}
    for number, name in enumerate(("giteaAdmin", "developer", "outsider"), start=1):
        users[name] = {
            "id": number,
            "admin": name == "giteaAdmin",
            "password": secrets.token_urlsafe(18),
            "token": secrets.token_hex(20),  # Gitea's tokens: 40 hex characters
            "read_token": secrets.token_hex(20),
        }
    return users


# -- tokens (services/packages/auth.go) ----------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(secret: bytes, user_id: int, scope: str, now: float | None = None) -> str:
    now = int(now if now is not None else time.time())
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"exp": now + TOKEN_LIFETIME_SECONDS, "nbf": now, "UserID": user_id, "Scope": scope}
    signing_input = f"{header}.{_b64url(json.dumps(claims).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(mac)}"


def parse_token(secret: bytes, token: str) -> dict | None:
    try:
        header, claims, mac = token.split(".")
        if json.loads(_unb64url(header)).get("alg") != "HS256":
            return None
        expected = hmac.new(secret, f"{header}.{claims}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64url(mac)):
            return None
        body = json.loads(_unb64url(claims))
    except (ValueError, TypeError, AttributeError):
        return None
    now = time.time()
    if body.get("exp", 0) < now or body.get("nbf", 0) > now + 1:
        return None
    return body


# -- the front -----------------------------------------------------------------------------------


class Gitea:
    """Gitea's state: users, the org, the token secret, the uploads in progress."""

    def __init__(self, config: dict) -> None:
        self.users = config["users"]
        self.secret = config["secret"].encode()
        self.backend = config["backend"]  # host:port of distribution, plain HTTP
        self.body_limit = int(config["body_limit"])
        self.uploads_dir = Path(config["uploads"])
        self.by_id = {user["id"]: {"name": name, **user} for name, user in self.users.items()}
        self.org_writers = {self.users["developer"]["id"]}
        self.uploads: dict[str, int] = {}  # upload id -> bytes received
        self.lock = threading.Lock()

    def user_by_name(self, name: str) -> dict | None:
        for user_name, user in self.users.items():
            if user_name.lower() == name.lower():
                return {"name": user_name, **user}
        return None

    def authenticate(self, header: str) -> tuple[bool, dict | None, str]:
        """(ok, doer, scope) as verifyAuth's auth.Basic then container.Auth decide."""
        if not header:
            return True, None, ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                name, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return False, None, ""
            token = name if password in ("", "x-oauth-basic") else password
            for user in self.by_id.values():
                if token and token == user["token"]:
                    return True, user, "write:package"
                if token and token == user["read_token"]:
                    return True, user, "read:package"
            user = self.user_by_name(name)
            if user and password and hmac.compare_digest(user["password"], password):
                return True, user, "all"  # GetAccessScope: a password login has scope all
            return False, None, ""
        claims = parse_token(self.secret, value)
        if claims is None:
            return False, None, ""
        if claims.get("UserID") == GHOST_ID:
            return True, {"name": "Ghost", "id": GHOST_ID, "admin": False}, claims.get("Scope", "")
        user = self.by_id.get(claims.get("UserID"))
        return (user is not None), user, claims.get("Scope", "")

    def owner(self, name: str) -> dict | None:
        if name.lower() == ORG:
            return {"name": ORG, "id": 100, "org": True}
        user = self.user_by_name(name)
        return {**user, "org": False} if user else None

    def access(self, owner: dict, doer: dict | None) -> int:
        """determineAccessMode: public users and orgs are readable by everyone."""
        if owner["org"]:
            if doer and doer["id"] in self.org_writers:
                return WRITE
            return READ
        if doer and doer["id"] == owner["id"]:
            return OWNER
        return READ


def serve(config: dict) -> None:
    gitea = Gitea(config)
    gitea.uploads_dir.mkdir(parents=True, exist_ok=True)

    class Refused(Exception):
        """A body over the ingress limit: nginx answered 413 already."""

    class Handler(http.server.BaseHTTPRequestHandler):
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

        def named_error(self, status: int, code: str, message: str = "", extra: dict | None = None):
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

        def body_chunks(self):
            """The request body in pieces, with the ingress limit applied as nginx does."""
            limit = gitea.body_limit
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
            connection = http.client.HTTPConnection(gitea.backend, timeout=120)
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
            ok, doer, scope = gitea.authenticate(self.headers.get("Authorization", ""))
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
            if not path.startswith("/v2/"):
                self.discard_body()
                self.plain(404, "Not found.\n")
                return
            self.container(path[len("/v2/") :])

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
            body = json.dumps({"token": sign_token(gitea.secret, user_id, scope)}).encode()
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
            return gitea.access(self.owner, self.doer) >= mode or bool(
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
            owner = gitea.owner(owner_name)
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
            elif match["reference"] is not None and method in ("GET", "HEAD", "PUT", "DELETE"):
                self.guarded(WRITE if method in ("PUT", "DELETE") else READ, self.manifest)
            else:
                self.discard_body()
                self.send(405)

        def name_valid(self) -> bool:
            if IMAGE_NAME.match(self.image):
                return True
            self.discard_body()
            self.named_error(400, "NAME_INVALID")
            return False

        def guarded(self, mode: int, handler) -> None:
            """VerifyImageName, then reqPackageAccess(mode), as the route table orders them."""
            if not self.name_valid():
                return
            if mode >= WRITE and not self.may(WRITE):
                self.discard_body()
                self.no_permission()
                return
            handler()

        # -- uploads (InitiateUploadBlob, UploadBlob, EndUploadBlob, ...) ----------------------

        def uploads(self, uuid: str) -> None:
            # POST and the upload routes check write access before the name.
            if not self.may(WRITE):
                self.discard_body()
                self.no_permission()
                return
            if not self.name_valid():
                return
            if self.command == "POST" and not uuid:
                self.initiate()
            elif uuid and self.command in ("GET", "PATCH", "PUT", "DELETE"):
                self.upload_step(uuid)
            else:
                self.discard_body()
                self.send(405)

        def upload_location(self, uuid: str) -> str:
            return f"/v2/{self.repo}/blobs/uploads/{uuid}"

        def blob_exists(self, repo: str, digest: str) -> int | None:
            status, headers, _ = self.backend("HEAD", f"/v2/{repo}/blobs/{digest}")
            return int(headers.get("Content-Length", "0")) if status == 200 else None

        def initiate(self) -> None:
            mount = self.query.get("mount", [""])[0].strip()
            source = self.query.get("from", [""])[0].strip()
            if mount and source and DIGEST.match(mount) and self.can_read_repo(source):
                if self.blob_exists(source, mount) is not None:
                    status, _, _ = self.backend(
                        "POST",
                        f"/v2/{self.repo}/blobs/uploads/?"
                        + urllib.parse.urlencode({"mount": mount, "from": source}),
                    )
                    if status == 201:
                        self.discard_body()
                        self.created(f"/v2/{self.repo}/blobs/{mount}", mount)
                        return
            digest = self.query.get("digest", [""])[0].strip()
            if digest:
                data = self.read_body()
                if digest != "sha256:" + hashlib.sha256(data).hexdigest():
                    self.named_error(400, "DIGEST_INVALID")
                    return
                self.store_blob(digest, data)
                return
            self.discard_body()
            uuid = secrets.token_hex(16)
            with gitea.lock:
                gitea.uploads[uuid] = 0
            (gitea.uploads_dir / uuid).write_bytes(b"")
            self.send(
                202,
                b"",
                {
                    "Location": self.upload_location(uuid),
                    "Docker-Upload-Uuid": uuid,
                    "Docker-Distribution-Api-Version": "registry/2.0",
                },
            )

        def can_read_repo(self, repo: str) -> bool:
            owner = gitea.owner(repo.split("/", 1)[0])
            if owner is None:
                return False
            return gitea.access(owner, self.doer) >= READ or bool(self.doer.get("admin"))

        def created(self, location: str, digest: str) -> None:
            self.send(
                201,
                b"",
                {
                    "Location": location,
                    "Docker-Content-Digest": digest,
                    "ETag": f'"{digest}"',
                    "Docker-Distribution-Api-Version": "registry/2.0",
                },
            )

        def store_blob(self, digest: str, data: bytes) -> None:
            """Hand a checked blob to distribution: POST, then PUT ?digest= with the body."""
            status, headers, _ = self.backend("POST", f"/v2/{self.repo}/blobs/uploads/")
            location = urllib.parse.urlsplit(headers.get("Location", ""))
            target = f"{location.path}?{location.query}&digest={urllib.parse.quote(digest)}"
            status, _, answer = self.backend(
                "PUT", target, data, {"Content-Type": "application/octet-stream"}
            )
            if status != 201:
                self.plain(500, f"storing the blob failed: {answer[:200]!r}\n")
                return
            self.created(f"/v2/{self.repo}/blobs/{digest}", digest)

        def upload_step(self, uuid: str) -> None:
            with gitea.lock:
                size = gitea.uploads.get(uuid)
            if size is None:
                self.discard_body()
                self.named_error(404, "BLOB_UPLOAD_UNKNOWN")
                return
            part = gitea.uploads_dir / uuid
            if self.command == "DELETE":
                self.discard_body()
                self.forget(uuid)
                self.send(204, b"", {"Docker-Distribution-Api-Version": "registry/2.0"})
                return
            if self.command == "GET":
                self.discard_body()
                self.progress(204, uuid, size)
                return
            if self.command == "PATCH":
                content_range = self.headers.get("Content-Range", "")
                if content_range:
                    found = re.match(r"\s*(\d+)-(\d+)", content_range)
                    if not found:
                        self.discard_body()
                        self.named_error(400, "BLOB_UPLOAD_INVALID")
                        return
                    if int(found[1]) != size:
                        self.discard_body()
                        self.named_error(416, "BLOB_UPLOAD_INVALID")
                        return
                elif size != 0:
                    self.discard_body()
                    self.named_error(
                        400,
                        "BLOB_UPLOAD_INVALID",
                        "Stream uploads after first write are not allowed",
                    )
                    return
                size = self.append(uuid, part)
                self.progress(202, uuid, size)
                return
            # PUT ?digest=: EndUploadBlob
            digest = self.query.get("digest", [""])[0].strip()
            if not digest:
                self.discard_body()
                self.named_error(400, "DIGEST_INVALID")
                return
            self.append(uuid, part)
            data = part.read_bytes()
            if digest != "sha256:" + hashlib.sha256(data).hexdigest():
                self.named_error(400, "DIGEST_INVALID")
                return
            self.forget(uuid)
            self.store_blob(digest, data)

        def append(self, uuid: str, part: Path) -> int:
            with part.open("ab") as handle:
                for piece in self.body_chunks():
                    handle.write(piece)
                size = handle.tell()
            with gitea.lock:
                gitea.uploads[uuid] = size
            return size

        def forget(self, uuid: str) -> None:
            with gitea.lock:
                gitea.uploads.pop(uuid, None)
            (gitea.uploads_dir / uuid).unlink(missing_ok=True)

        def progress(self, status: int, uuid: str, size: int) -> None:
            headers = {
                "Location": self.upload_location(uuid),
                "Docker-Upload-Uuid": uuid,
                "Docker-Distribution-Api-Version": "registry/2.0",
            }
            if size > 0:
                headers["Range"] = f"0-{size - 1}"
            self.send(status, b"", headers)

        # -- blobs, manifests, tags -----------------------------------------------------------

        def blob(self) -> None:
            self.discard_body()
            digest = urllib.parse.unquote(self.path_tail())
            if not DIGEST.match(digest):
                self.named_error(404, "BLOB_UNKNOWN")
                return
            status, headers, body = self.backend(self.command, f"/v2/{self.repo}/blobs/{digest}")
            if status >= 400:
                self.named_error(404, "BLOB_UNKNOWN")
                return
            self.relay(
                status, headers, body, ("content-type", "content-length", "docker-content-digest")
            )

        def path_tail(self) -> str:
            return urllib.parse.urlsplit(self.path).path.rsplit("/", 1)[-1]

        def reference(self) -> str | None:
            """A digest as given, a tag lowercased (models/packages/container/search.go)."""
            reference = urllib.parse.unquote(self.path_tail())
            if DIGEST.match(reference):
                return reference
            if REFERENCE.match(reference):
                return reference.lower()
            return None

        def manifest(self) -> None:
            if self.command == "PUT":
                self.put_manifest()
                return
            self.discard_body()
            reference = self.reference()
            if reference is None:
                self.named_error(404, "MANIFEST_UNKNOWN")
                return
            # Gitea serves a manifest whatever the Accept header says; distribution hides an
            # OCI manifest from a client that does not name its type.
            status, headers, body = self.backend(
                self.command,
                f"/v2/{self.repo}/manifests/{reference}",
                headers={"Accept": ", ".join(IMAGE_MANIFEST_TYPES + IMAGE_INDEX_TYPES)},
            )
            if status >= 400:
                self.named_error(404, "MANIFEST_UNKNOWN")
                return
            if self.command == "DELETE":
                self.send(202, b"", {"Docker-Distribution-Api-Version": "registry/2.0"})
                return
            self.relay(
                status, headers, body, ("content-type", "content-length", "docker-content-digest")
            )

        def put_manifest(self) -> None:
            reference = urllib.parse.unquote(self.path_tail())
            tagged = not DIGEST.match(reference)
            if tagged and not REFERENCE.match(reference):
                self.discard_body()
                self.named_error(400, "MANIFEST_INVALID", "Tag is invalid")
                return
            data = self.read_body(cap=MAX_MANIFEST_SIZE)
            if len(data) > MAX_MANIFEST_SIZE:
                self.named_error(413, "MANIFEST_INVALID", "Manifest exceeds maximum size")
                return
            try:
                manifest = json.loads(data)
            except ValueError:
                self.plain(500, "Internal Server Error\n")
                return
            if manifest.get("schemaVersion") != 2:
                self.named_error(501, "UNSUPPORTED", "Schema version is not supported")
                return
            media_type = self.headers.get("Content-Type", "")
            if not media_type.startswith(("application/vnd.docker.", "application/vnd.oci.")):
                media_type = manifest.get("mediaType", "")
                if not media_type.startswith(("application/vnd.docker.", "application/vnd.oci.")):
                    self.named_error(400, "MANIFEST_INVALID", "MediaType not recognized")
                    return
            media_type = media_type.lower()
            if media_type in IMAGE_MANIFEST_TYPES:
                problem = self.check_image(manifest)
            elif media_type in IMAGE_INDEX_TYPES:
                problem = self.check_index(manifest)
            else:
                problem = (400, "MANIFEST_INVALID")
            if problem:
                self.named_error(*problem)
                return
            stored = reference.lower() if tagged else reference
            status, headers, answer = self.backend(
                "PUT", f"/v2/{self.repo}/manifests/{stored}", data, {"Content-Type": media_type}
            )
            if status != 201:
                self.plain(500, f"storing the manifest failed: {answer[:300]!r}\n")
                return
            digest = headers.get("Docker-Content-Digest", "")
            self.send(
                201,
                b"",
                {
                    "Location": f"/v2/{self.repo}/manifests/{reference}",
                    "Docker-Content-Digest": digest,
                    "ETag": f'"{digest}"',
                    "Docker-Distribution-Api-Version": "registry/2.0",
                },
            )

        def check_image(self, manifest: dict) -> tuple[int, str] | None:
            """processImageManifest: config and layers in this image with the stated sizes."""
            descriptors = [manifest.get("config") or {}, *(manifest.get("layers") or [])]
            for descriptor in descriptors:
                digest = str(descriptor.get("digest", ""))
                size = self.blob_exists(self.repo, digest) if DIGEST.match(digest) else None
                if size is None:
                    return 404, "BLOB_UNKNOWN"
                if size != descriptor.get("size"):
                    return 400, "SIZE_INVALID"
            return None

        def check_index(self, index: dict) -> tuple[int, str] | None:
            """processImageManifestIndex: children are image manifests already in this image."""
            for child in index.get("manifests") or []:
                if str(child.get("mediaType", "")).lower() not in IMAGE_MANIFEST_TYPES:
                    return 400, "MANIFEST_INVALID"
                digest = str(child.get("digest", ""))
                status, _, _ = self.backend(
                    "HEAD",
                    f"/v2/{self.repo}/manifests/{digest}",
                    headers={"Accept": ", ".join(IMAGE_MANIFEST_TYPES + IMAGE_INDEX_TYPES)},
                )
                if status != 200:
                    return 404, "MANIFEST_BLOB_UNKNOWN"
            return None

        def tag_list(self) -> None:
            self.discard_body()
            status, _, body = self.backend("GET", f"/v2/{self.repo}/tags/list")
            if status != 200:
                self.named_error(404, "NAME_UNKNOWN")
                return
            tags = sorted(json.loads(body).get("tags") or [])
            answer = json.dumps({"name": self.repo, "tags": tags}) + "\n"
            self.send(
                200,
                answer.encode(),
                {
                    "Content-Type": "application/json",
                    "Docker-Distribution-Api-Version": "registry/2.0",
                },
            )

    server = http.server.ThreadingHTTPServer(("127.0.0.1", config["port"]), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(config["tls_cert"], config["tls_key"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    server.serve_forever()


def start_front(directory: Path, config: dict) -> int:
    """The front as its own process; secrets reach it on stdin, never argv or a file."""
    log = directory / "gitea-front.log"
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "serve"],
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
        raise RuntimeError(f"the Gitea front did not start: {log.read_text()[-2000:]}")
    return process.pid


def start(directory: Path, body_limit: int = DEFAULT_BODY_LIMIT) -> dict:
    """Distribution behind, the Gitea front on TLS; DIR/registry.json (0600) gets the facts."""
    import localregistry

    directory.mkdir(parents=True, exist_ok=True)
    backend = localregistry.start(directory / "backend", tls=False, auth=False)
    (directory / "backend" / "registry.json").unlink(missing_ok=True)
    try:
        ca, crt, key = localregistry.make_certificates(directory)
        port = localregistry.free_port()
        users = make_users()
        front_pid = start_front(
            directory,
            {
                "users": users,
                "secret": secrets.token_hex(32),
                "backend": backend.host,
                "body_limit": body_limit,
                "uploads": str(Path(tempfile.mkdtemp(prefix="uploads-", dir=directory))),
                "port": port,
                "tls_cert": str(crt),
                "tls_key": str(key),
            },
        )
    except BaseException:
        backend.stop()
        raise
    facts = {
        "url": f"https://127.0.0.1:{port}",
        "host": f"127.0.0.1:{port}",
        "ca_file": str(ca),
        "pids": [front_pid, backend.pid],
        "port": port,
        "directory": str(directory),
        "backend": backend.url,
        "storage": backend.storage,
        "body_limit": body_limit,
        "org": ORG,
        "users": {
            name: {key: user[key] for key in ("password", "token", "read_token")}
            for name, user in users.items()
        },
    }
    path = directory / "registry.json"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(facts))
    return facts


def stop(facts: dict) -> None:
    import localregistry

    for pid in facts.get("pids", []):
        localregistry.stop_pid(pid)


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        serve(json.loads(sys.stdin.readline()))
