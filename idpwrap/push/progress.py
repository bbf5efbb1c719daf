"""Real push progress, parsed from the bars skopeo draws on its (pseudo-)terminal.

skopeo offers no machine-readable progress; under a terminal it draws one line per blob,
redrawn in place every ~150 ms::

    Copying blob 9edd8528e38e [=========>-------------] 19.0MiB / 30.0MiB
    Copying blob 9edd8528e38e done
    Copying blob 9edd8528e38e skipped: already exists
    Copying config bb486132d6 done
    Writing manifest to image destination

Blob ids are the first 12 hex digits of the digest (10 for the config); they are matched by
prefix against the local manifest, whose sizes give the exact totals. Counts never fall: when
skopeo retries a blob its bar starts again from 0, and we hold the count until it passes.
"""

from __future__ import annotations

import re
from collections import namedtuple
from enum import Enum

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]")
COPY_LINE = re.compile(r"Copying (blob|config) ([0-9a-f]{6,64})\b\s*(.*)$")
BAR_SIZES = re.compile(
    r"([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?i?B|b)\s*/\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?i?B|b)"
)
UNIT_BYTES = {
    "b": 1,
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
}
MANIFEST_LINE = "Writing manifest to image destination"


class BlobState(Enum):
    PENDING = "pending"
    COPYING = "copying"
    DONE = "done"
    SKIPPED = "skipped"


class Blob:
    """One blob of the manifest: its exact size, and how much of it skopeo has copied."""

    __slots__ = ("digest", "done", "kind", "state", "total")

    def __init__(
        self, digest: str, total: int, kind: str, done: int = 0,
        state: BlobState = BlobState.PENDING,
    ) -> None:  # fmt: skip
        self.digest = digest
        self.total = total
        self.kind = kind  # "blob" or "config"
        self.done = done
        self.state = state

    def __repr__(self) -> str:
        return f"Blob({self.digest[:19]}, {self.done}/{self.total}, {self.state.value})"

    @property
    def finished(self) -> bool:
        return self.state in (BlobState.DONE, BlobState.SKIPPED)


class Event(namedtuple("Event", "kind blob done percent", defaults=(None, 0, 0))):
    """Something the display may show: a blob's count moved, a blob ended, the manifest.

    ``done`` and ``percent`` are the blob's count and the overall percentage at that moment.
    """

    __slots__ = ()
    kind: str  # "progress", "blob_done", "manifest"
    blob: Blob | None
    done: int
    percent: int


def parse_size(number: str, unit: str) -> int:
    return int(float(number) * UNIT_BYTES.get(unit, 1))


class PushProgress:
    """Per-blob byte counts and the overall percentage of one ``skopeo copy``."""

    def __init__(self, blobs: list[Blob]) -> None:
        self.blobs = blobs
        self.manifest_seen = False
        self.completed = False
        self._pending_text = ""

    @classmethod
    def for_manifest(cls, layers: list[tuple[str, int]], config: tuple[str, int]) -> PushProgress:
        blobs = [Blob(digest, size, "blob") for digest, size in layers]
        blobs.append(Blob(config[0], config[1], "config"))
        return cls(blobs)

    @property
    def total_bytes(self) -> int:
        return sum(blob.total for blob in self.blobs)

    @property
    def done_bytes(self) -> int:
        return sum(blob.done for blob in self.blobs)

    @property
    def percent(self) -> int:
        """Whole percent; 100 only once skopeo has finished writing the manifest."""
        if self.completed:
            return 100
        total = self.total_bytes
        if total <= 0:
            return 99 if self.manifest_seen else 0
        return min(99, self.done_bytes * 100 // total)

    def find(self, kind: str, short_id: str) -> Blob | None:
        matches = [b for b in self.blobs if b.digest.split(":", 1)[-1].startswith(short_id)]
        preferred = [b for b in matches if b.kind == kind]
        chosen = preferred or matches
        return chosen[0] if chosen else None

    def _event(self, kind: str, blob: Blob) -> Event:
        return Event(kind, blob, blob.done, self.percent)

    def feed(self, text: str) -> list[Event]:
        """Take raw terminal output in any chunking; return what changed."""
        text = self._pending_text + text
        lines = re.split(r"\r\n|\r|\n", text)
        self._pending_text = lines.pop()
        events: list[Event] = []
        for line in lines:
            events.extend(self._parse_line(line))
        return events

    def flush(self) -> list[Event]:
        """The last, unterminated line, once the process has ended."""
        text, self._pending_text = self._pending_text, ""
        return self._parse_line(text) if text else []

    def finish(self) -> list[Event]:
        """skopeo exited 0: the manifest is written, every blob is there."""
        events = self.flush()
        for blob in self.blobs:
            if not blob.finished:
                blob.done, blob.state = blob.total, BlobState.DONE
                events.append(self._event("blob_done", blob))
        self.completed = True
        events.append(Event("manifest", None, 0, self.percent))
        return events

    def _parse_line(self, raw: str) -> list[Event]:
        line = ANSI_ESCAPE.sub("", raw).strip()
        if line.startswith(MANIFEST_LINE):
            if self.manifest_seen:
                return []
            self.manifest_seen = True
            return []
        match = COPY_LINE.search(line)
        if not match:
            return []
        kind, short_id, rest = match.groups()
        blob = self.find(kind, short_id)
        if blob is None or blob.finished:
            return []
        if rest.startswith("done"):
            blob.done, blob.state = blob.total, BlobState.DONE
            return [self._event("blob_done", blob)]
        if rest.startswith("skipped"):
            blob.done, blob.state = blob.total, BlobState.SKIPPED
            return [self._event("blob_done", blob)]
        sizes = BAR_SIZES.search(rest)
        if not sizes:
            if blob.state is BlobState.PENDING:
                blob.state = BlobState.COPYING
                return [self._event("progress", blob)]
            return []
        current = parse_size(sizes.group(1), sizes.group(2))
        # The bar's figures are rounded to 0.1 of a unit: never claim the blob is complete
        # before skopeo says "done".
        current = min(current, max(blob.total - 1, 0))
        blob.state = BlobState.COPYING
        if current <= blob.done:
            return []
        blob.done = current
        return [self._event("progress", blob)]
