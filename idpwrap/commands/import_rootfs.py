"""``idpwrap import ROOTFS.tar NAME:TAG``: an image from a root filesystem, like podman import.

This is how a base image gets into the store where none can be pulled: make a root filesystem
(``debootstrap --variant=minbase bookworm DIR``, then ``tar -C DIR -cf rootfs.tar .``), import
it, and build ``FROM NAME:TAG``.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from idpwrap.build import rootfs
from idpwrap.commands.shared import open_store
from idpwrap.errors import UsageError
from idpwrap.refs import parse_local
from idpwrap.scratch import remove_tree

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

# podman import --change INSTRUCTION value: the config keys each one sets
CHANGE_KEYS = {"CMD": "Cmd", "ENTRYPOINT": "Entrypoint", "ENV": "Env", "WORKDIR": "WorkingDir",
               "USER": "User", "LABEL": "Labels"}  # fmt: skip


def parse_changes(texts: list[str]) -> dict[str, object]:
    """``--change 'CMD ["/bin/sh"]'``, ``--change 'ENV K=V'``, ... into config fields."""
    import json

    config: dict[str, object] = {}
    for text in texts:
        instruction, _, value = text.strip().partition(" ")
        key = CHANGE_KEYS.get(instruction.upper())
        value = value.strip()
        if key is None or not value:
            raise UsageError(
                f"--change {text!r}: use one of {', '.join(CHANGE_KEYS)} followed by its value"
            )
        if key in ("Cmd", "Entrypoint"):
            config[key] = json.loads(value) if value.startswith("[") else ["/bin/sh", "-c", value]
        elif key == "Env":
            config.setdefault("Env", []).append(value)  # type: ignore[union-attr]
        elif key == "Labels":
            name, _, label = value.partition("=")
            config.setdefault("Labels", {})[name] = " ".join(shlex.split(label))  # type: ignore[index]
        else:
            config[key] = value
    return config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "tarball", metavar="ROOTFS.tar", help="a root filesystem as a tar (or .tar.gz)"
    )
    parser.add_argument("tag", metavar="NAME[:TAG]", help="the name of the image in the store")
    parser.add_argument(
        "-c", "--change", action="append", default=[], metavar="INSTRUCTION",
        help="set CMD, ENTRYPOINT, ENV, WORKDIR, USER or LABEL: --change 'CMD [\"/bin/bash\"]'",
    )  # fmt: skip
    parser.add_argument("-m", "--message", default="", help="a comment for the image's history")


def execute(args: argparse.Namespace) -> int:
    ref = parse_local(args.tag)
    changes = parse_changes(args.change)
    store = open_store(args)
    work = store.temp_dir("import")
    try:
        layout = work / "layout"
        rootfs.write_layout(Path(args.tarball), layout, changes=changes, message=args.message)
        image = store.add_layout(layout, [ref])
    finally:
        remove_tree(work)
    print(f"Image saved to local store: {ref}")
    print(f"Digest: {image.digest}")
    return 0
