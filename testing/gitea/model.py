"""Gitea 1.24.3's rules and state as the test registry models them: patterns, tokens, users.

Sources (tag v1.24.3): routers/api/packages/container/container.go (patterns, manifest size),
services/packages/auth.go (the HS256 JWT of 24 h), services/auth/basic.go (the Basic forms),
services/context/package.go (access modes of users and orgs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
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
# modules/packages/container/helm: the one config type not parsed as an image config
HELM_CONFIG_TYPE = "application/vnd.cncf.helm.config.v1+json"
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
        # Not Gitea's: a test's registry that refuses every HEAD of a manifest with a 401 (as a
        # token without read access, or a proxy that mishandles HEAD) yet takes pushes.
        self.refuse_manifest_head = bool(config.get("refuse_manifest_head"))
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
