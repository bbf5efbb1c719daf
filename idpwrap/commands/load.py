"""``idpwrap load -i FILE.tar``: every image of an oci-archive or docker-archive into the store."""

from __future__ import annotations

from pathlib import Path

from idpwrap.commands.shared import open_store
from idpwrap.refs import parse_local
from idpwrap.store.archive import load_archive

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-i", "--input", required=True, metavar="FILE.tar",
        help="an oci-archive (idpwrap save, buildah push oci-archive:) or a docker-archive"
        " (docker save, podman save); .tar.gz too",
    )  # fmt: skip
    parser.add_argument(
        "-t", "--tag", action="append", default=[], metavar="NAME[:TAG]",
        help="name the archive's only image (repeatable), instead of the names it carries",
    )  # fmt: skip


def execute(args: argparse.Namespace) -> int:
    refs = [parse_local(text) for text in args.tag]
    store = open_store(args)
    for image in load_archive(store, Path(args.input), refs):
        print(f"Loaded image: {image.ref} ({image.digest})")
    return 0
