"""Blobs, uploads, manifests and tags as Gitea 1.24.3 takes them, kept by distribution behind.

Sources (tag v1.24.3): routers/api/packages/container/container.go (InitiateUploadBlob,
UploadBlob, EndUploadBlob, UploadManifest, GetTagList with its n/last pages and Link,
DeleteManifest),
routers/api/packages/container/manifest.go (processImageManifest, processImageManifestIndex,
tags stored lowercased), routers/api/packages/container/errors.go (codes and statuses),
modules/packages/container/metadata.go (ParseImageConfig). Gitea has no referrers route:
``GET /v2/<image>/referrers/<digest>`` matches none and is a 404; an artifact manifest
(``artifactType``, ``subject``) is stored as any image manifest, and an index under a tag may
list it once it is in the image (the referrers tag schema works).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import urllib.parse
from pathlib import Path

from testing.gitea.model import (
    DIGEST,
    HELM_CONFIG_TYPE,
    IMAGE_INDEX_TYPES,
    IMAGE_MANIFEST_TYPES,
    MAX_MANIFEST_SIZE,
    READ,
    REFERENCE,
    WRITE,
)


class Content:
    """The content routes, mixed into the front (which answers, reads bodies, asks the backend)."""

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
        with self.gitea.lock:
            self.gitea.uploads[uuid] = 0
        (self.gitea.uploads_dir / uuid).write_bytes(b"")
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
        owner = self.gitea.owner(repo.split("/", 1)[0])
        if owner is None:
            return False
        return self.gitea.access(owner, self.doer) >= READ or bool(self.doer.get("admin"))

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
        with self.gitea.lock:
            size = self.gitea.uploads.get(uuid)
        if size is None:
            self.discard_body()
            self.named_error(404, "BLOB_UPLOAD_UNKNOWN")
            return
        part = self.gitea.uploads_dir / uuid
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
        with self.gitea.lock:
            self.gitea.uploads[uuid] = size
        return size

    def forget(self, uuid: str) -> None:
        with self.gitea.lock:
            self.gitea.uploads.pop(uuid, None)
        (self.gitea.uploads_dir / uuid).unlink(missing_ok=True)

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
        # A DELETE (DeleteManifest) reads the manifest first: by digest it removes every
        # version (tag) whose manifest that is, by tag that one version alone.
        status, headers, body = self.backend(
            "GET" if self.command == "DELETE" else self.command,
            f"/v2/{self.repo}/manifests/{reference}",
            headers={"Accept": ", ".join(IMAGE_MANIFEST_TYPES + IMAGE_INDEX_TYPES)},
        )
        if status >= 400:
            self.named_error(404, "MANIFEST_UNKNOWN")
            return
        if self.command == "DELETE":
            if DIGEST.match(reference):
                self.backend("DELETE", f"/v2/{self.repo}/manifests/{reference}")
            else:
                self.untag(reference, headers, body)
            self.send(202, b"", {"Docker-Distribution-Api-Version": "registry/2.0"})
            return
        self.relay(
            status, headers, body, ("content-type", "content-length", "docker-content-digest")
        )

    def untag(self, tag: str, headers: dict, body: bytes) -> None:
        """DeleteManifest by tag removes that one package version (tag); distribution deleted
        the manifest with all its tags, so the others are put back."""
        digest = headers.get("Docker-Content-Digest", "")
        accept = {"Accept": ", ".join(IMAGE_MANIFEST_TYPES + IMAGE_INDEX_TYPES)}
        status, _, listed = self.backend("GET", f"/v2/{self.repo}/tags/list")
        others = []
        for other in json.loads(listed).get("tags") or [] if status == 200 else []:
            if other != tag:
                _, found, _ = self.backend(
                    "HEAD", f"/v2/{self.repo}/manifests/{other}", None, accept
                )
                if found.get("Docker-Content-Digest", "") == digest:
                    others.append(other)
        content_type = headers.get("Content-Type", "")
        self.backend("DELETE", f"/v2/{self.repo}/manifests/{digest}")
        for other in others:
            self.backend(
                "PUT", f"/v2/{self.repo}/manifests/{other}", body, {"Content-Type": content_type}
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
        if problem == (500, "INTERNAL"):
            self.plain(500, "Internal Server Error\n")
            return
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
        if not self.config_parses(manifest.get("config") or {}):
            return 500, "INTERNAL"
        return None

    def config_parses(self, config: dict) -> bool:
        """container_module.ParseImageConfig: a Helm config by its media type, any other as
        an OCI image config (json.Decoder into oci.Image: empty input, ``{}`` and ``null``
        pass, a JSON value of another shape or no JSON fails the upload with HTTP 500). So an
        artifact's config may have any media type; the empty descriptor's ``{}`` passes."""
        if str(config.get("mediaType", "")).lower() == HELM_CONFIG_TYPE:
            return True
        status, _, body = self.backend("GET", f"/v2/{self.repo}/blobs/{config.get('digest')}")
        if status != 200:
            return False
        text = body.decode("utf-8", "replace").lstrip()
        if not text:
            return True
        try:
            value, _ = json.JSONDecoder().raw_decode(text)
        except ValueError:
            return False
        return value is None or isinstance(value, dict)

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
        """GetTagList: tags in order, after ``last``, at most ``n``; a ``Link`` to the next page
        whenever this page holds a tag (so the last page is an empty one)."""
        self.discard_body()
        status, _, body = self.backend("GET", f"/v2/{self.repo}/tags/list")
        if status != 200:
            self.named_error(404, "NAME_UNKNOWN")
            return
        tags = sorted(json.loads(body).get("tags") or [])
        last = (self.query.get("last") or [""])[0].strip()
        if last:
            tags = [tag for tag in tags if tag > last]
        number = (self.query.get("n") or [""])[0].strip()
        count = int(number) if number.lstrip("-").isdigit() else -1
        if count >= 0:
            tags = tags[:count]
        extra = {
            "Content-Type": "application/json",
            "Docker-Distribution-Api-Version": "registry/2.0",
        }
        if tags:
            query = {"n": str(count)} if count > 0 else {}
            query["last"] = tags[-1]
            extra["Link"] = (
                f'</v2/{self.repo}/tags/list?{urllib.parse.urlencode(query)}>; rel="next"'
            )
        answer = json.dumps({"name": self.repo, "tags": tags}) + "\n"
        self.send(200, answer.encode(), extra)
