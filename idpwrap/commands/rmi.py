"""``idpwrap rmi``: remove tags from the store, and the blobs nothing else uses."""

from __future__ import annotations

from collections.abc import Sequence

from idpwrap.commands import open_store
from idpwrap.display import human_bytes
from idpwrap.refs import parse_local
from idpwrap.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def remove(store: Store, texts: Sequence[str]) -> list[tuple[str, int]]:
    """Untag each image, freeing the blobs nothing else uses; (tag, bytes freed) each."""
    refs = [parse_local(text) for text in texts]
    return [(str(ref), store.delete(ref)) for ref in refs]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="NAME[:TAG]")


def execute(args: argparse.Namespace) -> int:
    for tag, freed in remove(open_store(args), args.images):
        print(f"Untagged: {tag} (freed {human_bytes(freed)})")
    return 0
