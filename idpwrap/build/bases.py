"""Stored images as build bases: ``FROM base:v1`` builds on the store's ``base:v1``, offline.

buildah 1.28 reads an OCI layout through its ``oci:`` transport, in ``FROM`` and in
``COPY --from``. When such an image names one the store holds, the build gets a copy of the
Containerfile whose reference is ``oci:idpwrap-base-<digest>:image``: a small layout pinned to
the manifest resolved now (its ``index.json``, and ``blobs`` as a symbolic link to the store's),
in the directory buildah runs in. The path is relative on purpose: buildah names the base it
pulls into its own storage after the path (``localhost/idpwrap-base-<digest>:latest``), so the
name is valid whatever the store's path (colons, capitals) and is the same for the same base in
every build, instead of one more name per build.

Stage names, ``scratch``, and images the store does not have are left as written; ``$VAR`` in
``FROM`` is expanded from the ``ARG``s before the first ``FROM`` and ``--build-arg``, as
containerfile.py reads them.
"""

from __future__ import annotations

import json
import re
from collections import namedtuple
from pathlib import Path

from idpwrap.build.containerfile import (
    Instruction,
    build_arg_values,
    global_args,
    instructions,
    substitute,
)
from idpwrap.errors import UsageError
from idpwrap.refs import split_tag_and_digest, validate_name
from idpwrap.store import dirview
from idpwrap.store.api import StoredImage
from idpwrap.store.layout import LAYOUT_CONTENT, REF_ANNOTATION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from idpwrap.store.api import Store

    Chooser = Callable[[StoredImage, str | None], dict[str, object]]

LAYOUT_PREFIX = "idpwrap-base-"
LAYOUT_REF = "image"
# Names buildah would also look for locally: the store keeps them short.
LOCAL_PREFIXES = ("localhost/",)


class Base(namedtuple("Base", "written image directory descriptor", defaults=(None,))):
    """A base named in the Containerfile (``written``), the stored image it resolved to, the
    directory of its pinned layout, and the manifest pinned there (of a multi-platform image,
    the child of the platform being built; else the image's own)."""

    __slots__ = ()
    written: str
    image: StoredImage
    directory: str
    descriptor: dict[str, object] | None


def find_stored(images: Sequence[StoredImage], text: str) -> StoredImage | None:
    """The stored image ``text`` (as written after FROM) names, if the store has it."""
    if text.lower() == "scratch":
        return None
    candidates = [text] + [text[len(p) :] for p in LOCAL_PREFIXES if text.startswith(p)]
    for candidate in candidates:
        try:
            name, tag, digest = split_tag_and_digest(candidate)
            validate_name(candidate, name)
        except UsageError:
            continue
        for image in images:
            if image.ref.name != name:
                continue
            if digest:
                if image.digest == digest and tag in (None, image.ref.tag):
                    return image
            elif image.ref.tag == (tag or "latest"):
                return image
    return None


def registry_hosts(
    text: str, build_args: Sequence[str], images: Sequence[StoredImage]
) -> list[str]:
    """The registries buildah pulls this Containerfile's images from: each image that names a
    registry host (``HOST[:PORT]/PATH``) and is not in the store, once, lowercase."""
    from idpwrap.build.containerfile import sources
    from idpwrap.refs import looks_like_host

    values = {key: value for key, value in (arg.split("=", 1) for arg in build_args if "=" in arg)}
    hosts: list[str] = []
    for image in sources(text, values).images:
        first, slash, _ = image.partition("/")
        if slash and looks_like_host(first) and find_stored(images, image) is None:
            if first.lower() not in hosts:
                hosts.append(first.lower())
    return hosts


def rewrite(
    text: str,
    images: Sequence[StoredImage],
    build_args: Sequence[str],
    choose: Chooser | None = None,
) -> tuple[str, list[Base]]:
    """The Containerfile with each base the store has pointed at its pinned layout;
    ``choose(image, platform)`` gives the manifest to pin (``FROM --platform=`` or None)."""
    found = instructions(text)
    values = global_args(found, build_arg_values(build_args))
    stages: set[str] = set()
    bases: list[Base] = []
    edits: list[tuple[int, int, str]] = []
    for instruction in found:
        words = instruction.text.split()
        if instruction.keyword == "FROM":
            operands = [word for word in words[1:] if not word.startswith("--")]
            if not operands:
                continue
            written = operands[0]
            earlier_stage = written.lower() in stages
            if len(operands) >= 3 and operands[1].lower() == "as":
                stages.add(operands[2].lower())
            replacement = None
            flags = [word.split("=", 1)[1] for word in words[1:] if word.startswith("--platform=")]
            if not earlier_stage:
                wanted = substitute(flags[0], values) if flags else None
                replacement = _replacement(written, values, images, bases, choose, wanted)
            if replacement:
                edits.append(_edit(text, instruction, written, replacement))
        elif instruction.keyword in ("COPY", "ADD"):
            for word in words[1:]:
                if not word.startswith("--"):
                    break
                if word.lower().startswith("--from="):
                    written = word.split("=", 1)[1]
                    if written.isdigit() or written.lower() in stages:
                        break
                    replacement = _replacement(written, {}, images, bases, choose, None)
                    if replacement:
                        edits.append(_edit(text, instruction, word, f"--from={replacement}"))
                    break
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text, bases


def _replacement(
    written: str,
    values: dict[str, str | None],
    images: Sequence[StoredImage],
    bases: list[Base],
    choose: Chooser | None,
    platform: str | None,
) -> str | None:
    expanded = substitute(written, values) if "$" in written else written
    if not expanded:
        return None
    image = find_stored(images, expanded)
    if image is None:
        return None
    descriptor = choose(image, platform) if choose else image.descriptor
    directory = LAYOUT_PREFIX + str(descriptor["digest"]).split(":", 1)[1][:16]
    if not any(base.directory == directory for base in bases):
        bases.append(Base(expanded, image, directory, descriptor))
    if dirview.is_docker(descriptor):
        return f"dir:{directory}"  # buildah 1.28 reads only OCI manifests from a layout
    return f"oci:{directory}:{LAYOUT_REF}"


def _edit(text: str, instruction: Instruction, old: str, new: str) -> tuple[int, int, str]:
    """Replace the word ``old`` (after the keyword) within the instruction's own lines."""
    span = text[instruction.start : instruction.end]
    pattern = re.compile(r"(?<=\s)" + re.escape(old) + r"(?=\s|$)")
    match = pattern.search(span)
    if match is None:
        raise UsageError(f"cannot find {old!r} in the Containerfile's {instruction.keyword} line")
    start = instruction.start + match.start()
    return start, instruction.start + match.end(), new


def pin(store: Store, base: Base, directory: Path) -> None:
    """A one-image layout for ``base`` in ``directory``, its blobs the store's own."""
    layout = directory / base.directory
    if layout.exists():
        return
    pinned = base.descriptor or base.image.descriptor
    if dirview.is_docker(pinned):
        dirview.write(str(layout), str(store.root / "blobs" / "sha256"), str(pinned["digest"]))
        return
    layout.mkdir()
    (layout / "oci-layout").write_bytes(LAYOUT_CONTENT)
    descriptor = {k: v for k, v in pinned.items() if k not in ("annotations", "platform")}
    descriptor["annotations"] = {REF_ANNOTATION: LAYOUT_REF}
    index = {"schemaVersion": 2, "manifests": [descriptor]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "blobs").symlink_to(store.root / "blobs", target_is_directory=True)


def resolve(
    store: Store, text: str, build_args: Sequence[str], platform: str | None
) -> tuple[str, list[Base]]:
    """The stored bases of ``text`` for ``platform`` (a multi-platform base gives its child
    for it, the host's when None) and the text rewritten to their pinned layouts; nothing is
    written (``prepare`` pins them; a build copied from the registry cache only names them)."""
    images = store.images()
    if not images:
        return text, []
    from idpwrap import platforms
    from idpwrap.store import indexes

    def choose(image: StoredImage, wanted: str | None) -> dict[str, object]:
        if not indexes.is_index(image):
            return image.descriptor
        return indexes.child(store, image, wanted or platform or platforms.host()).descriptor

    return rewrite(text, images, build_args, choose)


def prepare(
    store: Store,
    containerfile: Path,
    build_args: Sequence[str],
    directory: Path,
    platform: str | None = None,
) -> tuple[Path, list[Base]]:
    """The Containerfile to build (a rewritten copy in ``directory`` when it uses stored
    bases, with their pinned layouts beside it) and those bases. A multi-platform base gives
    its child for ``platform`` (the host's when None)."""
    try:
        text = containerfile.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {containerfile}: {error}") from error
    if "from" not in text.lower():
        return containerfile, []
    rewritten, bases = resolve(store, text, build_args, platform)
    if not bases:
        return containerfile, []
    for base in bases:
        pin(store, base, directory)
    target = directory / "Containerfile"
    target.write_text(rewritten)
    return target, bases
