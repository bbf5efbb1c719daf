"""``idpwrap inspect IMAGE [--json]``: an image's digest, config, layers, labels and history."""

from __future__ import annotations

import json

from idpwrap.commands.shared import open_store, stored_at
from idpwrap.store.api import ImageDetails, Store, StoredImage
from idpwrap.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any


def describe(store: Store, text: str, platform: str | None = None) -> dict[str, Any]:
    """What ``inspect --json`` prints: podman's fields where it has them, in its spelling;
    for a multi-platform image its index, or with ``platform`` that child."""
    from idpwrap.store import indexes

    image = store.lookup(text)
    # sorted, and a digest names the first of them: the same answer every time
    tags = sorted(str(i.ref) for i in store.images() if i.digest == image.digest)
    if indexes.is_index(image) and platform is None:
        return index_dict(store, image, tags)
    if platform is not None:
        image = indexes.child(store, image, platform)
    return as_dict(store.details(image), tags)


def index_dict(store: Store, image: StoredImage, tags: list[str]) -> dict[str, Any]:
    from idpwrap.store import indexes

    return {
        "reference": str(image.ref),
        "digest": image.digest,
        "mediaType": image.descriptor.get("mediaType"),
        "tags": tags,
        "size": sum(size for _, size in indexes.index_blobs(store, image)),
        "created": indexes.created(store, image),
        "manifests": [
            {
                "platform": child.platform,
                "digest": child.descriptor["digest"],
                "size": child.descriptor["size"],
                "mediaType": child.descriptor.get("mediaType"),
            }
            for child in indexes.children(store, image)
        ],
    }


def index_text(info: dict[str, Any], stored: float | None = None) -> str:
    from idpwrap.commands import times

    lines = [
        f"Reference:    {info['reference']}",
        f"Digest:       {info['digest']} (image index)",
        f"Tags:         {', '.join(info['tags'])}",
        f"Created:      {times.described(info['created'], stored)}",
        f"Size:         {human_size(info['size'])} ({info['size']} bytes, compressed, all"
        " platforms, shared blobs once)",
        f"Platforms ({len(info['manifests'])}):",
    ]
    for child in info["manifests"]:
        lines.append(f"  {child['platform']:<16}{child['digest']}  {human_size(child['size'])}")
    lines.append("One platform's image: idpwrap inspect --platform OS/ARCH")
    return "\n".join(lines)


def as_dict(details: ImageDetails, tags: list[str]) -> dict[str, Any]:
    manifest, config = details.manifest, details.config
    settings = config.get("config") or {}
    return {
        "reference": str(details.image.ref),
        "digest": details.image.digest,
        "mediaType": manifest.get("mediaType", details.image.descriptor.get("mediaType")),
        "tags": tags,
        "id": str(manifest["config"]["digest"]),
        "size": details.size,
        "created": details.created,
        "author": config.get("author", ""),
        "architecture": config.get("architecture", ""),
        "os": config.get("os", ""),
        "config": {
            "digest": str(manifest["config"]["digest"]),
            "size": int(manifest["config"]["size"]),
            "entrypoint": settings.get("Entrypoint"),
            "cmd": settings.get("Cmd"),
            "env": settings.get("Env") or [],
            "workingDir": settings.get("WorkingDir", ""),
            "user": settings.get("User", ""),
            "exposedPorts": sorted(settings.get("ExposedPorts") or {}),
        },
        "labels": settings.get("Labels") or {},
        "annotations": manifest.get("annotations") or {},
        "layers": [
            {"digest": layer["digest"], "size": layer["size"], "mediaType": layer.get("mediaType")}
            for layer in manifest["layers"]
        ],
        "history": [
            {
                "created": step.get("created", ""),
                "createdBy": step.get("created_by", ""),
                "emptyLayer": bool(step.get("empty_layer", False)),
                "comment": step.get("comment", ""),
            }
            for step in config.get("history") or []
        ],
    }


def as_text(info: dict[str, Any], stored: float | None = None) -> str:
    """``stored``: when the manifest came into the store, said beside a reproducible time."""
    from idpwrap.commands import times

    config = info["config"]
    lines = [
        f"Reference:    {info['reference']}",
        f"Digest:       {info['digest']}",
        f"Tags:         {', '.join(info['tags'])}",
        f"ID:           {info['id']}",
        f"Created:      {times.described(info['created'], stored)}",
        f"Platform:     {info['os']}/{info['architecture']}",
        f"Size:         {human_size(info['size'])} ({info['size']} bytes, compressed)",
    ]
    if info["author"]:
        lines.append(f"Author:       {info['author']}")
    for label, key in (("Entrypoint", "entrypoint"), ("Cmd", "cmd")):
        if config[key]:
            lines.append(f"{label + ':':<14}{json.dumps(config[key])}")
    for label, key in (("WorkingDir", "workingDir"), ("User", "user")):
        if config[key]:
            lines.append(f"{label + ':':<14}{config[key]}")
    if config["exposedPorts"]:
        lines.append(f"Ports:        {', '.join(config['exposedPorts'])}")
    lines += [f"Env:          {value}" for value in config["env"]]
    if info["labels"]:
        lines.append("Labels:")
        lines += [f"  {key}={value}" for key, value in sorted(info["labels"].items())]
    lines.append(f"Layers ({len(info['layers'])}):")
    for layer in info["layers"]:
        lines.append(f"  {layer['digest']}  {human_size(layer['size'])}")
    if info["history"]:
        lines.append("History:")
        for step in info["history"]:
            marker = "" if step["emptyLayer"] else " [layer]"
            lines.append(
                f"  {step['created'] or '-'}  {step['createdBy'] or step['comment']}{marker}"
            )
    return "\n".join(lines)


def provenance_text(store: Store, text: str, platform: str | None) -> str:
    from idpwrap.errors import IdpwrapError
    from idpwrap.store import indexes, referrers

    image = store.lookup(text)
    if platform is not None:
        image = indexes.child(store, image, platform)
    statement = referrers.statement(store, image.digest)
    if statement is None:
        raise IdpwrapError(
            f"{image.ref} ({image.digest}) has no provenance in the store: it was built before"
            " idpwrap recorded one, or came from a docker-archive or idpwrap import; rebuild it"
        )
    return json.dumps(json.loads(statement), indent=2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "image", metavar="IMAGE", help="NAME[:TAG], NAME@sha256:DIGEST or a digest (12+ hex)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.add_argument(
        "--provenance", action="store_true",
        help="print the SLSA v1 provenance (in-toto statement) the build recorded for the image"
        " (of a multi-platform image: the index's, or with --platform that child's)",
    )  # fmt: skip
    parser.add_argument(
        "--platform", metavar="OS/ARCH[/VARIANT]",
        help="of a multi-platform image, the image of this platform (default: the index)",
    )  # fmt: skip


def execute(args: argparse.Namespace) -> int:
    platform = None
    if args.platform:
        from idpwrap import platforms

        (platform,) = platforms.parse([args.platform.split(",")[0]])
    store = open_store(args)
    if args.provenance:
        print(provenance_text(store, args.image, platform))
        return 0
    info = describe(store, args.image, platform)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        stored = stored_at(store, info["digest"])
        print(index_text(info, stored) if "manifests" in info else as_text(info, stored))
    return 0
