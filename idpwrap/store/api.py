"""The store's API: the tags of one OCI image layout, looked up, read, added, re-tagged and
removed. Its invariants are in the package's docstring."""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections import namedtuple

from idpwrap.errors import ImageNotFound, StoreError
from idpwrap.refs import LocalRef
from idpwrap.store.layout import (
    EMPTY_INDEX,
    HEX,
    INDEX_FILE,
    MANIFEST_TYPES,
    REF_ANNOTATION,
    ref_name,
    sync_directory,
    sync_file,
    walk_blobs,
)
from idpwrap.store.locks import LockedLayout
from idpwrap.store.referrers import attached

TYPE_CHECKING = False  # typing (and pathlib) cost imports that a push should not pay
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from typing import Any

    from idpwrap.store.gc import PruneReport
    from idpwrap.store.unused import Unused


def default_root() -> Path:
    """``$IDPWRAP_STORE``, else ``$XDG_DATA_HOME/idpwrap/images``."""
    from pathlib import Path

    configured = os.environ.get("IDPWRAP_STORE")
    if configured:
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "idpwrap" / "images"


class StoredImage(namedtuple("StoredImage", "ref descriptor")):
    """One tag of the store and the manifest descriptor it points at."""

    __slots__ = ()
    ref: LocalRef
    descriptor: dict[str, Any]

    @property
    def digest(self) -> str:
        return str(self.descriptor["digest"])


class ImageDetails(namedtuple("ImageDetails", "image manifest config")):
    """A stored image with its manifest and config read from their blobs."""

    __slots__ = ()
    image: StoredImage
    manifest: dict[str, Any]
    config: dict[str, Any]

    @property
    def blobs(self) -> list[tuple[str, int]]:
        """The config and the layers, as (digest, size), in the order skopeo copies them."""
        layers = [(str(layer["digest"]), int(layer["size"])) for layer in self.manifest["layers"]]
        config = self.manifest["config"]
        return [*layers, (str(config["digest"]), int(config["size"]))]

    @property
    def size(self) -> int:
        """Bytes a push uploads at most: the layers and the config as stored (compressed)."""
        return sum(size for _, size in self.blobs)

    @property
    def created(self) -> str:
        return str(self.config.get("created", ""))


class Store(LockedLayout):
    """The store at ``root``."""

    # -- reading -------------------------------------------------------------------------

    def read_index(self) -> dict[str, Any]:
        try:
            with open(self.index_file, encoding="utf-8") as file:
                text = file.read()
        except FileNotFoundError:
            return dict(EMPTY_INDEX)
        except OSError as error:
            raise StoreError(f"cannot read {self.index_file}: {error.strerror}") from error
        try:
            index = json.loads(text)
            if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
                raise ValueError("no 'manifests' list")
            for entry in index["manifests"]:
                if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
                    raise ValueError("an entry without a digest")
        except ValueError as error:
            raise StoreError(
                f"{self.index_file} is corrupt ({error}): restore it from a backup, or move it"
                " aside (its blobs stay until 'idpwrap prune') and rebuild or 'idpwrap load'"
                " the images; idpwrap will not overwrite it"
            ) from error
        return index

    def images(self) -> list[StoredImage]:
        images = []
        for descriptor in self.read_index()["manifests"]:
            name = ref_name(descriptor)
            if ":" not in name:
                continue  # untagged entries are not ours to show
            repository, tag = name.rsplit(":", 1)
            images.append(StoredImage(LocalRef(repository, tag), descriptor))
        return sorted(images, key=lambda image: (image.ref.name, image.ref.tag))

    def find(self, ref: LocalRef) -> StoredImage | None:
        for image in self.images():
            if image.ref == ref:
                return image
        return None

    def resolve(self, names: list[str], tag: str | None, digest: str | None) -> StoredImage:
        """The first of ``names`` the store has with ``tag`` (or ``digest``)."""
        images = self.images()
        for name in names:
            for image in images:
                if image.ref.name != name:
                    continue
                if digest and image.digest == digest and (tag is None or image.ref.tag == tag):
                    return image
                if not digest and image.ref.tag == (tag or "latest"):
                    return image
        wanted = f"{names[0] if names else ''}:{tag or 'latest'}"
        if digest:
            wanted = f"{names[0] if names else ''}@{digest}"
        import difflib

        known = [str(image.ref) for image in images]
        close = difflib.get_close_matches(wanted, known, n=3, cutoff=0.5)
        for name in names[1:]:
            close += [k for k in known if k.startswith(f"{name}:") and k not in close]
        raise ImageNotFound.in_store(wanted, self.location, close[:3])

    def lookup(self, text: str) -> StoredImage:
        """An image named on the command line: ``NAME[:TAG]``, ``NAME@sha256:...`` or a
        manifest digest ``sha256:...`` (or its first 12 or more hex digits)."""
        from idpwrap.refs import parse_local, split_tag_and_digest, validate_name

        hex_part = text.removeprefix("sha256:")
        found = []
        if hex_part and HEX.issuperset(hex_part):
            # the tag sorting first of an image's several: the same image named the same way
            matches: dict[str, StoredImage] = {}
            for image in sorted(self.images(), key=lambda image: str(image.ref)):
                matches.setdefault(image.digest, image)
            found = [image for digest, image in matches.items() if digest[7:].startswith(hex_part)]
        if text.startswith("sha256:") or (len(text) >= 12 and found):
            if len(found) == 1:
                return found[0]
            if found:
                raise ImageNotFound(
                    f"digest prefix {text} matches {len(found)} images ({self.root}): give more"
                    " of the digest, or NAME:TAG"
                )
            raise ImageNotFound(
                f"digest {text} is not in the store ({self.root}): name it by NAME:TAG"
            )
        if found and "@" not in text:
            try:
                ref = parse_local(text)
                return self.resolve([ref.name], ref.tag, None)
            except ImageNotFound:  # no image of that name: it is a digest prefix, too short
                raise ImageNotFound(
                    f"{text} is not a tag, and too short a digest prefix: give 12 or more hex"
                    f" digits of the digest, e.g. {found[0].digest[7:19]}"
                ) from None
        if "@" in text:
            name, tag, digest = split_tag_and_digest(text)
            validate_name(text, name)
            return self.resolve([name], tag, digest)
        ref = parse_local(text)
        return self.resolve([ref.name], ref.tag, None)

    def read_json_blob(self, digest: str) -> dict[str, Any]:
        path = self.blob_file(digest)
        try:
            with open(path, "rb") as file:
                return json.loads(file.read())
        except FileNotFoundError as error:
            raise StoreError(
                f"blob {digest} is missing from store {self.location}: rebuild the image"
            ) from error
        except ValueError as error:
            raise StoreError(f"blob {path} is not valid JSON: rebuild the image") from error
        except OSError as error:
            raise StoreError(f"cannot read blob {path}: {error.strerror}") from error

    def details(self, image: StoredImage) -> ImageDetails:
        manifest = self.read_json_blob(image.digest)
        if manifest.get("mediaType", image.descriptor.get("mediaType")) not in MANIFEST_TYPES:
            raise StoreError(f"{image.ref} is not a single-platform image manifest")
        config = self.read_json_blob(str(manifest["config"]["digest"]))
        return ImageDetails(image, manifest, config)

    # -- writing -------------------------------------------------------------------------

    def add_layout(self, layout: Path, refs: list[LocalRef]) -> StoredImage:
        """Move the single image of another OCI layout (a build's output) in under ``refs``.

        Blobs move in first, then one atomic index write names them; a re-used tag moves.
        """
        try:
            source_index = json.loads((layout / INDEX_FILE).read_text())
        except (OSError, ValueError) as error:
            raise StoreError(
                f"cannot read the new image's {layout / INDEX_FILE}: {error}"
            ) from error
        manifests = source_index.get("manifests", [])
        if len(manifests) != 1:
            raise StoreError(f"expected one image in {layout}, found {len(manifests)}")
        return self.add_images(layout, [(manifests[0], list(refs))])[0]

    def add_images(
        self, layout: Path, images: Sequence[tuple[dict[str, Any], list[LocalRef]]]
    ) -> list[StoredImage]:
        """Move the blobs of ``images`` (descriptors in ``layout``) in, then tag them all in one
        atomic index write. A blob the store has already stays as it is (same digest, same
        bytes); the image must be whole: every blob it references, of the declared size."""
        descriptors = [
            {key: value for key, value in descriptor.items() if key != "annotations"}
            for descriptor, _ in images
        ]
        needed = walk_blobs(descriptors, layout / "blobs" / "sha256", strict=True)
        added: list[StoredImage] = []
        moved: list[Path] = []
        try:
            with self.write_lock():
                self._move_blobs(layout / "blobs" / "sha256", needed, moved)
                index = self.read_index()
                names = {str(ref) for _, refs in images for ref in refs}
                kept = [entry for entry in index["manifests"] if ref_name(entry) not in names]
                entries = []
                for descriptor, (_, refs) in zip(descriptors, images, strict=True):
                    for ref in refs:
                        entry = {**descriptor, "annotations": {REF_ANNOTATION: str(ref)}}
                        entries = [e for e in entries if ref_name(e) != str(ref)] + [entry]
                        added = [a for a in added if a.ref != ref] + [StoredImage(ref, entry)]
                try:
                    self._write_index({**index, "manifests": kept + entries})
                except BaseException:
                    for path in moved:  # nothing names them: leave the store as it was
                        with contextlib.suppress(OSError):
                            path.unlink()
                    raise
        except OSError as error:
            raise self.write_error(error) from error
        return added

    def _move_blobs(
        self, source_dir: Path, needed: dict[str, int | None], moved: list[Path]
    ) -> None:
        """Rename the ``needed`` blobs of ``source_dir`` in; synced before the index names them."""
        new: list[Path] = []
        for digest in needed:
            name = digest.split(":", 1)[1]
            target = self.blob_dir / name
            if target.exists():
                continue  # content-addressed: the same name is the same bytes
            source = source_dir / name
            sync_file(source)
            try:
                os.replace(source, target)
            except OSError as error:
                if error.errno != errno.EXDEV:
                    raise
                self._copy_blob(source, target)
            moved.append(target)
            new.append(target)
        if new:
            sync_directory(self.blob_dir)

    def _copy_blob(self, source: Path, target: Path) -> None:
        import shutil

        partial = target.with_name(f".{target.name}.{os.urandom(4).hex()}")
        try:
            shutil.copyfile(source, partial)
            sync_file(partial)
            os.replace(partial, target)
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise

    def tag(self, source: StoredImage, refs: Sequence[LocalRef]) -> list[StoredImage]:
        """Give the image ``source`` points at more tags; a tag that names another moves."""
        descriptor = {
            key: value for key, value in source.descriptor.items() if key != "annotations"
        }
        try:
            with self.write_lock():
                index = self.read_index()
                if not any(entry.get("digest") == source.digest for entry in index["manifests"]):
                    raise ImageNotFound.in_store(str(source.ref), str(self.root), [])
                names = {str(ref) for ref in refs}
                kept = [entry for entry in index["manifests"] if ref_name(entry) not in names]
                entries = [
                    {**descriptor, "annotations": {REF_ANNOTATION: name}}
                    for name in dict.fromkeys(str(ref) for ref in refs)
                ]
                self._write_index({**index, "manifests": kept + entries})
        except OSError as error:
            raise self.write_error(error) from error
        return [
            StoredImage(ref, {**descriptor, "annotations": {REF_ANNOTATION: str(ref)}})
            for ref in refs
        ]

    def delete(self, ref: LocalRef) -> int:
        """Remove a tag, then the blobs no other tag reaches; returns the bytes freed."""
        freed, orphans, _ = self.delete_many([ref])
        return freed[0][1] + orphans.total_bytes

    def delete_many(
        self, refs: Sequence[LocalRef]
    ) -> tuple[list[tuple[LocalRef, int]], Unused, bool]:
        """Remove tags in one index write, then the blobs nothing reaches any more.

        Returns (tag, bytes only it used) for each tag, the blobs that were already
        unreferenced (an earlier rebuild's old image, or left by interrupted commands, see
        ``unused``), and whether collection ran (it waits for
        ``prune`` when a push or save is reading the store). All tags must exist, or none goes.
        """
        from idpwrap.store import gc

        unique = list(dict.fromkeys(refs))
        if not self.index_path.exists():  # no store yet: nothing to remove, nothing to create
            raise ImageNotFound.in_store(str(unique[0]), str(self.root), [])
        try:
            with self.write_lock():
                index = self.read_index()
                present = {ref_name(entry) for entry in index["manifests"]}
                for ref in unique:
                    if str(ref) not in present:
                        raise ImageNotFound.in_store(str(ref), str(self.root), [])
                stages = [index]
                for ref in unique:
                    entries = [e for e in stages[-1]["manifests"] if ref_name(e) != str(ref)]
                    # as written: without the provenance of images no tag reaches any more
                    stages.append(attached({**index, "manifests": entries}, self.blob_dir))
                self._write_index(stages[-1])
                return gc.collect_after_delete(self, unique, stages)
        except OSError as error:
            raise self.write_error(error) from error

    def prune(self, on_wait: Callable[[], None] | None = None) -> PruneReport:
        """Remove unreferenced blobs and what interrupted commands left behind (see gc)."""
        from idpwrap.store import gc

        return gc.prune(self, on_wait)
