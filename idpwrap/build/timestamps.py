"""The time a build writes into its image, chosen so that the same source gives the same digest.

buildah stamps the wall clock into the config's ``created``, every history entry and every file
of every layer, so each rebuild of unchanged source is a new digest (and, for Argo CD, a new
rollout). The time comes instead, first match wins, from ``--timestamp N|now`` (or the config
key ``timestamp``), ``SOURCE_DATE_EPOCH`` (reproducible-builds.org), the commit time of ``HEAD``
when the context is inside a git work tree, else a fixed epoch. ``now`` is the old behaviour.

The OCI annotations ``org.opencontainers.image.created``, ``.revision`` and ``.source`` come from
the same facts (revision and source only when git knows them; a remote's user and password are
never copied into an image).
"""

from __future__ import annotations

import os
import time
from collections import namedtuple
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from idpwrap import log
from idpwrap.errors import ToolNotRun, UsageError
from idpwrap.tools import procs

NOW = "now"
FIXED_EPOCH = 0
SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"
GIT_TIMEOUT = 10
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_REVISION = "org.opencontainers.image.revision"
ANNOTATION_SOURCE = "org.opencontainers.image.source"


class BuildTime(namedtuple("BuildTime", "seconds source revision url")):
    """``seconds`` since the epoch (None: buildah's clock, ``--timestamp now``), where it came
    from (for ``--verbose``), and git's commit and remote when the context is in a work tree."""

    __slots__ = ()
    seconds: int | None
    source: str
    revision: str | None
    url: str | None

    def annotations(self) -> list[str]:
        """``KEY=VALUE`` for ``buildah bud --annotation``."""
        seconds = int(time.time()) if self.seconds is None else self.seconds
        found = [f"{ANNOTATION_CREATED}={rfc3339(seconds)}"]
        if self.revision:
            found.append(f"{ANNOTATION_REVISION}={self.revision}")
        if self.url:
            found.append(f"{ANNOTATION_SOURCE}={self.url}")
        return found


def rfc3339(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def parse_setting(text: str, where: str) -> str | int:
    """``now`` or whole seconds since the epoch."""
    value = text.strip().lower()
    if value == NOW:
        return NOW
    if value.isdigit():
        return int(value)
    raise UsageError(f"{where} {text!r}: expected 'now' or seconds since the epoch (e.g. 0)")


def git_facts(context: str) -> tuple[int, str, str | None] | None:
    """(commit time of HEAD, its hash, the origin remote without credentials), or None when
    ``context`` is not in a git work tree with a commit, or git is not installed."""
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    try:
        head = procs.run(
            ["git", "-C", context, "log", "-1", "--format=%ct %H", "HEAD"],
            env=env, timeout=GIT_TIMEOUT,
        )  # fmt: skip
    except ToolNotRun as error:
        log.info("git: %s: not using a commit time", error)
        return None
    fields = head.stdout.split()
    if head.exit_code != 0 or len(fields) != 2 or not fields[0].isdigit():
        reason = head.stderr.strip().splitlines()[-1:] or ["no commit"]
        log.info("git: %s", reason[0])
        return None
    try:
        remote = procs.run(
            ["git", "-C", context, "config", "--get", "remote.origin.url"],
            env=env, timeout=GIT_TIMEOUT,
        )  # fmt: skip
        url = public_url(remote.stdout.strip()) if remote.exit_code == 0 else None
    except ToolNotRun:
        url = None
    return int(fields[0]), fields[1], url


def public_url(url: str) -> str | None:
    """The remote's URL without a user or password (``https://token@host/...``)."""
    if not url:
        return None
    if "://" not in url:
        # scp-like git@host:owner/repo: the user is not a secret, only the host and path matter.
        return url.split("@", 1)[-1] if "@" in url.split(":", 1)[0] else url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def choose(
    context: str, setting: str | int | None, environ: Mapping[str, str] | None = None
) -> BuildTime:
    """The build's time: ``setting`` (``--timestamp`` or the config key), else
    SOURCE_DATE_EPOCH, else HEAD's commit time, else FIXED_EPOCH."""
    environ = os.environ if environ is None else environ
    facts = git_facts(context)
    revision, url = (facts[1], facts[2]) if facts else (None, None)
    if setting == NOW:
        return BuildTime(None, "--timestamp now", revision, url)
    if isinstance(setting, int):
        return BuildTime(setting, "--timestamp", revision, url)
    text = environ.get(SOURCE_DATE_EPOCH, "").strip()
    if text:
        if not text.isdigit():
            raise UsageError(
                f"{SOURCE_DATE_EPOCH}={text!r}: expected whole seconds since the epoch;"
                " set it to e.g. $(git log -1 --format=%ct) or unset it"
            )
        return BuildTime(int(text), SOURCE_DATE_EPOCH, revision, url)
    if facts:
        return BuildTime(facts[0], f"commit time of {facts[1][:12]}", revision, url)
    return BuildTime(FIXED_EPOCH, "fixed epoch (no SOURCE_DATE_EPOCH, no git commit)", None, None)
