"""``idpwrap prune``: free blobs no tag uses and what interrupted commands left behind."""

from __future__ import annotations

from idpwrap.commands import notice, open_store
from idpwrap.display import human_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--build-cache", action="store_true",
        help="also empty buildah's layer cache (idpwrap's own storage): the next builds are cold",
    )  # fmt: skip


def execute(args: argparse.Namespace) -> int:
    store = open_store(args)
    report = store.prune(on_wait=lambda: notice("waiting for a push or save to finish reading"))
    print(
        f"Removed {report.blobs} unreferenced blob{'s' if report.blobs != 1 else ''}"
        f" ({human_bytes(report.blob_bytes)}) and {report.leftovers} leftover"
        f"{'s' if report.leftovers != 1 else ''} of interrupted commands"
        f" ({human_bytes(report.leftover_bytes)}): freed {human_bytes(report.freed)}"
    )
    if args.build_cache:
        from idpwrap import buildah, layercache, rootless

        storage = rootless.default_storage()
        rootless.prepare(storage)
        with layercache.exclusive(storage):
            freed = buildah.clear_cache(storage)
        print(f"Emptied buildah's layer cache {storage.root}: freed {human_bytes(freed)}")
    return 0
