"""Arguments, output and exit codes. The only place an exception becomes a message."""

from __future__ import annotations

import sys
from collections.abc import Sequence

# Kept light: `idpwrap --version` is answered before argparse or anything else is imported.
EXAMPLES = {
    "build": "example: idpwrap build --context ./app --tag myapp:v1.0.0",
    "push": (
        "example: GITEA_USERNAME=giteaAdmin GITEA_TOKEN=... idpwrap push"
        " --registry https://gitea.cnoe.localtest.me:8443 --insecure giteaAdmin/myapp:v1.0.0"
    ),
    "images": "example: idpwrap images",
    "rmi": "example: idpwrap rmi myapp:v1.0.0",
}


def build_parser() -> object:
    import argparse

    from idpwrap import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store",
        metavar="DIR",
        help="the local OCI image store (default: $IDPWRAP_STORE or $XDG_DATA_HOME/idpwrap/images)",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="say what is done and why")
    common.add_argument("--debug", action="store_true", help="also show the commands run")

    parser = argparse.ArgumentParser(
        prog="idpwrap",
        description="Build container images with rootless buildah into a local OCI store,"
        " and push them to a registry (idpbuilder's Gitea first) with skopeo.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[common],
            epilog=EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    build = command("build", "build a Containerfile with buildah and save the image in the store")
    build.add_argument(
        "--context", default=".", metavar="DIR", help="the build context (default: .)"
    )
    build.add_argument(
        "-t",
        "--tag",
        action="append",
        required=True,
        metavar="NAME[:TAG]",
        help="name of the image in the store (repeatable); no :TAG means :latest",
    )
    build.add_argument(
        "-f",
        "--file",
        metavar="FILE",
        help="the Containerfile (default: the context's Containerfile or Dockerfile)",
    )
    build.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    build.add_argument("-q", "--quiet", action="store_true", help="do not show buildah's output")

    push = command("push", "copy an image from the store to a registry, with real progress")
    push.add_argument("source", metavar="SOURCE", help="[OWNER/]NAME[:TAG] or NAME@sha256:...")
    push.add_argument(
        "destination",
        metavar="DEST",
        nargs="?",
        help="[HOST/]PATH[:TAG]; overrides the Gitea mapping HOST/OWNER/NAME:TAG",
    )
    push.add_argument(
        "--registry",
        metavar="URL",
        help="https://host:port, host:port or"
        " http://host:port (default: $IDPWRAP_REGISTRY or idpbuilder's Gitea,"
        " https://gitea.cnoe.localtest.me:8443)",
    )
    push.add_argument(
        "--owner",
        help="the registry namespace (default: OWNER in SOURCE, else the username); lowercased",
    )
    push.add_argument(
        "--insecure", action="store_true", help="do not verify the registry's TLS certificate"
    )
    push.add_argument("--ca-file", metavar="PEM", help="trust this CA certificate for the registry")
    push.add_argument("--cert-dir", metavar="DIR", help="trust the *.crt CAs in DIR")
    push.add_argument(
        "--retry",
        type=int,
        default=3,
        metavar="N",
        help="times skopeo retries a failed transfer (default: 3)",
    )
    push.add_argument("-u", "--username", help="registry username (needs --password-stdin)")
    push.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password or token from standard input",
    )
    push.add_argument(
        "--progress",
        choices=["auto", "tty", "plain", "json", "none"],
        help="how to show progress on stderr (default: $IDPWRAP_PROGRESS or auto:"
        " bars on a terminal, plain lines otherwise)",
    )

    command("images", "list the images in the store")
    rmi = command("rmi", "remove images from the store")
    rmi.add_argument("images", nargs="+", metavar="NAME[:TAG]")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list == ["--version"]:
        from idpwrap import __version__

        sys.stdout.write(f"{__version__}\n")
        return 0
    from idpwrap.errors import EXIT_FAILED, EXIT_INTERRUPTED, IdpwrapError

    parser = build_parser()
    args = parser.parse_args(args_list)  # type: ignore[attr-defined]
    _configure_logging(args.verbose, args.debug)
    try:
        return _dispatch(args)
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


def _configure_logging(verbose: bool, debug: bool) -> None:
    import logging

    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="idpwrap: %(message)s", stream=sys.stderr)


def _store(args: object) -> object:
    from pathlib import Path

    from idpwrap.store import Store, default_root

    store_option = getattr(args, "store", None)
    return Store(Path(store_option) if store_option else default_root())


def _dispatch(args: object) -> int:
    handler = {
        "build": _build,
        "push": _push,
        "images": _images,
        "rmi": _rmi,
    }[args.command]  # type: ignore[attr-defined]
    return handler(args)


def _notice(message: str) -> None:
    sys.stderr.write(f"idpwrap: {message}\n")
    sys.stderr.flush()


def _build(args: object) -> int:
    from pathlib import Path

    from idpwrap.commands import build
    from idpwrap.refs import parse_local

    tags = [parse_local(text) for text in args.tag]  # type: ignore[attr-defined]
    store = _store(args)

    def show(text: str) -> None:
        if not args.quiet:  # type: ignore[attr-defined]
            sys.stderr.write(text)
            sys.stderr.flush()

    image = build.run(
        store,  # type: ignore[arg-type]
        Path(args.context),  # type: ignore[attr-defined]
        tags,
        containerfile=args.file,  # type: ignore[attr-defined]
        build_args=args.build_arg,  # type: ignore[attr-defined]
        on_output=show,
    )
    for tag in tags:
        print(f"Image saved to local store: {tag}")
    print(f"Digest: {image.digest}")
    print(f"Store: {store.root}")  # type: ignore[attr-defined]
    return 0


def _push(args: object) -> int:
    import os
    from pathlib import Path

    from idpwrap import display
    from idpwrap.commands import push
    from idpwrap.errors import UsageError

    password = None
    if args.password_stdin:  # type: ignore[attr-defined]
        if sys.stdin.isatty():
            raise UsageError('--password-stdin reads from a pipe: echo "$TOKEN" | idpwrap push ...')
        password = sys.stdin.read().rstrip("\r\n")
    request = push.PushRequest(
        source=args.source,  # type: ignore[attr-defined]
        destination=args.destination,  # type: ignore[attr-defined]
        registry=args.registry,  # type: ignore[attr-defined]
        owner=args.owner,  # type: ignore[attr-defined]
        insecure=args.insecure,  # type: ignore[attr-defined]
        ca_file=Path(args.ca_file) if args.ca_file else None,  # type: ignore[attr-defined]
        cert_dir=Path(args.cert_dir) if args.cert_dir else None,  # type: ignore[attr-defined]
        retry=args.retry,  # type: ignore[attr-defined]
        username=args.username,  # type: ignore[attr-defined]
        password=password,
    )
    mode = args.progress or os.environ.get("IDPWRAP_PROGRESS") or "auto"  # type: ignore[attr-defined]
    if mode not in ("auto", "tty", "plain", "json", "none"):
        raise UsageError(f"IDPWRAP_PROGRESS={mode!r}: use auto, tty, plain, json or none")
    result = push.run(
        _store(args),
        request,  # type: ignore[arg-type]
        lambda label: display.make_view(mode, label),
        _notice,
    )
    print(f"Pushed {result.reference}@{result.digest}")
    return 0


def _images(args: object) -> int:
    from idpwrap.commands import images
    from idpwrap.display import human_bytes

    rows = images.list_images(_store(args))  # type: ignore[arg-type]
    table = [("REPOSITORY", "TAG", "DIGEST", "SIZE", "CREATED")]
    for row in rows:
        table.append(
            (
                row.name,
                row.tag,
                row.digest.split(":", 1)[-1][:12],
                human_bytes(row.size),
                images.age(row.created),
            )
        )
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    return 0


def _rmi(args: object) -> int:
    from idpwrap.commands import images
    from idpwrap.display import human_bytes

    for tag, freed in images.remove(_store(args), args.images):  # type: ignore[arg-type, attr-defined]
        print(f"Untagged: {tag} (freed {human_bytes(freed)})")
    return 0
