"""``idpwrap build``: buildah bud into a private OCI layout, then into the store under its tags."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from idpwrap import bases as stored_bases
from idpwrap import buildah
from idpwrap.commands import open_store
from idpwrap.refs import LocalRef, parse_local
from idpwrap.scratch import private_directory, remove_tree
from idpwrap.store import Store, StoredImage, layout_is_whole

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

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
    file = buildah.find_containerfile(context, containerfile).absolute()
    work = store.temp_dir("build")
    scratch = Path(private_directory("idpwrap-build-")) if ":" in str(work) else work
    try:
        with contextlib.ExitStack() as reading:
            reading.enter_context(store.reading())  # the bases' blobs stay while buildah reads
            file, bases = stored_bases.prepare(store, file, build_args, work)
            if not bases:
                reading.close()
            for base in bases:
                on_output(f"idpwrap: FROM {base.written}: the store's {base.image.ref}"
                          f" ({base.image.digest})\n")  # fmt: skip
            options = buildah.BuildOptions(
                context=context.absolute(), containerfile=file, build_args=tuple(build_args)
            )
            layout = work / "layout"
            argv = buildah.bud_argv(options, layout_reference(layout, scratch))
            buildah.build(
                argv, on_output, cwd=str(work), output_complete=lambda: layout_is_whole(layout)
            )
            return store.add_layout(layout, list(tags))
    finally:
        store.release(work)
        if scratch != work:
            remove_tree(scratch)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--context", default=".", metavar="DIR", help="the build context (default: .)"
    )
    parser.add_argument(
        "-t", "--tag", action="append", required=True, metavar="NAME[:TAG]",
        help="name of the image in the store (repeatable); no :TAG means :latest",
    )  # fmt: skip
    parser.add_argument(
        "-f", "--file", metavar="FILE",
        help="the Containerfile (default: the context's Containerfile, else its Dockerfile)",
    )  # fmt: skip
    parser.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not show buildah's output")


def execute(args: argparse.Namespace) -> int:
    tags = [parse_local(text) for text in args.tag]
    store = open_store(args)

    def show(text: str) -> None:
        if not args.quiet:
            sys.stderr.write(text)
            sys.stderr.flush()

    image = run(
        store, Path(args.context), tags, containerfile=args.file, build_args=args.build_arg,
        on_output=show,
    )  # fmt: skip
    for tag in tags:
        print(f"Image saved to local store: {tag}")
    print(f"Digest: {image.digest}")
    print(f"Store: {store.root}")
    return 0
