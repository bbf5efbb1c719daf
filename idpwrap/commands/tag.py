"""``idpwrap tag SOURCE NEW...``: more names for a stored image, in one atomic index write."""

from __future__ import annotations

from idpwrap.commands.shared import open_store
from idpwrap.refs import parse_local

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="NAME[:TAG] or NAME@sha256:DIGEST")
    parser.add_argument(
        "new", nargs="+", metavar="NEW", help="NAME[:TAG] to give it; an existing tag moves"
    )


def execute(args: argparse.Namespace) -> int:
    refs = [parse_local(text) for text in args.new]
    store = open_store(args)
    source = store.lookup(args.source)
    store.ensure()
    for image in store.tag(source, refs):
        print(f"Tagged: {image.ref} ({image.digest})")
    return 0
