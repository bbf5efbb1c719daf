"""Just enough of the distribution API over HTTP to check what a push left in a registry."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


class RegistryClient:
    """Just enough of the distribution API to check what a push left in the registry."""

    def __init__(self, url: str, ca_file: str, username: str, password: str) -> None:
        self.url = url.rstrip("/")
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"} if username else {}

    def request(self, method: str, path: str, headers: Mapping[str, str] | None = None) -> Response:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={**self.headers, **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.context) as response:
                return Response(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, dict(error.headers), error.read())

    def tags(self, repository: str) -> list[str]:
        response = self.request("GET", f"/v2/{repository}/tags/list")
        assert response.status == 200, (response.status, response.body[:500])
        return list(json.loads(response.body).get("tags") or [])

    def manifest_digest(self, repository: str, reference: str) -> str:
        response = self.request(
            "HEAD", f"/v2/{repository}/manifests/{reference}", {"Accept": MANIFEST_ACCEPT}
        )
        assert response.status == 200, (response.status, dict(response.headers))
        return response.headers["Docker-Content-Digest"]

    def manifest(self, repository: str, reference: str) -> Response:
        return self.request(
            "GET", f"/v2/{repository}/manifests/{reference}", {"Accept": MANIFEST_ACCEPT}
        )

    def blob(self, repository: str, digest: str) -> Response:
        return self.request("GET", f"/v2/{repository}/blobs/{digest}")
