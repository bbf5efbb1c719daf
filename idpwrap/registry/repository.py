"""One registry repository read and changed over the distribution API with push's credentials
and TLS trust: its tags (every page, by the ``Link`` headers), a manifest or blob read, a
manifest deleted by digest, a small blob and a manifest written.

Authentication is api.py's (the /v2/ challenge, Basic, or a token from the Bearer realm): the
first request goes without credentials, its 401 names how. A Bearer token is asked for with the
scope ``repository:NAME:pull,push,delete`` where the registry names a repository scope
(distribution's token auth); Gitea names ``*`` and decides by the account and the token's own
scopes (``write:package`` for a delete or a write, ``read:package`` for a read).

Pagination: distribution sends ``Link: </v2/NAME/tags/list?n=N&last=TAG>; rel="next"`` while
there are more tags; Gitea 1.24.3 (GetTagList) sends one whenever the page held any tag, so the
last page is the one that is empty or has no ``Link``.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import NamedTuple

from idpwrap import log
from idpwrap.errors import AuthFailed, RegistryError
from idpwrap.registry import api
from idpwrap.registry.manifests import MANIFEST_TYPES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.creds.credentials import Credentials
    from idpwrap.refs import Registry
    from idpwrap.tls import TlsTrust

TIMEOUT_SECONDS = 30.0
NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
MAX_PAGES = 10_000  # a registry that keeps answering "next" with the same page is cut off


class Manifest(NamedTuple):
    digest: str
    media_type: str
    body: bytes


class DeleteRefused(Exception):
    """The registry does not allow deletes (HTTP 405, distribution's UNSUPPORTED)."""


class Repository:
    """Requests against ``HOST/NAME`` with the authorization its registry asks for, kept."""

    def __init__(
        self,
        registry: Registry,
        name: str,
        credentials: Credentials | None,
        trust: TlsTrust,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.registry = registry
        self.name = name
        self.credentials = credentials
        self.client = api.client_for(registry, trust, timeout)
        self.authorization: str | None = None

    def where(self) -> str:
        return f"{self.registry.host}/{self.name}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> api._Response:
        """One request (a path under the registry or a full URL), authenticated on a 401."""
        answer = self._send(method, path, body, headers)
        if answer.status == 401:
            self.authorization = self._authorize(answer.headers.get("WWW-Authenticate", ""))
            answer = self._send(method, path, body, headers)
        if answer.status == 401:
            who = self.credentials.username if self.credentials else "anonymous"
            raise AuthFailed(
                f"{self.registry.host} refused {method} on {self.name} for {who}: check the"
                " credentials (a Gitea token needs write:package to delete or write)"
            )
        return answer

    def _send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None
    ) -> api._Response:
        url = path if "://" in path else f"{self.registry.url}{path}"
        if body is None:
            return self.client.get(url, self.authorization, method=method, headers=headers)
        request = urllib.request.Request(
            url, data=body, method=method, headers={"User-Agent": "idpwrap", **(headers or {})}
        )
        if self.authorization:
            request.add_unredirected_header("Authorization", self.authorization)
        log.debug("%s %s (%d bytes)", method, url, len(body))
        try:
            with self.client.opener.open(request, timeout=self.client.timeout) as response:
                return api._Response(response.status, response.headers, response.read(1 << 16))
        except urllib.error.HTTPError as error:
            with error:
                return api._Response(error.code, error.headers, error.read(1 << 16))
        except urllib.error.URLError as error:
            raise self.client._explain(url, error.reason) from None
        except (OSError, ValueError) as error:
            raise self.client._explain(url, error) from None

    def _authorize(self, header: str) -> str | None:
        schemes = {challenge.scheme: challenge for challenge in api.parse_challenges(header)}
        credentials = self.credentials
        if credentials is not None and credentials.identity_token:
            raise AuthFailed(
                f"the credentials for {self.registry.host} are an identity token, which only"
                " skopeo exchanges: give a username and password or token (-u, GITEA_TOKEN)"
            )
        username = credentials.username if credentials else None
        secret = credentials.secret if credentials else None
        if "bearer" in schemes:
            challenge = schemes["bearer"]
            scope = challenge.params.get("scope", "")
            if not scope or scope.startswith("repository:"):
                challenge.params["scope"] = f"repository:{self.name}:pull,push,delete"
            return f"Bearer {api.request_token(self.client, challenge, username, secret)}"
        if "basic" in schemes and username:
            return api.basic_authorization(username, secret or "")
        return None

    def tags(self) -> list[str]:
        """Every tag, following ``Link: <...>; rel="next"`` until a page has none or is empty;
        [] for a repository the registry does not have."""
        found: list[str] = []
        path = f"/v2/{self.name}/tags/list"
        for _ in range(MAX_PAGES):
            answer = self.request("GET", path)
            if answer.status == 404:
                return found
            if answer.status != 200:
                raise RegistryError(
                    f"{self.registry.host} answered the tag list of {self.name} with HTTP"
                    f" {answer.status}"
                )
            try:
                page = json.loads(answer.body).get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError(
                    f"{self.registry.host} answered the tag list of {self.name} with no JSON"
                ) from None
            found.extend(str(tag) for tag in page if str(tag) not in found)
            link = NEXT_LINK.search(answer.headers.get("Link", "") or "")
            if not page or link is None:
                return found
            path = urllib.parse.urljoin(f"{self.registry.url}/v2/", link.group(1))
        return found

    def manifest(self, reference: str) -> Manifest | None:
        """The manifest ``reference`` (a tag or digest) names, or None if there is none."""
        accept = {"Accept": MANIFEST_TYPES}
        answer = self.request("GET", f"/v2/{self.name}/manifests/{reference}", headers=accept)
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise RegistryError(
                f"{self.registry.host} answered the manifest {self.name}:{reference} with HTTP"
                f" {answer.status}"
            )
        digest = "sha256:" + hashlib.sha256(answer.body).hexdigest()
        try:
            media_type = str(json.loads(answer.body).get("mediaType") or "")
        except (ValueError, AttributeError):
            media_type = ""
        header_type = (answer.headers.get("Content-Type", "") or "").split(";")[0].strip()
        return Manifest(digest, media_type or header_type, answer.body)

    def blob(self, digest: str) -> bytes | None:
        answer = self.request("GET", f"/v2/{self.name}/blobs/{digest}")
        if answer.status != 200 or "sha256:" + hashlib.sha256(answer.body).hexdigest() != digest:
            return None
        return answer.body

    def delete(self, digest: str) -> bool:
        """DELETE the manifest ``digest`` (and with it every tag that names it); False if the
        registry no longer has it; DeleteRefused where deletes are off."""
        answer = self.request("DELETE", f"/v2/{self.name}/manifests/{digest}")
        if answer.status in (200, 202):
            return True
        if answer.status == 404:
            return False
        if answer.status == 405:
            raise DeleteRefused(_error_code(answer.body) or "HTTP 405")
        if answer.status == 403:
            raise AuthFailed(
                f"{self.registry.host} denied deleting from {self.name}: the account needs write"
                " access to it (a Gitea token: write:package)"
            )
        raise RegistryError(
            f"{self.registry.host} answered DELETE {self.name}@{digest} with HTTP {answer.status}"
        )

    def put_blob(self, data: bytes) -> str:
        """A small blob uploaded whole (POST, then PUT ?digest=); its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        head = self.request("HEAD", f"/v2/{self.name}/blobs/{digest}")
        if head.status == 200:
            return digest
        started = self.request("POST", f"/v2/{self.name}/blobs/uploads/", b"")
        location = started.headers.get("Location", "") if started.status == 202 else ""
        if not location:
            raise RegistryError(
                f"{self.registry.host} answered a blob upload to {self.name} with HTTP"
                f" {started.status}"
            )
        location = urllib.parse.urljoin(f"{self.registry.url}/v2/", location)
        separator = "&" if "?" in location else "?"
        done = self.request(
            "PUT", f"{location}{separator}digest={digest}", data,
            {"Content-Type": "application/octet-stream"},
        )  # fmt: skip
        if done.status != 201:
            raise RegistryError(
                f"{self.registry.host} answered a blob upload to {self.name} with HTTP"
                f" {done.status}"
            )
        return digest

    def put_manifest(self, tag: str, media_type: str, body: bytes) -> str:
        answer = self.request(
            "PUT", f"/v2/{self.name}/manifests/{tag}", body, {"Content-Type": media_type}
        )
        if answer.status != 201:
            raise RegistryError(
                f"{self.registry.host} answered a manifest PUT to {self.name}:{tag} with HTTP"
                f" {answer.status} ({_error_code(answer.body) or 'no error code'})"
            )
        return "sha256:" + hashlib.sha256(body).hexdigest()


def _error_code(body: bytes) -> str:
    try:
        errors = json.loads(body).get("errors") or []
        return str(errors[0].get("code", "")) if errors else ""
    except (ValueError, AttributeError, TypeError):
        return ""
