"""``idpwrap images``: what the store holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from idpwrap.commands import open_store
from idpwrap.display import human_bytes
from idpwrap.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


@dataclass(frozen=True)
class ImageRow:
    name: str
    tag: str
    digest: str
    size: int
    created: str


def list_images(store: Store) -> list[ImageRow]:
    rows = []
    for image in store.images():
        details = store.details(image)
        rows.append(
            ImageRow(image.ref.name, image.ref.tag, image.digest, details.size, details.created)
        )
    return rows


def age(created: str, now: datetime | None = None) -> str:
    """``5 minutes ago``, as podman shows it; the raw value when it cannot be read."""
    if not created:
        return "unknown"
    try:
        moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return created
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = seconds // length
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "seconds ago"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def execute(args: argparse.Namespace) -> int:
    table = [("REPOSITORY", "TAG", "DIGEST", "SIZE", "CREATED")]
    for row in list_images(open_store(args)):
        digest = row.digest.split(":", 1)[-1][:12]
        table.append((row.name, row.tag, digest, human_bytes(row.size), age(row.created)))
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    return 0
