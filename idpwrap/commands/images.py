"""``idpwrap images [--json]``: what the store holds."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from idpwrap.commands import notice, open_store
from idpwrap.display import human_bytes
from idpwrap.errors import StoreError
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
    config: str = ""  # the config's digest: podman's image ID
    damage: str = ""  # why the image cannot be read, when a blob is missing or damaged

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"

    def as_json(self) -> dict[str, object]:
        fields = {"reference": self.reference, **asdict(self)}
        if not self.damage:
            del fields["damage"]
        return fields


def list_images(store: Store) -> list[ImageRow]:
    rows = []
    for image in store.images():
        try:
            details = store.details(image)
        except StoreError as error:
            rows.append(
                ImageRow(image.ref.name, image.ref.tag, image.digest, 0, "", "", str(error))
            )
            continue
        config = str(details.manifest["config"]["digest"])
        rows.append(
            ImageRow(
                image.ref.name, image.ref.tag, image.digest, details.size, details.created, config
            )
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
    parser.add_argument(
        "--json", action="store_true",
        help="a JSON list: reference, name, tag, digest, size, created, config",
    )  # fmt: skip


def execute(args: argparse.Namespace) -> int:
    rows = list_images(open_store(args))
    for row in rows:
        if row.damage:
            notice(f"warning: {row.reference}: {row.damage}")
    if args.json:
        print(json.dumps([row.as_json() for row in rows], indent=2))
        return 0
    table = [("REPOSITORY", "TAG", "DIGEST", "SIZE", "CREATED")]
    for row in rows:
        digest = row.digest.split(":", 1)[-1][:12]
        size = "damaged" if row.damage else human_bytes(row.size)
        table.append((row.name, row.tag, digest, size, age(row.created)))
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    return 0
