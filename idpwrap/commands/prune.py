"""``idpwrap prune``: free blobs no tag uses and what interrupted commands left behind."""

from __future__ import annotations

from idpwrap.commands import notice, open_store
from idpwrap.display import human_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def execute(args: argparse.Namespace) -> int:
    store = open_store(args)
    report = store.prune(on_wait=lambda: notice("waiting for a push or save to finish reading"))
    print(
        f"Removed {report.blobs} unreferenced blob{'s' if report.blobs != 1 else ''}"
        f" ({human_bytes(report.blob_bytes)}) and {report.leftovers} leftover"
        f"{'s' if report.leftovers != 1 else ''} of interrupted commands"
        f" ({human_bytes(report.leftover_bytes)}): freed {human_bytes(report.freed)}"
    )
    return 0
