"""Stored images out as one oci-archive (``idpwrap save``).

An oci-archive is a tar of an OCI image layout: ``oci-layout``, ``index.json`` and
``blobs/sha256/...``, the images named by the ``org.opencontainers.image.ref.name`` annotation
(``NAME:TAG``, as in the store). It is written here, not by skopeo, so that several images share
one archive and their blobs are in it once; the file appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from pathlib import Path

from idpwrap import log
from idpwrap.errors import StoreError, UsageError
from idpwrap.store.layout import INDEX_FILE, LAYOUT_CONTENT, LAYOUT_FILE, REF_ANNOTATION, walk_blobs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from idpwrap.store.api import Store, StoredImage


def save_archive(store: Store, images: Sequence[StoredImage], output: Path) -> int:
    """Write ``images`` as one oci-archive at ``output``, replaced atomically; its size. The
    store's blobs are held against collection while they are read."""
    with store.reading():
        return write_oci_archive(store, images, output)


def write_oci_archive(store: Store, images: Sequence[StoredImage], output: Path) -> int:
    """One oci-archive of ``images`` at ``output``; returns its size in bytes.

    The tar is written to an unnamed file in the output's directory (``O_TMPFILE``) and linked
    into place when complete: an interrupted or failed save leaves the previous file as it was
    and nothing new behind.
    """
    output = output.absolute()
    if output.is_dir():
        raise UsageError(f"-o {output} is a directory: give the archive's file name")
    if not output.parent.is_dir():
        raise UsageError(f"-o {output}: directory {output.parent} does not exist")
    entries = []
    for image in images:
        descriptor = {k: v for k, v in image.descriptor.items() if k != "annotations"}
        entries.append({**descriptor, "annotations": {REF_ANNOTATION: str(image.ref)}})
    from idpwrap.store.referrers import for_images

    entries += for_images(store, entries)  # their provenance, untagged as in the store
    blobs = walk_blobs(entries, store.blob_dir, strict=True)
    index = json.dumps({"schemaVersion": 2, "manifests": entries}, separators=(",", ":"))
    existed = output.exists()
    try:
        fd, partial = _open_output(output)
    except OSError as error:
        raise _output_error(output, error, existed) from error
    try:
        _write_tar(fd, store, list(blobs), index.encode())
        os.fsync(fd)
        size = os.fstat(fd).st_size
        _publish(fd, partial, output)
    except BaseException as error:  # a full disk, or Ctrl-C: no partial file stays
        if partial is not None:
            with contextlib.suppress(OSError):
                os.unlink(partial)
        if isinstance(error, OSError):
            raise _output_error(output, error, existed) from error
        raise
    finally:
        os.close(fd)
    log.info("wrote %d blobs of %d images to %s", len(blobs), len(images), output)
    return size


def _open_output(output: Path) -> tuple[int, Path | None]:
    """A file to write the archive into: unnamed if the filesystem can link one in later
    (some kernels and sandboxes refuse ``/proc/self/fd`` links), else a hidden name."""
    if _can_link_unnamed_files(output.parent):
        return os.open(output.parent, os.O_TMPFILE | os.O_WRONLY, 0o644), None
    partial = output.with_name(f".{output.name}.{os.urandom(4).hex()}.partial")
    return os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), partial


def _can_link_unnamed_files(directory: Path) -> bool:
    try:
        probe = os.open(directory, os.O_TMPFILE | os.O_WRONLY, 0o600)
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return False
        raise
    name = directory / f".idpwrap-link-probe.{os.urandom(4).hex()}"
    try:
        os.link(f"/proc/self/fd/{probe}", name)
    except OSError:
        return False
    else:
        os.unlink(name)
        return True
    finally:
        os.close(probe)


def _publish(fd: int, partial: Path | None, output: Path) -> None:
    if partial is None:
        source = f"/proc/self/fd/{fd}"
        try:
            os.link(source, output)
        except FileExistsError:
            partial = output.with_name(f".{output.name}.{os.urandom(4).hex()}.partial")
            os.link(source, partial)
    if partial is not None:
        try:
            os.replace(partial, output)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise
    directory = os.open(output.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _write_tar(fd: int, store: Store, digests: list[str], index: bytes) -> None:
    import io
    import tarfile

    def member(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o755 if directory else 0o644
        info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
        info.mtime = int(time.time())
        return info

    with (
        os.fdopen(fd, "wb", closefd=False) as raw,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.addfile(member(LAYOUT_FILE, len(LAYOUT_CONTENT)), io.BytesIO(LAYOUT_CONTENT))
        tar.addfile(member("blobs", directory=True))
        tar.addfile(member("blobs/sha256", directory=True))
        for digest in digests:
            path = store.blob_path(digest)
            with path.open("rb") as blob:
                info = member(f"blobs/sha256/{path.name}", os.fstat(blob.fileno()).st_size)
                tar.addfile(info, blob)
        tar.addfile(member(INDEX_FILE, len(index)), io.BytesIO(index))


def _output_error(output: Path, error: OSError, existed: bool) -> StoreError:
    kept = f"{output} is as it was" if existed else "nothing was written"
    reason = error.strerror or str(error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        from idpwrap import diskfull

        place = diskfull.Place(
            str(output.parent), f"the archive {output}", "free some space there or choose"
            " another place with -o"
        )  # fmt: skip
        return diskfull.from_error(error, [place, diskfull.temp_place()], kept)
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoreError(f"cannot write {output} ({reason}): choose another place with -o; {kept}")
    return StoreError(f"cannot write {output}: {reason}; {kept}")
