"""``idpwrap images [--json]``: what the store holds."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from idpwrap.commands.shared import notice, open_store, stored_at
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


# podman's ``images --format`` fields and their column headers.
FORMAT_HEADERS = {
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "ID": "IMAGE ID",
    "Digest": "DIGEST",
    "Size": "SIZE",
    "Created": "CREATED",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Platforms": "PLATFORMS",
}


def format_values(row: ImageRow, stored: float | None) -> dict[str, str]:
    """One image's values for ``--format``, as podman prints them."""
    from idpwrap.commands import times

    short = (row.config or row.digest).split(":", 1)[-1][:12]
    created = times.since(row.created, stored)
    return {
        "Repository": row.name,
        "Tag": row.tag,
        "ID": short,
        "Digest": row.digest,
        "Size": "damaged" if row.damage else human_size(row.size),
        "Created": created,
        "CreatedSince": created,
        "CreatedAt": times.go_time(row.created),
        "Platforms": ",".join(row.platforms) or "-",
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true",
        help="a JSON list: reference, name, tag, digest, size, created, config, platforms",
    )  # fmt: skip
    parser.add_argument(
        "--format", metavar="TEMPLATE",
        help="podman's Go-template fields: {{.Repository}} {{.Tag}} {{.ID}} {{.Digest}}"
        " {{.Size}} {{.Created}} {{.CreatedSince}} {{.CreatedAt}} {{.Platforms}}; 'table ...'"
        " adds a header and aligns tab-separated columns; 'json' is --json",
    )  # fmt: skip


def execute(args: argparse.Namespace) -> int:
    from idpwrap.commands import gotemplate, times

    template = gotemplate.parse(args.format, FORMAT_HEADERS) if args.format else None
    store = open_store(args)
    rows = list_images(store)
    for row in rows:
        if row.damage:
            notice(f"warning: {row.reference}: {row.damage}")
    if args.json or (template is not None and template.json):
        print(json.dumps([row.as_json() for row in rows], indent=2))
        return 0
    if template is not None:
        values = [format_values(row, stored_at(store, row.digest)) for row in rows]
        for line in gotemplate.lines(template, values, FORMAT_HEADERS):
            print(line)
        return 0
    table = [("REPOSITORY", "TAG", "DIGEST", "SIZE", "PLATFORMS", "CREATED")]
    for row in rows:
        digest = row.digest.split(":", 1)[-1][:12]
        size = "damaged" if row.damage else human_size(row.size)
        shown = ",".join(row.platforms) or "-"
        created = times.since(row.created, stored_at(store, row.digest))
        table.append((row.name, row.tag, digest, size, shown, created))
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    return 0
