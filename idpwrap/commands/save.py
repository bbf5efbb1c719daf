"""``idpwrap save IMAGE... -o FILE.tar``: stored images as one oci-archive."""

from __future__ import annotations

from pathlib import Path

from idpwrap.commands.shared import open_store
from idpwrap.store.archivesave import save_archive
from idpwrap.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="NAME[:TAG] (repeatable)")
    parser.add_argument(
        "-o", "--output", required=True, metavar="FILE.tar",
        help="the oci-archive to write (replaced whole, or left as it was)",
    )  # fmt: skip


def execute(args: argparse.Namespace) -> int:
    store = open_store(args)
    images = list({str(image.ref): image for image in map(store.lookup, args.images)}.values())
    size = save_archive(store, images, Path(args.output))
    for image in images:
        print(f"Saved: {image.ref} ({image.digest})")
    print(f"Archive: {Path(args.output).absolute()} ({human_size(size)}, oci-archive)")
    return 0
