"""``idpwrap images`` and ``idpwrap rmi``: what the store holds, and removing tags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from idpwrap.refs import parse_local
from idpwrap.store import Store


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


def remove(store: Store, texts: Sequence[str]) -> list[tuple[str, int]]:
    """Untag each image, freeing the blobs nothing else uses; (tag, bytes freed) each."""
    refs = [parse_local(text) for text in texts]
    return [(str(ref), store.delete(ref)) for ref in refs]


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
