"""``idpwrap images [--json]``: what the store holds."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from idpwrap.commands.shared import notice, open_store
from idpwrap.errors import StoreError
from idpwrap.store.api import Store
from idpwrap.units import human_size

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
    config: str = ""  # the config's digest: podman's image ID; empty for an index
    damage: str = ""  # why the image cannot be read, when a blob is missing or damaged
    platforms: tuple[str, ...] = ()  # os/arch of each child of an index, or of the image
    media_type: str = ""

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"

    def as_json(self) -> dict[str, object]:
        fields = {"reference": self.reference, **asdict(self)}
        fields["platforms"] = list(self.platforms)
        fields["mediaType"] = fields.pop("media_type")
        if not self.damage:
            del fields["damage"]
        return fields


def list_images(store: Store) -> list[ImageRow]:
    from idpwrap import platforms
    from idpwrap.store import indexes

    rows = []
    for image in store.images():
        media_type = str(image.descriptor.get("mediaType", ""))
        try:
            if indexes.is_index(image):
                size = sum(size for _, size in indexes.index_blobs(store, image))
                found = tuple(indexes.platforms_of(store, image))
                created, config = indexes.created(store, image), ""
            else:
                details = store.details(image)
                size, created = details.size, details.created
                found = (platforms.of(details.config),)
                config = str(details.manifest["config"]["digest"])
        except StoreError as error:
            rows.append(
                ImageRow(image.ref.name, image.ref.tag, image.digest, 0, "", "", str(error))
            )
            continue
        row = ImageRow(image.ref.name, image.ref.tag, image.digest, size, created, config)
        rows.append(replace(row, platforms=found, media_type=media_type))
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
        help="a JSON list: reference, name, tag, digest, size, created, config, platforms",
    )  # fmt: skip


def execute(args: argparse.Namespace) -> int:
    rows = list_images(open_store(args))
    for row in rows:
        if row.damage:
            notice(f"warning: {row.reference}: {row.damage}")
    if args.json:
        print(json.dumps([row.as_json() for row in rows], indent=2))
        return 0
    table = [("REPOSITORY", "TAG", "DIGEST", "SIZE", "PLATFORMS", "CREATED")]
    for row in rows:
        digest = row.digest.split(":", 1)[-1][:12]
        size = "damaged" if row.damage else human_size(row.size)
        shown = ",".join(row.platforms) or "-"
        table.append((row.name, row.tag, digest, size, shown, age(row.created)))
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    return 0
