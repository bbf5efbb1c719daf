"""Blobs no tag reaches, told apart by where they come from.

A rebuild moves its tag to a new manifest and leaves the old image's manifest, config and
layers in the store until a delete or ``prune`` collects them: that is the ordinary course of
things, "layers no tag uses any more". Blobs that no such old manifest reaches either were
written by a command that did not finish (a build or load killed before it tagged anything):
"left by interrupted commands".
"""

from __future__ import annotations

import json
from collections import namedtuple

from idpwrap.errors import StoreError
from idpwrap.store.layout import MAX_UNTYPED_JSON, walk_blobs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path


class Unused(namedtuple("Unused", "untagged untagged_bytes stray stray_bytes")):
    """Counts and bytes: blobs of images no tag names any more, and the rest."""

    __slots__ = ()
    untagged: int
    untagged_bytes: int
    stray: int
    stray_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.untagged_bytes + self.stray_bytes


NOTHING = Unused(0, 0, 0, 0)


def classify(blob_dir: Path, unreferenced: Iterable[str], sizes: Mapping[str, int]) -> Unused:
    """Split ``unreferenced`` (digests, with their ``sizes``) by whether a manifest or index
    among them reaches the blob."""
    unreferenced = set(unreferenced)
    roots = [
        {"digest": digest, "size": sizes[digest]}
        for digest in unreferenced
        if sizes.get(digest, MAX_UNTYPED_JSON + 1) <= MAX_UNTYPED_JSON
        and _is_image(blob_dir / digest.split(":", 1)[1])
    ]
    try:
        untagged = set(walk_blobs(roots, blob_dir)) & unreferenced if roots else set()
    except StoreError:
        untagged = set()
    stray = unreferenced - untagged
    return Unused(
        len(untagged),
        sum(sizes.get(digest, 0) for digest in untagged),
        len(stray),
        sum(sizes.get(digest, 0) for digest in stray),
    )


def _is_image(path: Path) -> bool:
    """A manifest or an index (JSON with layers or manifests), not a config or a layer."""
    try:
        with open(path, "rb") as file:
            data = file.read(64)
            if not data.lstrip().startswith(b"{"):
                return False  # a layer: not read any further
            data += file.read(MAX_UNTYPED_JSON)
    except OSError:
        return False
    try:
        content = json.loads(data)
    except ValueError:
        return False
    return isinstance(content, dict) and (
        isinstance(content.get("layers"), list) or isinstance(content.get("manifests"), list)
    )
