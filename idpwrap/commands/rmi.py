"""``idpwrap rmi [-f] NAME[:TAG]|ID...``: remove tags from the store, and the blobs nothing else
uses; an image named by ID with all its tags (several only with -f, as podman)."""

from __future__ import annotations

from collections.abc import Sequence

from idpwrap.commands.shared import notice, open_store
from idpwrap.errors import UsageError
from idpwrap.refs import parse_local
from idpwrap.store.api import Store
from idpwrap.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def remove(store: Store, texts: Sequence[str], force: bool = False) -> list[tuple[str, int]]:
    """Untag every image in one step (all exist, or nothing changes), then free the blobs
    nothing uses any more; (tag, bytes only it used) each. An image named by ID goes with all
    its tags; when it has several, only with ``force`` (podman's ``rmi -f``)."""
    from idpwrap.store import ids

    names: list[str] = []
    for text in texts:
        tags = ids.tags_by_id(store, text)
        if tags is None:
            names.append(text)
        elif len(tags) > 1 and not force:
            raise UsageError(
                f"image {text} has {len(tags)} tags ({', '.join(map(str, tags))}): name the tags"
                f" to remove, or remove the image with all of them: idpwrap rmi -f {text}"
            )
        else:
            names += [str(tag) for tag in tags]
    refs = [parse_local(text) for text in names]
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
    parser.add_argument(
        "images", nargs="+", metavar="NAME[:TAG]|ID",
        help="a tag, or an image by ID or digest (12+ hex digits, as images shows them)",
    )  # fmt: skip
    parser.add_argument(
        "-f", "--force", action="store_true",
        help="an image named by ID goes with every tag it has (as podman rmi -f)",
    )  # fmt: skip


def execute(args: argparse.Namespace) -> int:
    for tag, freed in remove(open_store(args), args.images, args.force):
        print(f"Untagged: {tag} (freed {human_size(freed)})")
    return 0
