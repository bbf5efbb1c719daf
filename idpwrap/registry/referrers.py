"""An OCI artifact that refers to an image, attached in a registry as OCI distribution-spec 1.1
says a client does it, and found again the same way.

Attaching: the artifact's blobs are uploaded (``HEAD`` first, then ``POST`` and one ``PUT
?digest=`` with the whole blob), its manifest is put by digest. A registry with the referrers
API says so by an ``OCI-Subject`` header on that ``PUT``, or answers ``GET
/v2/<name>/referrers/<subject digest>`` with an index: it lists the artifact itself. Any other
registry (distribution 2.8, Gitea 1.24, whose routes know no ``referrers``) gets the referrers
tag schema: the index under the tag ``sha256-<hex of the subject digest>`` is read (or begun
when missing), the artifact's descriptor added unless it is already there, and the index put
back under that tag. Finding: the referrers API, else that tag.

Requests go through ``manifests.TagReader``: a push's credentials, its token exchange and
its TLS trust (``TlsTrust``); nothing secret is logged or said.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from typing import NamedTuple

from idpwrap import log
from idpwrap.errors import RegistryError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from idpwrap.registry.manifests import TagReader

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
API, TAG_SCHEMA = "referrers API", "referrers tag schema"


class Artifact(NamedTuple):
    """An artifact manifest as bytes (its digest is theirs) and the blobs it names."""

    manifest: bytes
    blobs: dict[str, bytes]  # digest -> content: the config and the layers

    @property
    def digest(self) -> str:
        return _digest(self.manifest)

    @property
    def content(self) -> dict[str, Any]:
        return dict(json.loads(self.manifest))

    def descriptor(self) -> dict[str, Any]:
        """The artifact as an index lists it: with its artifactType and annotations."""
        content = self.content
        described: dict[str, Any] = {
            "mediaType": content.get("mediaType") or OCI_MANIFEST,
            "digest": self.digest,
            "size": len(self.manifest),
        }
        if content.get("artifactType"):
            described["artifactType"] = content["artifactType"]
        if content.get("annotations"):
            described["annotations"] = content["annotations"]
        return described


class Attached(NamedTuple):
    subject: str  # the image's digest
    artifact: str  # the artifact manifest's digest
    how: str  # API or TAG_SCHEMA
    tag: str  # the referrers tag (TAG_SCHEMA only)
    added: bool  # False: the registry already listed it


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def referrers_tag(digest: str) -> str:
    """The tag schema's tag for ``digest``: ``sha256-<hex>`` (already lowercase, as Gitea
    keeps tags)."""
    algorithm, _, hexdigits = digest.partition(":")
    return f"{algorithm}-{hexdigits}"


def merged(index: Mapping[str, Any] | None, descriptor: Mapping[str, Any]) -> dict[str, Any] | None:
    """The referrers index with ``descriptor`` added; None when it already lists that digest.
    ``index`` None begins one. Other entries are kept as they are, in their order."""
    if index is None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    entries = [entry for entry in index.get("manifests") or [] if isinstance(entry, dict)]
    if any(entry.get("digest") == descriptor.get("digest") for entry in entries):
        return None
    return {**index, "manifests": [*entries, dict(descriptor)]}


def _refused(what: str, answer: Any) -> RegistryError:
    detail = ""
    try:
        errors = json.loads(answer.body).get("errors") or []
        detail = ", ".join(str(error.get("code", "")) for error in errors if error.get("code"))
    except (ValueError, AttributeError):
        pass
    hint = ""
    if answer.status in (401, 403):
        hint = ": the credentials may not write there (a token with write access is needed)"
    return RegistryError(
        f"the registry answered {what} with HTTP {answer.status}"
        f"{f' {detail}' if detail else ''}{hint}"
    )


def upload_blob(reader: TagReader, digest: str, data: bytes) -> None:
    """The blob in the repository: nothing when it is there, else POST and one PUT."""
    if reader.request("HEAD", f"blobs/{digest}").status == 200:
        return
    begun = reader.request("POST", "blobs/uploads/", data=b"", write=True)
    if begun.status == 201:  # a registry that took the empty POST as the upload: not ours
        raise _refused("POST blobs/uploads/", begun)
    location = begun.headers.get("Location", "") if begun.status == 202 else ""
    if not location:
        raise _refused("POST blobs/uploads/", begun)
    target = urllib.parse.urljoin(f"{reader.registry.url}/", location)
    separator = "&" if urllib.parse.urlsplit(target).query else "?"
    target = f"{target}{separator}digest={urllib.parse.quote(digest)}"
    headers = {"Content-Type": "application/octet-stream"}
    stored = reader.request("PUT", target, headers=headers, data=data, write=True)
    if stored.status != 201:
        raise _refused(f"the upload of blob {digest}", stored)


def put_manifest(reader: TagReader, reference: str, data: bytes, media_type: str) -> Any:
    """``PUT manifests/<reference>``; the answer (its headers say OCI-Subject, the digest)."""
    answer = reader.request(
        "PUT", f"manifests/{reference}", headers={"Content-Type": media_type}, data=data,
        write=True,
    )  # fmt: skip
    if answer.status != 201:
        raise _refused(f"PUT manifests/{reference}", answer)
    stored = answer.headers.get("Docker-Content-Digest", "")
    if stored and stored != _digest(data):
        raise RegistryError(f"the registry stored manifest {reference} as {stored}, not as sent")
    return answer


def read_index(reader: TagReader, reference: str) -> dict[str, Any] | None:
    """The index under ``reference``; None when there is none. Something else under that tag
    is a RegistryError (the tag is not ours to replace)."""
    answer = reader.request("GET", f"manifests/{reference}", headers={"Accept": OCI_INDEX})
    if answer.status == 404:
        return None
    if answer.status != 200:
        raise _refused(f"GET manifests/{reference}", answer)
    try:
        content = json.loads(answer.body)
    except ValueError:
        content = None
    if (
        not isinstance(content, dict)
        or content.get("mediaType", OCI_INDEX) != OCI_INDEX
        or (not isinstance(content.get("manifests", []), list))
    ):
        raise RegistryError(f"the tag {reference} holds something other than an OCI index")
    return content


def from_api(reader: TagReader, subject: str) -> list[dict[str, Any]] | None:
    """The referrers API's list for ``subject``; None when the registry has no such API."""
    answer = reader.request("GET", f"referrers/{subject}", headers={"Accept": OCI_INDEX})
    if answer.status != 200:
        log.debug("referrers API of %s: HTTP %s", reader.repository, answer.status)
        return None
    try:
        content = json.loads(answer.body)
    except ValueError:
        return None
    if not isinstance(content, dict) or not isinstance(content.get("manifests"), list):
        return None
    return [entry for entry in content["manifests"] if isinstance(entry, dict)]


def attach(reader: TagReader, subject: str, artifact: Artifact) -> Attached:
    """``artifact`` (whose ``subject`` is the manifest ``subject``) attached in the reader's
    repository; RegistryError (or a network error) with the registry's answer when refused."""
    for digest, data in artifact.blobs.items():
        upload_blob(reader, digest, data)
    answer = put_manifest(reader, artifact.digest, artifact.manifest, OCI_MANIFEST)
    if answer.headers.get("OCI-Subject"):
        return Attached(subject, artifact.digest, API, "", True)
    listed = from_api(reader, subject)
    if listed is not None:
        return Attached(subject, artifact.digest, API, "", True)
    tag = referrers_tag(subject)
    index = merged(read_index(reader, tag), artifact.descriptor())
    if index is None:
        return Attached(subject, artifact.digest, TAG_SCHEMA, tag, False)
    data = json.dumps(index, separators=(",", ":")).encode()
    put_manifest(reader, tag, data, OCI_INDEX)
    return Attached(subject, artifact.digest, TAG_SCHEMA, tag, True)


def find(reader: TagReader, subject: str, artifact_type: str) -> tuple[list[dict[str, Any]], str]:
    """The descriptors of the artifacts of ``artifact_type`` that refer to ``subject``, and
    how they were found: the referrers API, else the tag schema's index."""
    listed = from_api(reader, subject)
    how = API
    if listed is None:
        index = read_index(reader, referrers_tag(subject))
        listed = list((index or {}).get("manifests") or [])
        how = TAG_SCHEMA
    return [entry for entry in listed if entry.get("artifactType") == artifact_type], how


def fetch(reader: TagReader, path: str, accept: str | None = None) -> bytes:
    """A manifest or blob's bytes (``manifests/<digest>``, ``blobs/<digest>``), checked
    against the digest that names it."""
    headers = {"Accept": accept} if accept else None
    answer = reader.request("GET", path, headers=headers)
    if answer.status != 200:
        raise _refused(f"GET {path}", answer)
    digest = path.rsplit("/", 1)[-1]
    if _digest(answer.body) != digest:
        raise RegistryError(f"the registry's {path} does not have the digest that names it")
    return bytes(answer.body)
