"""``idpwrap cache trim``: a build cache repository's old entries removed from the registry.

What a cache repository holds, by tag:

- ``idpwrap-build-<fingerprint>``: a whole build (registrycache.py); its age is the time of
  its mark ``idpwrap-used-<fingerprint>`` (cachemarks.py: written with the entry and again on
  every hit). An entry without a mark (written before marks existed) has no known age: kept.
- ``<64 hex>``: a step of buildah's layer cache. Its image's ``created`` is the build's fixed
  reproducible time, not when it was pushed, so it is aged by the whole builds that hold it: a
  step whose layers (the config's ``rootfs.diff_ids``) begin some entry's layers belongs to
  that build, and goes when every build it belongs to goes. A step no entry holds (a builder
  stage, a build whose entry was never written) has no known age: kept, and said.
- anything else: not the cache's, never touched.

Entries older than ``older_than`` go, except the ``keep`` newest. A registry deletes a
manifest, not a tag: a digest is deleted only when every tag naming it goes (otherwise all of
them stay). The plan is pure (``plan``, with ``now`` passed in); ``trim`` reads the registry,
plans and deletes (entries first, their marks last, so that a cut-short trim never leaves an
entry without its age).
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from idpwrap.build.cachemarks import USED_PREFIX, read_mark
from idpwrap.build.registrycache import ENTRY_PREFIX, INDEX_TYPES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.registry.repository import Repository

HEX64 = "[0-9a-f]{64}"
ENTRY = re.compile(f"{ENTRY_PREFIX}({HEX64})")
USED = re.compile(f"{USED_PREFIX}({HEX64})")
LAYER = re.compile(HEX64)
BUILD, MARK, LAYER_STEP, OTHER = "build", "mark", "layer", "other"


class Tag(NamedTuple):
    """One tag as read: its kind, the manifest digest it names, for a build its time (None:
    unknown) and its images' layers, for a layer step its layers."""

    name: str
    kind: str
    digest: str
    time: float | None = None
    layers: tuple[tuple[str, ...], ...] = ()


class Decision(NamedTuple):
    tag: str
    kind: str
    digest: str
    remove: bool
    reason: str
    time: float | None


def kind_of(tag: str) -> str:
    if ENTRY.fullmatch(tag):
        return BUILD
    if USED.fullmatch(tag):
        return MARK
    if LAYER.fullmatch(tag):
        return LAYER_STEP
    return OTHER


def fingerprint_of(tag: str) -> str:
    return tag.rsplit("-", 1)[-1]


def age_text(seconds: float) -> str:
    days, rest = divmod(max(0, int(seconds)), 86400)
    if days:
        return f"{days}d{rest // 3600}h" if rest >= 3600 else f"{days}d"
    if rest >= 3600:
        return f"{rest // 3600}h"
    return f"{rest // 60}m"


def plan(tags: list[Tag], now: float, older_than: float, keep: int) -> list[Decision]:
    """What goes and what stays, each with its reason (ages are ``now`` minus a build's time)."""
    builds = [tag for tag in tags if tag.kind == BUILD]
    marks = {fingerprint_of(tag.name): tag for tag in tags if tag.kind == MARK}
    decided: dict[str, Decision] = {}
    aged = sorted((b for b in builds if b.time is not None), key=lambda b: -(b.time or 0.0))
    newest = {build.name for build in aged[:keep]}
    for build in builds:
        if build.time is None:
            decided[build.name] = _keep(build, "no idpwrap-used mark: its age is unknown")
            continue
        age = age_text(now - build.time)
        if build.name in newest:
            decided[build.name] = _keep(build, f"used {age} ago, one of the newest {keep}")
        elif now - build.time <= older_than:
            decided[build.name] = _keep(build, f"used {age} ago")
        else:
            decided[build.name] = _remove(build, f"used {age} ago")
    by_fingerprint = {fingerprint_of(build.name): build.name for build in builds}
    for fingerprint, mark in marks.items():
        owner = by_fingerprint.get(fingerprint)
        if owner is not None:
            decided[mark.name] = decided[owner]._replace(
                tag=mark.name, kind=MARK, digest=mark.digest, reason=f"the mark of {owner}"
            )
        elif mark.time is not None and now - mark.time > older_than:
            decided[mark.name] = _remove(mark, "its build entry is gone")
        else:
            decided[mark.name] = _keep(mark, "its build entry is gone, but it is recent")
    for tag in tags:
        if tag.kind == OTHER:
            decided[tag.name] = _keep(tag, "not a build cache tag")
        elif tag.kind == LAYER_STEP:
            decided[tag.name] = _layer(tag, builds, decided)
    _shared_digests(tags, decided)
    return [decided[tag.name] for tag in tags]


def _keep(tag: Tag, reason: str) -> Decision:
    return Decision(tag.name, tag.kind, tag.digest, False, reason, tag.time)


def _remove(tag: Tag, reason: str) -> Decision:
    return Decision(tag.name, tag.kind, tag.digest, True, reason, tag.time)


def _layer(step: Tag, builds: list[Tag], decided: dict[str, Decision]) -> Decision:
    layers = step.layers[0] if step.layers else None
    holders = [
        build
        for build in builds
        if layers is not None and any(image[: len(layers)] == layers for image in build.layers)
    ]
    if not holders:
        return _keep(step, "no build entry holds this step's layers: its age is unknown")
    kept = [build for build in holders if not decided[build.name].remove]
    if kept:
        return _keep(step, f"a step of kept {kept[0].name}")
    times = [build.time for build in holders if build.time is not None]
    return Decision(
        step.name, step.kind, step.digest, True,
        f"a step of removed builds only ({len(holders)})", max(times) if times else None,
    )  # fmt: skip


def _shared_digests(tags: list[Tag], decided: dict[str, Decision]) -> None:
    """A deleted digest takes every tag naming it: go only when all of them go."""
    changed = True
    while changed:
        changed = False
        for tag in tags:
            decision = decided[tag.name]
            if not decision.remove:
                continue
            staying = [
                other.name
                for other in tags
                if other.digest == tag.digest and not decided[other.name].remove
            ]
            if staying:
                decided[tag.name] = decision._replace(
                    remove=False, reason=f"its manifest is also {staying[0]}, which stays"
                )
                changed = True


def read(repository: Repository) -> list[Tag]:
    """Every tag of ``repository`` with what the plan needs (a manifest GET per tag, a config
    GET per build image and layer step, the mark of each build)."""
    found: list[Tag] = []
    marks: dict[str, float | None] = {}
    for name in repository.tags():
        kind = kind_of(name)
        manifest = repository.manifest(name)
        if manifest is None:
            continue  # removed by someone else since the list
        tag = Tag(name, kind, manifest.digest)
        if kind == MARK:
            mark = read_mark(manifest.body)
            marks[fingerprint_of(name)] = mark.time if mark else None
            tag = tag._replace(time=mark.time if mark else None)
        elif kind in (BUILD, LAYER_STEP):
            tag = tag._replace(layers=_image_layers(repository, manifest.body))
        found.append(tag)
    return [
        tag._replace(time=marks.get(fingerprint_of(tag.name))) if tag.kind == BUILD else tag
        for tag in found
    ]


def _image_layers(repository: Repository, body: bytes) -> tuple[tuple[str, ...], ...]:
    """The diff IDs of each image a manifest (or an index's children) names."""
    try:
        manifest = json.loads(body)
    except ValueError:
        return ()
    if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
        images: list[tuple[str, ...]] = []
        for child in manifest.get("manifests") or []:
            found = repository.manifest(str(child.get("digest", "")))
            if found is not None:
                images.extend(_image_layers(repository, found.body))
        return tuple(images)
    config = repository.blob(str((manifest.get("config") or {}).get("digest", "")))
    try:
        diff_ids = json.loads(config or b"{}").get("rootfs", {}).get("diff_ids") or []
    except (ValueError, AttributeError):
        return ()
    return (tuple(str(item) for item in diff_ids),)


class Outcome(NamedTuple):
    decisions: list[Decision]
    deleted: int  # manifests deleted (0 with dry_run)


def trim(
    repository: Repository, now: float, older_than: float, keep: int, dry_run: bool
) -> Outcome:
    """Read, plan and (unless ``dry_run``) delete; DeleteRefused where deletes are off."""
    decisions = plan(read(repository), now, older_than, keep)
    deleted = 0
    if not dry_run:
        order = {BUILD: 0, LAYER_STEP: 1, MARK: 2}
        done: set[str] = set()
        for decision in sorted(decisions, key=lambda item: order.get(item.kind, 3)):
            if decision.remove and decision.digest not in done:
                done.add(decision.digest)
                deleted += repository.delete(decision.digest)
    return Outcome(decisions, deleted)
