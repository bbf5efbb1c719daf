"""``idpwrap rmi NAME[:TAG]...``: remove tags from the store, and the blobs nothing else uses."""

from __future__ import annotations

from collections.abc import Sequence

from idpwrap.commands.shared import notice, open_store
from idpwrap.refs import parse_local
from idpwrap.store.api import Store
from idpwrap.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def remove(store: Store, texts: Sequence[str]) -> list[tuple[str, int]]:
    """Untag every image in one step (all exist, or nothing changes), then free the blobs
    nothing uses any more; (tag, bytes only it used) each."""
    refs = [parse_local(text) for text in texts]
    freed, orphans, collected = store.delete_many(refs)
    if not collected:
        notice("a push or save is reading the store: run 'idpwrap prune' later to free the space")
    else:
        if orphans.untagged:
            notice(
                f"also freed {human_size(orphans.untagged_bytes)} of layers no tag uses any more"
                " (images whose tags a rebuild or rmi had moved away)"
            )
        if orphans.stray:
            notice(
                f"also freed {human_size(orphans.stray_bytes)} that interrupted commands had left"
            )
    return [(str(ref), size) for ref, size in freed]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="NAME[:TAG]")


def execute(args: argparse.Namespace) -> int:
    for tag, freed in remove(open_store(args), args.images):
        print(f"Untagged: {tag} (freed {human_size(freed)})")
    return 0
