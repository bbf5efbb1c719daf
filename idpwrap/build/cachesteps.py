"""buildah's layer cache in a registry (``--cache-from``/``--cache-to``): its flags for one
build, what each buildah version cannot take from it, and where each step came from.

buildah keys every step on its parent's layers and history and pushes each step's image as
``REPO:<64-hex key>``. Up to 1.28 every step after an ``ARG`` inside a stage misses the
registry (containers/buildah #4315 and #4621, fixed in 1.29): the build says so once, since
there is no way around it short of rewriting the Containerfile. A miss is never silent: with
``-v`` each step is listed as taken from the registry, from the local cache, or run.
"""

from __future__ import annotations

from collections.abc import Callable

from idpwrap import log
from idpwrap.build.containerfile import instructions
from idpwrap.tools import buildah

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.build.registrycache import Access
    from idpwrap.build.request import CacheRequest


class LayerCache:
    """The registry layer cache of one build: its repositories and the open access to them."""

    def __init__(self, cache: CacheRequest, access: Access) -> None:
        self.cache_from = tuple(cache.cache_from)
        self.cache_to = tuple(cache.cache_to)
        self.ttl = cache.ttl
        self.access = access
        self.write_failed = False  # buildah's cache push failed: the registry refuses writes
        version = buildah.version()
        if version is not None and version < buildah.REPEATED_CACHE_SINCE:
            # 1.28 takes one of each (a string flag: the last would win): the first, said.
            for name, values in (("--cache-from", self.cache_from), ("--cache-to", self.cache_to)):
                if len(values) > 1:
                    log.info("buildah %d.%d takes one %s: using %s", *version, name, values[0])
            self.cache_from, self.cache_to = self.cache_from[:1], self.cache_to[:1]

    def options(self) -> dict[str, object]:
        """The BuildOptions fields that make buildah read and write the cache."""
        tls = self.access.tls
        return {
            "cache_from": self.cache_from,
            "cache_to": self.cache_to,
            "cache_ttl": self.ttl,
            "authfile_fd": self.access.authfile_fd,
            "tls_verify": not (tls.insecure or self.access.registry.plain_http),
            "cert_dir": tls.cert_dir,
        }


def arg_miss_notice(text: str) -> str | None:
    """What this buildah cannot take from the registry for this Containerfile, or None."""
    version = buildah.version()
    if version is None or version >= buildah.ARG_MISSES_BEFORE:
        return None
    in_stage = False
    arg_line = 0
    for item in instructions(text):
        if item.keyword == "FROM":
            in_stage, arg_line = True, 0
        elif item.keyword == "ARG" and in_stage and not arg_line:
            arg_line = text.count("\n", 0, item.start) + 1
        elif arg_line:
            return (
                f"buildah {version[0]}.{version[1]} takes no step after an ARG from the"
                f" registry's layer cache (the ARG on line {arg_line}; containers/buildah #4315,"
                " fixed in 1.29): those steps run here"
            )
    return None


class StepSources:
    """Watches buildah's output (before any filtering) and says, with ``-v``, where each step
    came from: the registry, the local cache, or a run."""

    def __init__(self, on_output: Callable[[str], None]) -> None:
        self.on_output = on_output
        self.partial = ""
        self.steps: list[list[str]] = []  # [step text, source]
        self.push_failed = False

    def __call__(self, text: str) -> None:
        self.on_output(text)
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        for line in lines:
            self.line(line.strip())

    def line(self, line: str) -> None:
        if line.startswith("STEP "):
            self.steps.append([line[len("STEP ") :], "ran"])
        elif not self.steps:
            return
        elif buildah.REMOTE_HIT in line:
            key = line.split(buildah.REMOTE_HIT, 1)[1].strip()
            self.steps[-1][1] = f"from the registry ({key})"
        elif buildah.LOCAL_HIT in line and self.steps[-1][1] == "ran":
            self.steps[-1][1] = "from the local layer cache"
        elif buildah.CACHE_PUSH_FAILED in line:
            self.push_failed = True

    def report(self) -> None:
        for text, source in self.steps:
            if text.split(": ", 1)[-1].upper().startswith("FROM "):
                continue  # a base is pulled or read, never a cached step
            log.info("step %s: %s", text, source)
