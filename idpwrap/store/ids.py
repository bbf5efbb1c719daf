"""An image named by ID, as podman users name one: the config's digest (podman's IMAGE ID,
``images --format {{.ID}}``) or the manifest's (``images``' DIGEST), whole or its first 12 or
more hex digits, ``sha256:`` optional; and every tag that image carries.
"""

from __future__ import annotations

from idpwrap.errors import ImageNotFound, StoreError, UsageError
from idpwrap.refs import LocalRef
from idpwrap.store.api import Store, StoredImage
from idpwrap.store.layout import HEX

SHORTEST = 12


def looks_like_id(text: str) -> bool:
    digits = text.removeprefix("sha256:")
    return (
        bool(digits)
        and HEX.issuperset(digits)
        and (text.startswith("sha256:") or SHORTEST <= len(digits) <= 64)
    )


def image_id(store: Store, image: StoredImage) -> str:
    """podman's image ID: the config's digest; an index's own digest (it has no config)."""
    try:
        manifest = store.read_json_blob(image.digest)
    except StoreError:
        return image.digest
    config = manifest.get("config")
    return str(config.get("digest", image.digest)) if isinstance(config, dict) else image.digest


def tags_by_id(store: Store, text: str) -> list[LocalRef] | None:
    """The tags of the one image ``text`` names by ID or digest, sorted; None when ``text``
    is a tag (or does not look like an ID). No match, or several images, is an error."""
    if not looks_like_id(text):
        return None
    images = store.images()
    if not text.startswith("sha256:") and any(str(i.ref) == f"{text}:latest" for i in images):
        return None  # a repository named like an ID: the tag wins, as with other commands
    digits = text.removeprefix("sha256:")
    matched: dict[str, list[LocalRef]] = {}
    for image in images:
        for digest in {image.digest, image_id(store, image)}:
            if digest.removeprefix("sha256:").startswith(digits):
                matched.setdefault(image.digest, []).append(image.ref)
                break
    if not matched:
        raise ImageNotFound(
            f"no image in the store {store.location} has the ID or digest {text}: list them"
            " with idpwrap images --format '{{.ID}} {{.Digest}} {{.Repository}}:{{.Tag}}'"
        )
    if len(matched) > 1:
        raise UsageError(
            f"{text} matches {len(matched)} images in the store: give more of the ID, or NAME:TAG"
        )
    (refs,) = matched.values()
    return sorted(set(refs), key=str)
