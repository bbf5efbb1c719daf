"""What skopeo reads from a push's private directory: the source it copies from, a one-image
OCI layout over the store's own blobs, pinned to the manifest resolved, or a ``dir:`` view for
a docker-format image. (The CAs it trusts are put there by ``TlsTrust.cert_dir_in``.)"""

from __future__ import annotations

import json
import os

from idpwrap.store.api import Store, StoredImage
from idpwrap.store.layout import INDEX_FILE, LAYOUT_FILE, REF_ANNOTATION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

PUSH_LAYOUT_NAME = "image"


def write_file(path: str, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)


def write_push_layout(directory: str | Path, store: Store, image: StoredImage) -> str:
    """A one-image OCI layout whose blobs are the store's own (a symlink), pinned to the
    manifest (or index) we resolved: a tag moved by a concurrent build cannot change what we
    push.

    (Plain ``os.path``, like everything before skopeo starts: pathlib costs an import.)"""
    layout = os.path.join(directory, "layout")
    os.mkdir(layout)
    write_file(os.path.join(layout, LAYOUT_FILE), b'{"imageLayoutVersion":"1.0.0"}')
    descriptor = {
        key: value
        for key, value in image.descriptor.items()
        if key not in ("annotations", "platform")
    }
    descriptor["annotations"] = {REF_ANNOTATION: PUSH_LAYOUT_NAME}
    index = json.dumps({"schemaVersion": 2, "manifests": [descriptor]}).encode()
    write_file(os.path.join(layout, INDEX_FILE), index)
    os.symlink(os.path.join(store.location, "blobs"), os.path.join(layout, "blobs"))
    return layout


def push_source(directory: str, store: Store, image: StoredImage) -> str:
    """The reference skopeo copies from: the pinned layout, or for a docker-format image a
    ``dir:`` view (skopeo 1.9.3 reads only OCI manifests from a layout)."""
    from idpwrap.store import dirview

    if dirview.is_docker(image.descriptor):
        blob_dir = os.path.join(store.location, "blobs", "sha256")
        view = os.path.join(directory, "image")
        return "dir:" + dirview.write(view, blob_dir, image.digest)
    return f"oci:{write_push_layout(directory, store, image)}:{PUSH_LAYOUT_NAME}"
