"""A push's progress: skopeo's output fed to the parser and the display, both made only once
skopeo runs."""

from __future__ import annotations

from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.push.display import ProgressView
    from idpwrap.push.progress import PushProgress


class LiveProgress:
    """The parser and the display, made once skopeo runs; output waits in the pty till then."""

    def __init__(
        self,
        blobs: list[tuple[str, int, str]],
        label: str,
        make_view: Callable[[str], ProgressView],
    ) -> None:
        self.blobs = blobs  # (digest, size, kind): every child's of an index, each once
        self.label = label
        self.make_view = make_view
        self.progress: PushProgress | None = None
        self.view: ProgressView | None = None
        self.store_root = ""  # named in a message about a damaged blob
        self.image_ref = ""

    def start(self) -> None:
        if self.progress is not None:
            return  # a second attempt carries on with the same counts: they never fall
        from idpwrap.push.progress import Blob, PushProgress

        self.progress = PushProgress([Blob(*blob) for blob in self.blobs])
        self.view = self.make_view(self.label)
        self.view.start(self.progress)

    def feed(self, text: str) -> None:
        if self.progress is None or self.view is None:
            self.start()
        assert self.progress is not None and self.view is not None
        self.view.update(self.progress, self.progress.feed(text))

    def close(self, succeeded: bool) -> None:
        if self.progress is None or self.view is None:
            if not succeeded:
                return  # skopeo never ran: there is no progress to close
            self.start()
        assert self.progress is not None and self.view is not None
        if succeeded:
            self.view.update(self.progress, self.progress.finish())
        self.view.close(self.progress, succeeded)

    def pending_size(self) -> int:
        """The largest layer the registry did not have already: the one a proxy's body limit
        refuses first (its bar may read "done": skopeo sent it all before the answer came)."""
        layers = [size for _, size, kind in self.blobs if kind == "blob"]
        if self.progress is not None:
            from idpwrap.push.progress import BlobState

            sent = [b for b in self.progress.blobs if b.state is not BlobState.SKIPPED]
            layers = [blob.total for blob in sent if blob.kind == "blob"] or layers
        return max(layers, default=0)

    def pushed(self, reference: str, digest: str) -> None:
        if self.view is not None:
            self.view.pushed(reference, digest)
