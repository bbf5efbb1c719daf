"""A stored Docker v2 schema 2 image in the shape of containers/image's ``dir:`` transport.

buildah 1.28 and skopeo 1.9.3 look only for OCI manifests and indexes in an OCI layout's
``index.json`` ("no descriptor found for reference"), so a docker-format image of the store is
handed to them as a ``dir:`` directory: its manifest, the transport's version file, and
symbolic links to the store's blobs. Nothing is copied, and the manifest's bytes (its digest)
are the store's. Plain ``os.path``: push imports this before skopeo starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
VERSION_TEXT = b"Directory Transport Version: 1.1\n"


def is_docker(descriptor: Mapping[str, object]) -> bool:
    return descriptor.get("mediaType") == DOCKER_MANIFEST


def write(directory: str, blob_dir: str, manifest_digest: str) -> str:
    """``directory`` (new) as a ``dir:`` image of ``manifest_digest``, whose blobs are in
    ``blob_dir`` (``blobs/sha256``); returns ``directory``."""
    with open(os.path.join(blob_dir, manifest_digest.split(":", 1)[1]), "rb") as file:
        data = file.read()
    manifest = json.loads(data)
    os.mkdir(directory)
    with open(os.path.join(directory, "manifest.json"), "wb") as file:
        file.write(data)
    with open(os.path.join(directory, "version"), "wb") as file:
        file.write(VERSION_TEXT)
    for descriptor in [manifest["config"], *manifest["layers"]]:
        hex_digest = str(descriptor["digest"]).split(":", 1)[1]
        os.symlink(os.path.join(blob_dir, hex_digest), os.path.join(directory, hex_digest))
    return directory
