"""A build's SLSA v1 provenance: an in-toto Statement v1 whose subject is the image's digest
and whose predicate (``https://slsa.dev/provenance/v1``) says how it was built, kept with the
image in the store (store/referrers.py); docs/provenance.md describes every field.

Only facts that the same commit gives every runner are recorded, so two builds of one commit
make byte-identical statements (sorted keys, no separators' spaces): paths relative to the git
work tree, no wall-clock time, no host name, no user. Never recorded: ``--secret`` (neither its
id nor its file), credentials in a git remote's URL, build arguments the user redacts
(``--redact-build-arg``) or whose names say they are secret (SECRET_WORDS), and the user part
of any URL in a recorded value.
"""

from __future__ import annotations

import hashlib
import json
import os
from urllib.parse import quote

from idpwrap import __version__, log
from idpwrap.build.timestamps import public_url
from idpwrap.errors import ToolNotRun
from idpwrap.tools import procs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any

    from idpwrap.build.bases import Base
    from idpwrap.build.request import BuildRequest
    from idpwrap.build.timestamps import BuildTime
    from idpwrap.store.api import Store, StoredImage

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:idpwrap:buildtype:buildah-bud:v1"
DEFAULT_BUILDER = "urn:idpwrap:builder:local"
# A build argument whose name holds one of these (any case) is never recorded.
SECRET_WORDS = ("TOKEN", "PASSWORD", "PASSWD", "SECRET", "KEY", "CREDENTIAL")
BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
GIT_TIMEOUT = 10


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in SECRET_WORDS)


def clean(value: str) -> str:
    """A recorded value without a URL's user and password."""
    if "://" in value and "@" in value:
        return " ".join(public_url(word) or word if "://" in word else word
                        for word in value.split(" "))  # fmt: skip
    return value


def recorded_args(build_args: Sequence[str], redacted: Sequence[str]) -> dict[str, str]:
    """The build arguments a provenance may show: not redacted, not secret by name."""
    hidden = {name.upper() for name in redacted}
    shown = {}
    for item in build_args:
        name, _, value = item.partition("=")
        if name.upper() in hidden or is_secret_name(name):
            continue
        shown[name] = clean(value)
    return dict(sorted(shown.items()))


def git_place(context: Path) -> tuple[str, str] | None:
    """(the work tree's top, the context's path inside it), or None outside git."""
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    try:
        done = procs.run(
            ["git", "-C", str(context), "rev-parse", "--show-toplevel", "--show-prefix"],
            env=env, timeout=GIT_TIMEOUT,
        )  # fmt: skip
    except ToolNotRun:
        return None
    lines = done.stdout.splitlines()
    if done.exit_code != 0 or not lines:
        return None
    return lines[0], (lines[1] if len(lines) > 1 else "").rstrip("/") or "."


def relative(path: Path, start: str) -> str:
    shown = os.path.relpath(path, start)
    return path.name if shown.startswith("..") else shown


def inside(path: Path, directory: Path) -> bool:
    return not os.path.relpath(path, directory).startswith("..")


def buildah_version() -> str:
    """The build's buildah version, as the build already knows it (tools/buildah.py)."""
    from idpwrap.tools import buildah

    words = buildah.version_text().split()
    return words[2] if len(words) > 2 and words[1] == "version" else "unknown"


def builder_id() -> str:
    """The config's ``builder_id`` (IDPWRAP_BUILDER_ID): who ran the build, for ``verify
    --builder``; a CI system sets its own URI."""
    from idpwrap.config import settings as config

    value = config.load().setting("builder_id").value
    return str(value) if value else DEFAULT_BUILDER


class Recorder:
    """The facts every statement of one build shares."""

    def __init__(self, request: BuildRequest, containerfile: Path, when: BuildTime) -> None:
        context = request.context.absolute()
        place = git_place(context)
        top = place[0] if place else str(context)
        self.name = request.tags[0].name if request.tags else "image"
        external: dict[str, Any] = {
            "context": place[1] if place else ".",
            "containerfile": relative(containerfile.absolute(), str(context))
            if inside(containerfile.absolute(), context)
            else relative(containerfile.absolute(), top),
            "buildArgs": recorded_args(request.build_args, request.redacted_build_args),
            "labels": dict(sorted(
                (label.partition("=")[0], clean(label.partition("=")[2]))
                for label in request.labels
            )),
            "format": request.format,
        }  # fmt: skip
        if request.target:
            external["target"] = request.target
        if request.platforms or request.platform:
            external["platforms"] = list(request.platforms or (request.platform,))
        self.external = external
        self.internal = {
            "timestamp": "now" if when.seconds is None else when.seconds,
            "pull": request.pull,
            "noCache": bool(request.no_cache),
        }
        source: list[dict[str, Any]] = []
        if when.revision:
            entry: dict[str, Any] = {"digest": {"gitCommit": when.revision}}
            if when.url:
                entry["uri"] = f"git+{when.url}"
            else:
                entry["name"] = "source"
            source.append(entry)
        text = containerfile.read_bytes()
        source.append({"name": external["containerfile"],
                       "digest": {"sha256": hashlib.sha256(text).hexdigest()}})  # fmt: skip
        self.source = source
        versions = {"idpwrap": __version__, "buildah": buildah_version()}
        self.builder = {"id": builder_id(), "version": versions}

    def statement(
        self, digest: str, dependencies: list[dict[str, Any]], platform: str | None
    ) -> bytes:
        external = dict(self.external)
        if platform:
            external["platform"] = platform
        predicate = {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": self.internal,
                "resolvedDependencies": self.source + dependencies,
            },
            "runDetails": {"builder": self.builder},
        }
        statement = {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": self.name, "digest": {"sha256": digest.split(":", 1)[1]}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": predicate,
        }
        return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()


def base_dependencies(
    bases: Sequence[Base], manifest: dict[str, Any], platform: str | None
) -> list[dict[str, Any]]:
    """Each base by digest: the stored ones idpwrap pinned, and the one buildah names in the
    manifest (``FROM`` a registry image) when it is not one of those."""
    found: list[dict[str, Any]] = []
    query = f"?platform={quote(platform, safe='')}" if platform else ""
    for base in bases:
        descriptor = base.descriptor or base.image.descriptor
        digest = str(descriptor["digest"])
        entry = {
            "name": base.written,
            "uri": f"pkg:docker/{base.image.ref.name}@{base.image.ref.tag}{query}",
            "digest": {"sha256": digest.split(":", 1)[1]},
        }
        if entry not in found:
            found.append(entry)
    annotations = manifest.get("annotations") or {}
    name, digest = str(annotations.get(BASE_NAME, "")), str(annotations.get(BASE_DIGEST, ""))
    pinned = {entry["digest"]["sha256"] for entry in found}
    # a stored base reaches buildah as a pinned layout: its name is a path, not the user's
    if name and digest.startswith("sha256:") and digest[7:] not in pinned and "/" in name:
        if not name.startswith(("oci:", "dir:", "/")):
            found.append({"uri": f"pkg:docker/{name}{query}", "digest": {"sha256": digest[7:]}})
    return found


def record(
    store: Store,
    image: StoredImage,
    request: BuildRequest,
    containerfile: Path,
    when: BuildTime,
    bases: Sequence[Sequence[Base]],
) -> None:
    """Make the statements of a stored build (one image; or an index, one per child in
    ``bases``' order, and the index's) and keep them with it."""
    from idpwrap.store import indexes, referrers

    recorder = Recorder(request, containerfile, when)
    if indexes.is_index(image):
        subjects = [(c.descriptor, c.platform) for c in indexes.children(store, image)]
    else:
        subjects = [(image.descriptor, request.platform)]
    made = []
    every: list[dict[str, Any]] = []
    for (descriptor, platform), used in zip(subjects, bases, strict=False):
        manifest = store.read_json_blob(str(descriptor["digest"]))
        dependencies = base_dependencies(used, manifest, platform)
        every += [entry for entry in dependencies if entry not in every]
        made.append((descriptor, recorder.statement(str(descriptor["digest"]), dependencies,
                                                    platform)))  # fmt: skip
    if indexes.is_index(image):
        made.append((image.descriptor, recorder.statement(image.digest, every, None)))
    with store.working_dir("provenance") as work:
        blob_dir = work / "blobs" / "sha256"
        entries = [referrers.write_artifact(blob_dir, subject, data, PREDICATE_TYPE)
                   for subject, data in made]  # fmt: skip
        referrers.attach(store, work, entries)
    log.info("provenance: %d statement(s) kept with %s", len(entries), image.ref)


def record_copied(
    store: Store, image: StoredImage, request: BuildRequest, containerfile: Path, when: BuildTime
) -> None:
    """The statements of a build copied whole from the registry build cache, made as the
    build that wrote the entry made them: the same request, build time and Containerfile (the
    fingerprint matched), the same stored bases (resolved, not pinned), the same manifests;
    so they are byte-identical to that runner's."""
    from idpwrap.build.bases import resolve

    text = containerfile.read_text(errors="replace")
    targets = request.platforms or (request.platform,)
    bases = [resolve(store, text, request.build_args, platform)[1] for platform in targets]
    record(store, image, request, containerfile, when, bases)
