"""Arguments, output and exit codes. The only place an exception becomes a message.

Start-up time is part of every command's cost: ``idpwrap --version`` is answered before
argparse is imported, only the chosen command's arguments are declared, and each command
imports what it needs when it runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from idpwrap.display import ProgressView
    from idpwrap.store import Store

PROGRESS_MODES = ("auto", "tty", "plain", "json", "none")
GITEA_EXAMPLE = "https://gitea.cnoe.localtest.me:8443"


def _build_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--context", default=".", metavar="DIR", help="the build context (default: .)"
    )
    parser.add_argument(
        "-t", "--tag", action="append", required=True, metavar="NAME[:TAG]",
        help="name of the image in the store (repeatable); no :TAG means :latest",
    )  # fmt: skip
    parser.add_argument(
        "-f", "--file", metavar="FILE",
        help="the Containerfile (default: the context's Containerfile, else its Dockerfile)",
    )  # fmt: skip
    parser.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not show buildah's output")


def _push_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="[OWNER/]NAME[:TAG] or NAME@sha256:...")
    parser.add_argument(
        "destination", metavar="DEST", nargs="?",
        help="[HOST/]PATH[:TAG]; overrides the Gitea mapping HOST/OWNER/NAME:TAG",
    )  # fmt: skip
    parser.add_argument(
        "--registry", metavar="URL",
        help="https://host:port, host:port or http://host:port (default: $IDPWRAP_REGISTRY,"
        f" else idpbuilder's Gitea, {GITEA_EXAMPLE})",
    )  # fmt: skip
    parser.add_argument(
        "--owner", help="registry namespace (default: OWNER in SOURCE, else the username)"
    )
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify the registry's TLS certificate"
    )
    parser.add_argument("--ca-file", metavar="PEM", help="trust this CA certificate")
    parser.add_argument("--cert-dir", metavar="DIR", help="trust the *.crt CA files in DIR")
    parser.add_argument(
        "--retry", type=int, default=3, metavar="N",
        help="times skopeo retries a failed transfer (default: 3)",
    )  # fmt: skip
    parser.add_argument("-u", "--username", help="registry username (with --password-stdin)")
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password or token from stdin"
    )
    parser.add_argument(
        "--progress", choices=PROGRESS_MODES,
        help="progress on stderr (default: $IDPWRAP_PROGRESS, else auto: bars on a terminal,"
        " plain lines otherwise)",
    )  # fmt: skip


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def _rmi_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="NAME[:TAG]")


# name: (help, example, how to declare its arguments)
COMMANDS: dict[str, tuple[str, str, Callable[[argparse.ArgumentParser], None]]] = {
    "build": (
        "build a Containerfile with buildah and save the image in the store",
        "example: idpwrap build --context ./app --tag myapp:v1.0.0",
        _build_arguments,
    ),
    "push": (
        "copy an image from the store to a registry, with real progress",
        "example: GITEA_USERNAME=giteaAdmin GITEA_TOKEN=... idpwrap push"
        f" --registry {GITEA_EXAMPLE} --insecure giteaAdmin/myapp:v1.0.0",
        _push_arguments,
    ),
    "images": ("list the images in the store", "example: idpwrap images", _no_arguments),
    "rmi": ("remove images from the store", "example: idpwrap rmi myapp:v1.0.0", _rmi_arguments),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``selected``, only that command's arguments are declared."""
    import argparse

    from idpwrap import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store", metavar="DIR",
        help="the local OCI image store (default: $IDPWRAP_STORE, else"
        " $XDG_DATA_HOME/idpwrap/images)",
    )  # fmt: skip
    common.add_argument("-v", "--verbose", action="store_true", help="say what is done and why")
    common.add_argument("--debug", action="store_true", help="also show the commands run")
    parser = argparse.ArgumentParser(
        prog="idpwrap",
        description="Build container images with rootless buildah into a local OCI store,"
        " and push them to a registry (idpbuilder's Gitea first) with skopeo.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, example, declare) in COMMANDS.items():
        command = commands.add_parser(
            name, help=help_text, description=help_text, parents=[common], epilog=example,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        if selected in (None, name):
            declare(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments == ["--version"]:
        from idpwrap import __version__

        sys.stdout.write(f"{__version__}\n")
        return 0
    from idpwrap import log
    from idpwrap.errors import EXIT_FAILED, EXIT_INTERRUPTED, IdpwrapError

    selected = arguments[0] if arguments and arguments[0] in COMMANDS else None
    args = build_parser(selected).parse_args(arguments)
    log.configure(args.verbose, args.debug)
    try:
        return HANDLERS[args.command](args)
    except IdpwrapError as error:
        sys.stderr.write(f"idpwrap: error: {error}\n")
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("idpwrap: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILED
    except Exception as error:  # the last guard: a message, never a traceback, unless --debug
        if args.debug:
            raise
        sys.stderr.write(
            f"idpwrap: internal error: {type(error).__name__}: {error} (run with --debug for"
            " details and report it)\n"
        )
        return EXIT_FAILED


def _store(args: argparse.Namespace) -> Store:
    from pathlib import Path

    from idpwrap.store import Store, default_root

    return Store(Path(args.store) if args.store else default_root())


def _notice(message: str) -> None:
    sys.stderr.write(f"idpwrap: {message}\n")
    sys.stderr.flush()


def _build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from idpwrap.commands import build
    from idpwrap.refs import parse_local

    tags = [parse_local(text) for text in args.tag]
    store = _store(args)

    def show(text: str) -> None:
        if not args.quiet:
            sys.stderr.write(text)
            sys.stderr.flush()

    image = build.run(
        store, Path(args.context), tags, containerfile=args.file, build_args=args.build_arg,
        on_output=show,
    )  # fmt: skip
    for tag in tags:
        print(f"Image saved to local store: {tag}")
    print(f"Digest: {image.digest}")
    print(f"Store: {store.root}")
    return 0


def _push(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from idpwrap.commands import push
    from idpwrap.errors import UsageError

    mode = args.progress or os.environ.get("IDPWRAP_PROGRESS") or "auto"
    if mode not in PROGRESS_MODES:
        raise UsageError(f"IDPWRAP_PROGRESS={mode!r}: use one of {', '.join(PROGRESS_MODES)}")
    password = None
    if args.password_stdin:
        if sys.stdin.isatty():
            raise UsageError('--password-stdin reads a pipe: echo "$TOKEN" | idpwrap push ...')
        password = sys.stdin.read().rstrip("\r\n")
    request = push.PushRequest(
        source=args.source,
        destination=args.destination,
        registry=args.registry,
        owner=args.owner,
        insecure=args.insecure,
        ca_file=Path(args.ca_file) if args.ca_file else None,
        cert_dir=Path(args.cert_dir) if args.cert_dir else None,
        retry=args.retry,
        username=args.username,
        password=password,
    )

    def make_view(label: str) -> ProgressView:
        from idpwrap import display

        return display.make_view(mode, label)

    result = push.run(_store(args), request, make_view, _notice)
    print(f"Pushed {result.reference}@{result.digest}")
    return 0


def _images(args: argparse.Namespace) -> int:
    from idpwrap.commands import images
    from idpwrap.display import human_bytes

    table = [("REPOSITORY", "TAG", "DIGEST", "SIZE", "CREATED")]
    for row in images.list_images(_store(args)):
        digest = row.digest.split(":", 1)[-1][:12]
        table.append((row.name, row.tag, digest, human_bytes(row.size), images.age(row.created)))
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    return 0


def _rmi(args: argparse.Namespace) -> int:
    from idpwrap.commands import images
    from idpwrap.display import human_bytes

    for tag, freed in images.remove(_store(args), args.images):
        print(f"Untagged: {tag} (freed {human_bytes(freed)})")
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "build": _build,
    "push": _push,
    "images": _images,
    "rmi": _rmi,
}
