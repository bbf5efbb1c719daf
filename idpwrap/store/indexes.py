"""Multi-platform images in the store: a tag that names an OCI image index (or a Docker
manifest list) whose children are single-platform manifests, each with its ``platform``.

The children are not tagged themselves: the index reaches them, so collection keeps their blobs
as long as the index is tagged (``walk_blobs`` follows ``manifests``), and ``tag``, ``rmi``,
``save`` and ``push`` act on the index as a whole."""

from __future__ import annotations

import json
import os
from collections import namedtuple

from idpwrap import platforms
from idpwrap.errors import ImageNotFound, StoreError
from idpwrap.store.api import ImageDetails, StoredImage
from idpwrap.store.layout import INDEX_FILE, INDEX_TYPES, LAYOUT_CONTENT, MANIFEST_TYPES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any

    from idpwrap.store.api import Store

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


class Child(namedtuple("Child", "platform descriptor")):
    """One manifest of an index: its ``os/arch[/variant]`` and its descriptor."""

    __slots__ = ()
    platform: str
    descriptor: dict[str, Any]


def is_index(image: StoredImage) -> bool:
    return image.descriptor.get("mediaType") in INDEX_TYPES


def children(store: Store, image: StoredImage) -> list[Child]:
    """The single-platform manifests of an index, in its order (not attestations: a child
    without a known platform is left out)."""
    content = store.read_json_blob(image.digest)
    found = []
    for entry in content.get("manifests") or []:
        if not isinstance(entry, dict) or entry.get("mediaType") not in MANIFEST_TYPES:
            continue
        platform = entry.get("platform")
        if not isinstance(platform, dict) or platform.get("os") in (None, "unknown"):
            continue
        found.append(Child(platforms.of(platform), entry))
    return found


def platforms_of(store: Store, image: StoredImage) -> list[str]:
    """The platforms of a stored image: an index's children's, or the config's."""
    if is_index(image):
        return [child.platform for child in children(store, image)]
    return [platforms.of(store.details(image).config)]


def child(store: Store, image: StoredImage, platform: str) -> StoredImage:
    """The stored image for ``platform``: the matching child of an index (under the index's
    tag), or a single-platform image itself when it is of that platform."""
    if not is_index(image):
        own = platforms.of(store.details(image).config)
        if platforms.matches(platform, own):
            return image
        raise ImageNotFound(
            f"{image.ref} is a {own} image, not {platform}: build it for {platform}"
            f" (idpwrap build --platform {platform}) or leave out --platform"
        )
    found = children(store, image)
    for candidate in found:
        if platforms.matches(platform, candidate.platform):
            return StoredImage(image.ref, candidate.descriptor)
    have = ", ".join(c.platform for c in found) or "none"
    raise ImageNotFound(
        f"{image.ref} has no {platform} image (it has {have}): build it with --platform"
        f" {platform} too, or choose one of those"
    )


def details_for(store: Store, image: StoredImage, platform: str | None) -> ImageDetails:
    """``details`` of an image, or of the child for ``platform`` (the host's when an index
    is named without one)."""
    if platform is None and not is_index(image):
        return store.details(image)
    return store.details(child(store, image, platform or platforms.host()))


def index_blobs(store: Store, image: StoredImage) -> list[tuple[str, int]]:
    """Every blob of an index's children once (layers, configs, manifests), in push order:
    what a push of the whole index copies, and the index itself last."""
    seen: dict[str, int] = {}
    for entry in children(store, image):
        details = store.details(StoredImage(image.ref, entry.descriptor))
        for digest, size in details.blobs:
            seen.setdefault(digest, size)
        seen.setdefault(str(entry.descriptor["digest"]), int(entry.descriptor["size"]))
    seen.setdefault(image.digest, int(image.descriptor.get("size", 0)))
    return list(seen.items())


def copied_blobs(store: Store, image: StoredImage) -> list[tuple[str, int, str]]:
    """(digest, size, "blob" or "config") of what a push copies and skopeo draws a bar for:
    the layers and config of the image, or of every child of an index (shared ones once)."""
    entries = [image] if not is_index(image) else [
        StoredImage(image.ref, entry.descriptor) for entry in children(store, image)
    ]  # fmt: skip
    found: dict[str, tuple[str, int, str]] = {}
    for entry in entries:
        manifest = store.details(entry).manifest
        for layer in manifest["layers"]:
            digest = str(layer["digest"])
            found.setdefault(digest, (digest, int(layer["size"]), "blob"))
        config = str(manifest["config"]["digest"])
        found.setdefault(config, (config, int(manifest["config"]["size"]), "config"))
    return list(found.values())


def created(store: Store, image: StoredImage) -> str:
    """The newest ``created`` of an index's children."""
    times = [
        store.details(StoredImage(image.ref, entry.descriptor)).created
        for entry in children(store, image)
    ]
    return max(times, default="")


# -- assembling an index from single-platform builds --------------------------------------------


def assemble(layouts: Sequence[Path], target: Path) -> dict[str, Any]:
    """One OCI layout at ``target`` holding an index of the single image of each of
    ``layouts`` (blobs moved in, shared ones once); returns the index's descriptor.

    Each child's ``platform`` is read from its own config: what buildah built, not what was
    asked for."""
    blob_dir = target / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    (target / "oci-layout").write_bytes(LAYOUT_CONTENT)
    entries = []
    for layout in layouts:
        try:
            manifests = json.loads((layout / INDEX_FILE).read_text())["manifests"]
            descriptor = dict(manifests[0])
            source = layout / "blobs" / "sha256"
            manifest = json.loads((source / descriptor["digest"].split(":", 1)[1]).read_bytes())
            config_name = manifest["config"]["digest"].split(":", 1)[1]
            config = json.loads((source / config_name).read_bytes())
        except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
            raise StoreError(f"cannot read the image built in {layout}: {error}") from error
        descriptor.pop("annotations", None)
        descriptor["platform"] = {
            key: config[key] for key in ("architecture", "os", "variant") if config.get(key)
        }
        for entry in os.scandir(source):
            destination = blob_dir / entry.name
            if not destination.exists():
                os.replace(entry.path, destination)
        entries.append(descriptor)
    docker = all(entry.get("mediaType") == DOCKER_MANIFEST for entry in entries)
    media_type = DOCKER_LIST if docker else OCI_INDEX
    index = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    data = json.dumps(index, separators=(",", ":")).encode()
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    (blob_dir / digest).write_bytes(data)
    descriptor = {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}
    top = {"schemaVersion": 2, "manifests": [descriptor]}
    (target / INDEX_FILE).write_text(json.dumps(top))
    return descriptor
