"""One registry repository read and changed over the distribution API with push's credentials
and TLS trust: its tags (every page, by the ``Link`` headers), a manifest or blob read, a
manifest deleted by digest, a small blob and a manifest written.

Requests and authentication are the push's own (``manifests.TagReader.request`` over the kept
HTTP/1.1 client): the first request goes without credentials, its 401 names how; a Bearer
token is asked for with the actions the request needs (``pull``, ``pull,push``,
``pull,push,delete``) where the registry names a repository scope (distribution's token auth);
Gitea names ``*`` and decides by the account and the token's own scopes (``write:package`` for
a delete or a write, ``read:package`` for a read). Small writes are referrers.py's.

Pagination: distribution sends ``Link: </v2/NAME/tags/list?n=N&last=TAG>; rel="next"`` while
there are more tags; Gitea 1.24.3 (GetTagList) sends one whenever the page held any tag, so the
last page is the one that is empty or has no ``Link``.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from typing import NamedTuple

from idpwrap.errors import AuthFailed, RegistryError
from idpwrap.registry import referrers
from idpwrap.registry.manifests import MANIFEST_TYPES, TagReader

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.creds.credentials import Credentials
    from idpwrap.refs import Registry
    from idpwrap.registry import api
    from idpwrap.tls import TlsTrust

TIMEOUT_SECONDS = 30.0
NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
PAGE_SIZE = 1000
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
        self.reader = TagReader(registry, name, credentials, trust, timeout)

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
        write = method not in ("GET", "HEAD")
        answer = self.reader.request(method, path, headers=headers, data=body, write=write)
        if answer.status == 401:
            who = self.credentials.username if self.credentials else "anonymous"
            if self.credentials is not None and self.credentials.identity_token:
                raise AuthFailed(
                    f"the credentials for {self.registry.host} are an identity token, which"
                    " only skopeo exchanges: give a username and password or token (-u,"
                    " GITEA_TOKEN)"
                )
            raise AuthFailed(
                f"{self.registry.host} refused {method} on {self.name} for {who}: check the"
                " credentials (a Gitea token needs write:package to delete or write)"
            )
        return answer

    def close(self) -> None:
        self.reader.close()

    def tags(self) -> list[str]:
        """Every tag, following ``Link: <...>; rel="next"`` until a page has none or is empty;
        [] for a repository the registry does not have."""
        found: list[str] = []
        # Pages of a thousand: one answer stays far below what the client reads of a body.
        path = f"/v2/{self.name}/tags/list?n={PAGE_SIZE}"
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
        referrers.upload_blob(self.reader, digest, data)
        return digest

    def put_manifest(self, tag: str, media_type: str, body: bytes) -> str:
        referrers.put_manifest(self.reader, tag, body, media_type)
        return "sha256:" + hashlib.sha256(body).hexdigest()


def _error_code(body: bytes) -> str:
    try:
        errors = json.loads(body).get("errors") or []
        return str(errors[0].get("code", "")) if errors else ""
    except (ValueError, AttributeError, TypeError):
        return ""
