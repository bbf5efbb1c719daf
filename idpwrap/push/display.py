"""Showing push progress: rich bars on a terminal, throttled plain lines in logs, JSON events.

Every view takes the same calls from the push command: ``start``, ``update`` with the events
the parser produced, ``close``. ``rich`` is imported only by the terminal view: it costs about
60 ms at start-up, which a push in a CI log should not pay.
"""

from __future__ import annotations

import json
import sys
import time

from idpwrap.push.progress import BlobState, Event, PushProgress
from idpwrap.units import human_size

TYPE_CHECKING = False  # typing costs an import that a push should not pay
if TYPE_CHECKING:
    from typing import Any, TextIO

PLAIN_INTERVAL_SECONDS = 1.0


class ProgressView:
    """What every view is told; this base shows nothing (``--progress none``)."""

    def start(self, progress: PushProgress) -> None:
        pass

    def update(self, progress: PushProgress, events: list[Event]) -> None:
        pass

    def close(self, progress: PushProgress, succeeded: bool) -> None:
        pass

    def pushed(self, reference: str, digest: str) -> None:
        pass

    def up_to_date(self, reference: str, digest: str) -> None:
        """The registry already serves the image: no copy, so no start, update or close."""


NoView = ProgressView


class PlainView(ProgressView):
    """``push giteaadmin/myapp:v1  42% 24.0 MiB / 59.1 MiB``: at most one line a second and
    one per 10%, then 100% once the manifest is written."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.last_time = 0.0
        self.last_percent = -1

    def _line(self, progress: PushProgress) -> None:
        self.stream.write(
            f"push {self.label}  {progress.percent:3d}% {human_size(progress.done_bytes)}"
            f" / {human_size(progress.total_bytes)}\n"
        )
        self.stream.flush()
        self.last_time = time.monotonic()
        self.last_percent = progress.percent

    def start(self, progress: PushProgress) -> None:
        self._line(progress)

    def update(self, progress: PushProgress, events: list[Event]) -> None:
        if progress.percent >= 100:
            return
        if time.monotonic() - self.last_time < PLAIN_INTERVAL_SECONDS:
            return
        if progress.percent // 10 <= self.last_percent // 10:
            return
        self._line(progress)

    def close(self, progress: PushProgress, succeeded: bool) -> None:
        if succeeded and self.last_percent < 100:
            self._line(progress)

    def up_to_date(self, reference: str, digest: str) -> None:
        self.stream.write(f"push {self.label}  up to date: the registry already has {digest}\n")
        self.stream.flush()


class JsonView(ProgressView):
    """One JSON object per line: ``progress``, ``blob_done`` and, from the command, ``pushed``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def emit(self, record: dict[str, Any]) -> None:
        self.stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.stream.flush()

    def start(self, progress: PushProgress) -> None:
        self.emit(
            {
                "event": "start",
                "total": progress.total_bytes,
                "blobs": [{"blob": b.digest, "total": b.total} for b in progress.blobs],
            }
        )

    def update(self, progress: PushProgress, events: list[Event]) -> None:
        for event in events:
            blob = event.blob
            if blob is None:
                continue
            if event.kind == "blob_done":
                self.emit(
                    {
                        "event": "blob_done",
                        "blob": blob.digest,
                        "done": event.done,
                        "total": blob.total,
                        "skipped": blob.state is BlobState.SKIPPED,
                        "percent": event.percent,
                    }
                )
            else:
                self.emit(
                    {
                        "event": "progress",
                        "blob": blob.digest,
                        "done": event.done,
                        "total": blob.total,
                        "percent": event.percent,
                    }
                )

    def pushed(self, reference: str, digest: str) -> None:
        self.emit({"event": "pushed", "reference": reference, "digest": digest})

    def up_to_date(self, reference: str, digest: str) -> None:
        self.emit({"event": "up_to_date", "reference": reference, "digest": digest})

    def close(self, progress: PushProgress, succeeded: bool) -> None:
        if succeeded:
            self.emit(
                {
                    "event": "complete",
                    "done": progress.done_bytes,
                    "total": progress.total_bytes,
                    "percent": progress.percent,
                }
            )


class RichView(ProgressView):
    """One bar per blob (short digest, bytes, speed) and an overall bar."""

    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TransferSpeedColumn,
        )

        self.label = label
        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TextColumn("{task.fields[state]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self.tasks: dict[str, Any] = {}
        self.overall: Any = None

    def start(self, progress: PushProgress) -> None:
        self.bars.start()
        for blob in progress.blobs:
            name = blob.digest.split(":", 1)[-1][:12]
            self.tasks[blob.digest] = self.bars.add_task(
                f"{blob.kind:6} {name}", total=blob.total, state="waiting"
            )
        self.overall = self.bars.add_task(
            f"push {self.label}", total=progress.total_bytes, state=""
        )

    def update(self, progress: PushProgress, events: list[Event]) -> None:
        for event in events:
            if event.blob is None:
                continue
            state = {
                BlobState.DONE: "done",
                BlobState.SKIPPED: "skipped: already exists",
            }.get(event.blob.state, "")
            self.bars.update(self.tasks[event.blob.digest], completed=event.done, state=state)
        # The overall bar shows the same capped figure as the other views: never 100% early.
        overall = progress.total_bytes * progress.percent // 100
        self.bars.update(self.overall, completed=max(overall, 0))

    def close(self, progress: PushProgress, succeeded: bool) -> None:
        if succeeded:
            self.bars.update(self.overall, completed=progress.total_bytes, state="pushed")
        self.bars.stop()


def make_view(mode: str, label: str) -> ProgressView:
    """``auto``: bars on a terminal, plain lines otherwise."""
    if mode == "auto":
        mode = "tty" if sys.stderr.isatty() else "plain"
    if mode == "tty":
        return RichView(label)
    if mode == "plain":
        return PlainView(label)
    if mode == "json":
        return JsonView()
    return NoView()
