"""``idpwrap push``: SOURCE, DEST and the options only a push from the store has; the options it
shares with ``build --push`` are ``pushargs``, the push itself ``idpwrap.push.pushing``."""

from __future__ import annotations

from idpwrap.commands.pushargs import add_push_options, prepare, push_and_report
from idpwrap.commands.shared import open_store

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="[OWNER/]NAME[:TAG] or NAME@sha256:...")
    parser.add_argument(
        "destination", metavar="DEST", nargs="?",
        help="[HOST/]PATH[:TAG]; overrides the Gitea mapping HOST/OWNER/NAME:TAG",
    )  # fmt: skip
    add_push_options(parser)
    parser.add_argument(
        "--all-tags", action="store_true", help="push every tag of SOURCE's repository"
    )
    parser.add_argument(
        "--platform", metavar="OS/ARCH[/VARIANT]",
        help="of a multi-platform image, push only this platform's image (default: the whole"
        " index, every child first)",
    )  # fmt: skip
    parser.add_argument(
        "-q", "--quiet", action="store_true",
        help="no progress (--progress none); the Pushed line on stdout and warnings stay",
    )  # fmt: skip


def execute(args: argparse.Namespace) -> int:
    args.platform_to_push = args.platform
    request, settings = prepare(args, args.source, args.destination)
    push_and_report(args, open_store(args), request, settings, args.all_tags)
    return 0
