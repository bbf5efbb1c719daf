"""``idpwrap build``: buildah bud into a private OCI layout, then into the store under its tags."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from idpwrap import buildah
from idpwrap.refs import LocalRef
from idpwrap.scratch import private_directory, remove_tree
from idpwrap.store import Store, StoredImage

# buildah's oci: transport takes everything after the first colon as the image name.
LAYOUT_IMAGE_NAME = "build"


def layout_reference(layout: Path, scratch: Path) -> str:
    """``oci:PATH:NAME`` for ``layout``, through a colon-free symlink when the path has one."""
    if ":" in str(layout):
        link = scratch / "layout"
        link.symlink_to(layout, target_is_directory=True)
        layout = link
    return f"oci:{layout}:{LAYOUT_IMAGE_NAME}"


def run(
    store: Store,
    context: Path,
    tags: Sequence[LocalRef],
    *,
    containerfile: str | None = None,
    build_args: Sequence[str] = (),
    on_output: Callable[[str], None],
) -> StoredImage:
    options = buildah.BuildOptions(
        context=context,
        containerfile=buildah.find_containerfile(context, containerfile),
        build_args=tuple(build_args),
    )
    work = store.temp_dir("build")
    scratch = Path(private_directory("idpwrap-build-")) if ":" in str(work) else work
    try:
        layout = work / "layout"
        argv = buildah.bud_argv(options, layout_reference(layout, scratch))
        buildah.build(argv, on_output)
        return store.add_layout(layout, list(tags))
    finally:
        remove_tree(work)
        if scratch != work:
            remove_tree(scratch)


def describe_context(context: Path) -> str:
    return os.path.relpath(context) if not context.is_absolute() else str(context)
