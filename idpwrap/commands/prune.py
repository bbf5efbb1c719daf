"""``idpwrap prune``: free blobs no tag uses and what interrupted commands left behind."""

from __future__ import annotations

from idpwrap.commands.shared import notice, open_store
from idpwrap.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--build-cache", action="store_true",
        help="also empty buildah's layer cache (idpwrap's own storage, one per user: every"
        " store's builds share it, whatever --store says): the next builds are cold",
    )  # fmt: skip


def execute(args: argparse.Namespace) -> int:
    store = open_store(args)
    report = store.prune(on_wait=lambda: notice("waiting for a push or save to finish reading"))
    stray = report.blobs - report.untagged + report.leftovers
    stray_bytes = report.blob_bytes - report.untagged_bytes + report.leftover_bytes
    print(
        f"Removed {report.untagged} blob{'s' if report.untagged != 1 else ''} of layers no tag"
        f" uses any more ({human_size(report.untagged_bytes)}) and {stray} leftover"
        f"{'s' if stray != 1 else ''} of interrupted commands ({human_size(stray_bytes)}):"
        f" freed {human_size(report.freed)}"
    )
    if args.build_cache:
        from idpwrap.build import layercache
        from idpwrap.tools import buildah, rootless

        storage = rootless.default_storage()
        rootless.prepare(storage)
        with layercache.exclusive(storage):
            size = human_size(buildah.tree_bytes(storage.root))
            notice(
                f"emptying buildah's layer cache {storage.root} ({size}), which the builds of"
                " every store of this user share"
            )
            freed = buildah.clear_cache(storage)
        print(f"Emptied buildah's layer cache {storage.root}: freed {human_size(freed)}")
    return 0
