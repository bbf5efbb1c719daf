"""Image archives in: an oci-archive or a docker-archive loaded into the store (``save``'s
side is ``archivesave``).

``load`` reads an oci-archive in one pass, taking only ``blobs/sha256/<64 hex>`` members and
checking each against its digest (a member's name never becomes any other path); a
docker-archive (``manifest.json``, as ``docker save`` and ``podman save`` write it) goes
through ``skopeo copy docker-archive:FILE:@N oci:...``, which also compresses its layers.
"""

from __future__ import annotations

import json
from pathlib import Path

from idpwrap import log
from idpwrap.errors import ArchiveError, StoreError, UsageError
from idpwrap.refs import DIGEST_RE, LocalRef, parse_local
from idpwrap.store.layout import (
    INDEX_FILE,
    INDEX_TYPES,
    LAYOUT_CONTENT,
    LAYOUT_FILE,
    REF_ANNOTATION,
    is_blob_name,
    walk_blobs,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import tarfile
    from collections.abc import Sequence
    from typing import Any

    from idpwrap.store.api import Store, StoredImage


CHUNK = 1024 * 1024
# The small files of an archive, kept in memory; anything larger is not a real one.
MAX_METADATA = 16 * 1024 * 1024
DOCKER_MANIFEST = "manifest.json"
# docker save (25+) names the image in full here and gives only the tag in ref.name.
CONTAINERD_NAME = "io.containerd.image.name"
# Registries' spellings of names the store keeps short: docker.io/library/alpine -> alpine.
SHORTENED_PREFIXES = ("docker.io/library/", "index.docker.io/library/", "docker.io/", "localhost/")
GO_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def load_archive(store: Store, source: Path, refs: Sequence[LocalRef] = ()) -> list[StoredImage]:
    """Every image of an oci-archive or docker-archive into ``store``, under its names (or
    ``refs``), unpacked in a working directory of the store and added in one index write."""
    try:
        with store.working_dir("load") as work:
            layout, images = read_archive(source, work, list(refs))
            added = store.add_images(layout, images)
            from idpwrap.store.referrers import attach_from_layout

            attach_from_layout(store, layout)  # the provenance save kept with them
            return added
    except OSError as error:  # writing the unpacked blobs: the store's own disk
        raise store.write_error(error) from error


def read_archive(
    source: Path, work: Path, refs: list[LocalRef]
) -> tuple[Path, list[tuple[dict[str, Any], list[LocalRef]]]]:
    """Unpack ``source`` into an OCI layout under ``work``; its images and their names.

    ``refs`` (from ``-t``) name the archive's only image instead of the names it carries.
    """
    import tarfile

    if not source.is_file():
        raise UsageError(f"{source} is not a file: give an oci-archive or docker-archive with -i")
    layout = work / "layout"
    blob_dir = layout / "blobs" / "sha256"
    blob_dir.mkdir(parents=True)
    (layout / LAYOUT_FILE).write_bytes(LAYOUT_CONTENT)
    try:
        tar = tarfile.open(source, mode="r|*")
    except OSError as error:
        if error.errno is not None:
            raise UsageError(f"cannot read {source}: {error.strerror}") from error
        raise ArchiveError(f"{source} is not a tar archive ({error})") from error
    except tarfile.TarError as error:
        raise ArchiveError(
            f"{source} is not a tar archive ({error}): give an oci-archive or docker-archive"
        ) from error
    with tar:
        metadata = _unpack(tar, source, blob_dir)
    if INDEX_FILE in metadata:
        (layout / INDEX_FILE).write_bytes(metadata[INDEX_FILE])  # its provenance: see load
        return layout, _oci_images(source, metadata[INDEX_FILE], blob_dir, refs)
    if DOCKER_MANIFEST in metadata:
        return layout, _docker_images(source, metadata[DOCKER_MANIFEST], layout, refs)
    raise ArchiveError(
        f"{source} is neither an oci-archive (no index.json) nor a docker-archive (no"
        " manifest.json)"
    )


def _unpack(tar: tarfile.TarFile, source: Path, blob_dir: Path) -> dict[str, bytes]:
    """One pass over the archive: blobs to ``blob_dir``, checked; small metadata to memory."""
    import tarfile

    metadata: dict[str, bytes] = {}
    try:
        for member in tar:
            name = member.name
            while name.startswith("./"):
                name = name[2:]
            if not member.isfile():
                continue
            parts = name.split("/")
            if name in (INDEX_FILE, DOCKER_MANIFEST, LAYOUT_FILE):
                if member.size > MAX_METADATA:
                    raise ArchiveError(f"{source}: {name} is {member.size} bytes, too large")
                handle = tar.extractfile(member)
                metadata[name] = handle.read() if handle else b""
            elif len(parts) == 3 and parts[:2] == ["blobs", "sha256"] and is_blob_name(parts[2]):
                handle = tar.extractfile(member)
                if handle is not None:
                    _unpack_blob(handle, blob_dir / parts[2], source)
    except tarfile.TarError as error:
        raise ArchiveError(f"{source} is damaged or cut short ({error})") from error
    except (EOFError, ValueError) as error:
        raise ArchiveError(f"{source} is damaged or cut short ({error})") from error
    except OSError as error:
        if error.errno is None:  # gzip, bz2, lzma: a bad stream
            raise ArchiveError(f"{source} is damaged or cut short ({error})") from error
        raise
    return metadata


def _unpack_blob(handle: Any, target: Path, source: Path) -> None:
    import hashlib

    digest = hashlib.sha256()
    with target.open("wb") as out:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != target.name:
        raise ArchiveError(
            f"{source} is damaged: blob {target.name[:12]} does not match its sha256 digest"
        )


def _oci_images(
    source: Path, index_data: bytes, blob_dir: Path, refs: list[LocalRef]
) -> list[tuple[dict[str, Any], list[LocalRef]]]:
    try:
        index = json.loads(index_data)
        entries = index["manifests"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ValueError("'manifests' is not a list of descriptors")
    except (ValueError, KeyError, TypeError) as error:
        raise ArchiveError(f"{source}: index.json is not an OCI image index ({error})") from error
    from idpwrap.store.referrers import is_referrer

    entries = [entry for entry in entries if not is_referrer(entry)]  # provenance: see load
    if not entries:
        raise ArchiveError(f"{source} holds no image")
    if refs and len(entries) != 1:
        raise UsageError(f"-t names one image, but {source} holds {len(entries)}: leave -t out")
    images = []
    for number, entry in enumerate(entries):
        names = refs or _oci_names(entry, source, number)
        images.append((_whole_or_single(entry, blob_dir, source), names))
    return images


def _oci_names(entry: dict[str, Any], source: Path, number: int) -> list[LocalRef]:
    annotations = entry.get("annotations") if isinstance(entry.get("annotations"), dict) else {}
    full = str(annotations.get(CONTAINERD_NAME, "") or "")
    name = full or str(annotations.get(REF_ANNOTATION, "") or "")
    if not name:
        raise ArchiveError(
            f"image {number + 1} of {source} has no name: give it one with -t NAME:TAG"
        )
    if ":" not in name.rsplit("/", 1)[-1]:
        raise ArchiveError(
            f"image {number + 1} of {source} is named only {name!r}, without NAME:TAG: give it a"
            " name with -t NAME:TAG"
        )
    return [short_name(name, source)]


def short_name(text: str, source: Path) -> LocalRef:
    """A name from an archive as the store keeps it: ``docker.io/library/alpine:3`` is
    ``alpine:3``, ``localhost/myapp:v1`` is ``myapp:v1``; validated like any tag."""
    for prefix in SHORTENED_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    try:
        return parse_local(text)
    except UsageError as error:
        raise ArchiveError(
            f"{source} names an image {text!r} the store cannot take: {error}"
        ) from error


def _whole_or_single(entry: dict[str, Any], blob_dir: Path, source: Path) -> dict[str, Any]:
    """A multi-platform index as it is when the archive holds every child (the store keeps
    indexes whole), else the manifest for this machine (an archive of one platform's blobs)."""
    if entry.get("mediaType") not in INDEX_TYPES:
        return entry
    try:
        walk_blobs([entry], blob_dir, strict=True)
    except StoreError as error:
        log.info("%s: %s: loading this machine's image only", source, error)
        return _single_platform(entry, blob_dir, source)
    return entry


def _single_platform(entry: dict[str, Any], blob_dir: Path, source: Path) -> dict[str, Any]:
    """The manifest for this machine, when ``entry`` is an index of several platforms."""
    import platform

    descriptor = entry
    for _ in range(4):
        if descriptor.get("mediaType") not in INDEX_TYPES:
            return descriptor
        digest = str(descriptor.get("digest", ""))
        if not DIGEST_RE.match(digest):
            raise ArchiveError(f"{source}: an image index has an odd digest {digest!r}")
        try:
            index = json.loads((blob_dir / digest.split(":", 1)[1]).read_bytes())
        except (OSError, ValueError) as error:
            raise ArchiveError(f"{source}: image index {digest} is missing or damaged") from error
        machine = platform.machine()
        wanted = ("linux", GO_ARCHITECTURES.get(machine, machine))
        offered = []
        for child in index.get("manifests", []):
            found = child.get("platform") or {}
            offered.append(f"{found.get('os')}/{found.get('architecture')}")
            if (found.get("os"), found.get("architecture")) == wanted:
                descriptor = child
                break
        else:
            raise ArchiveError(
                f"{source} has no {'/'.join(wanted)} image, only {', '.join(offered) or 'none'}"
            )
    raise ArchiveError(f"{source}: image indexes nested too deep")


def _docker_images(
    source: Path, manifest_data: bytes, layout: Path, refs: list[LocalRef]
) -> list[tuple[dict[str, Any], list[LocalRef]]]:
    try:
        manifest = json.loads(manifest_data)
        if not isinstance(manifest, list) or not all(isinstance(i, dict) for i in manifest):
            raise ValueError("not a list of images")
    except ValueError as error:
        raise ArchiveError(
            f"{source}: manifest.json is not a docker-archive's ({error})"
        ) from error
    if not manifest:
        raise ArchiveError(f"{source} holds no image")
    if refs and len(manifest) != 1:
        raise UsageError(f"-t names one image, but {source} holds {len(manifest)}: leave -t out")
    names = []
    for number, item in enumerate(manifest):
        tags = item.get("RepoTags") or []
        if not refs and not tags:
            raise ArchiveError(
                f"image {number + 1} of {source} has no name: give it one with -t NAME:TAG"
            )
        names.append(refs or [short_name(str(tag), source) for tag in tags])
    from idpwrap.scratch import private_directory, remove_tree

    scratch = Path(private_directory("idpwrap-load-"))
    try:
        archive_path = _colon_free(source.absolute(), scratch / "archive.tar")
        layout_path = _colon_free(layout, scratch / "layout")
        for number in range(len(manifest)):
            _skopeo_copy(
                f"docker-archive:{archive_path}:@{number}",
                f"oci:{layout_path}:image-{number}",
                layout,
            )
    finally:
        remove_tree(scratch)
    index = json.loads((layout / INDEX_FILE).read_text())
    by_name = {str((e.get("annotations") or {}).get(REF_ANNOTATION)): e for e in index["manifests"]}
    return [(by_name[f"image-{number}"], names[number]) for number in range(len(manifest))]


def _colon_free(path: Path, link: Path) -> Path:
    """skopeo reads everything after the first colon of ``oci:PATH`` as the reference."""
    if ":" not in str(path):
        return path
    link.symlink_to(path)
    return link


def _skopeo_copy(source: str, destination: str, layout: Path) -> None:
    from idpwrap.tools import skopeo

    finished = skopeo.convert(source, destination)
    if finished.exit_code != 0:
        from idpwrap import diskfull

        # the layout is in the store's working directory, on the store's filesystem
        places = [diskfull.store_place(layout), diskfull.temp_place()]
        full = diskfull.from_output(finished.stderr, places, "the store's content is intact")
        if full is not None:
            raise full
        match = skopeo.FATAL_MESSAGE.search(finished.stderr)
        lines = finished.stderr.strip().splitlines()
        detail = match.group(1) if match else (lines[-1] if lines else f"exit {finished.exit_code}")
        raise ArchiveError(f"skopeo cannot read {source}: {detail}")
