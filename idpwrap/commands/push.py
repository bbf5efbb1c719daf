"""``idpwrap push``: its arguments and settings; the push itself is ``idpwrap.push.pushing``."""

from __future__ import annotations

import json

from idpwrap.commands.shared import (
    add_authfile_argument,
    add_tls_arguments,
    notice,
    open_store,
    password_argument_refused,
    refuse_password_argument,
)
from idpwrap.errors import RegistryUnreachable, UsageError
from idpwrap.push.pushing import push_all_tags, run
from idpwrap.push.request import PushRequest, digestfile_text
from idpwrap.push.source import write_file
from idpwrap.refs import DEFAULT_REGISTRY, destination_host, parse_source

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from idpwrap.push.display import ProgressView
    from idpwrap.sign.signing import Signer

PROGRESS_MODES = ("auto", "tty", "plain", "json", "none")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="[OWNER/]NAME[:TAG] or NAME@sha256:...")
    parser.add_argument(
        "destination", metavar="DEST", nargs="?",
        help="[HOST/]PATH[:TAG]; overrides the Gitea mapping HOST/OWNER/NAME:TAG",
    )  # fmt: skip
    parser.add_argument(
        "--registry", metavar="URL",
        help="https://host:port, host:port or http://host:port (default: $IDPWRAP_REGISTRY,"
        f" else idpbuilder's Gitea, {DEFAULT_REGISTRY})",
    )  # fmt: skip
    parser.add_argument(
        "--owner", help="registry namespace (default: OWNER in SOURCE, else the username)"
    )
    add_tls_arguments(parser)
    parser.add_argument(
        "--retry", type=int, metavar="N",
        help="times skopeo retries a failed transfer (default: $IDPWRAP_RETRY, the config"
        " file's retry, else 3)",
    )  # fmt: skip
    parser.add_argument("-u", "--username", help="registry username (with --password-stdin)")
    refuse_password_argument(parser)
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password or token from stdin"
    )
    add_authfile_argument(parser)
    parser.add_argument(
        "--all-tags", action="store_true", help="push every tag of SOURCE's repository"
    )
    parser.add_argument(
        "--digestfile", metavar="FILE",
        help="write the pushed digest to FILE (with --all-tags: REFERENCE DIGEST lines)",
    )  # fmt: skip
    parser.add_argument(
        "--sign-by-sigstore-private-key", metavar="KEY",
        help="sign the pushed digest with this key (idpwrap keygen's cosign.key); the signature"
        " is stored as the tag sha256-<digest>.sig (config key sign_by_sigstore_private_key)",
    )  # fmt: skip
    parser.add_argument(
        "--sign-passphrase-file", metavar="FILE",
        help="the signing key's passphrase (default: $IDPWRAP_SIGN_PASSPHRASE, else a prompt)",
    )  # fmt: skip
    parser.add_argument(
        "--platform", metavar="OS/ARCH[/VARIANT]",
        help="of a multi-platform image, push only this platform's image (default: the whole"
        " index, every child first)",
    )  # fmt: skip
    parser.add_argument(
        "--json", action="store_true", help='print {"reference", "digest", "size"} on stdout'
    )
    parser.add_argument(
        "--progress", choices=PROGRESS_MODES,
        help="progress on stderr (default: $IDPWRAP_PROGRESS, else auto: bars on a terminal,"
        " plain lines otherwise)",
    )  # fmt: skip
    parser.add_argument(
        "-q", "--quiet", action="store_true",
        help="no progress (--progress none); the Pushed line on stdout and warnings stay",
    )  # fmt: skip


def _signer(args: argparse.Namespace) -> Signer | None:
    from idpwrap.config import settings as config

    key = config.load().setting(
        "sign_by_sigstore_private_key", args.sign_by_sigstore_private_key,
        "--sign-by-sigstore-private-key",
    ).value  # fmt: skip
    if not key:
        if args.sign_passphrase_file:
            raise UsageError("--sign-passphrase-file goes with --sign-by-sigstore-private-key KEY")
        return None
    from idpwrap.sign import signing

    return signing.prepare(str(key), args.sign_passphrase_file)


def push_platform(text: str | None) -> str | None:
    if not text:
        return None
    from idpwrap import platforms

    found = platforms.parse([text])
    if len(found) != 1:
        raise UsageError(f"--platform {text!r}: push takes one platform (or none: all of them)")
    return found[0]


def execute(args: argparse.Namespace) -> int:
    import sys

    from idpwrap.config import settings as config

    if args.password_argument is not None:
        raise UsageError(password_argument_refused("push"))
    if args.quiet and args.progress not in (None, "none"):
        raise UsageError(f"--quiet means no progress: drop --progress {args.progress} or --quiet")
    settings = config.for_push(
        source_host=parse_source(args.source).host or destination_host(args.destination),
        registry=args.registry,
        owner=args.owner,
        insecure=config.insecure_flag(args.insecure, args.tls_verify),
        ca_file=args.ca_file,
        cert_dir=args.cert_dir,
        retry=args.retry,
        progress="none" if args.quiet else args.progress,
    )  # flags, then IDPWRAP_*, then the config file, then the defaults
    mode = settings["progress"].value
    password = None
    if args.password_stdin:
        if sys.stdin.isatty():
            raise UsageError('--password-stdin reads a pipe: echo "$TOKEN" | idpwrap push ...')
        password = sys.stdin.read().rstrip("\r\n")
    request = PushRequest(
        source=args.source,
        destination=args.destination,
        registry=settings["registry"].value,
        owner=settings["owner"].value,
        tls=config.trust_of(settings, args.cert_dir),
        retry=settings["retry"].value,
        username=args.username,
        password=password,
        authfile=args.authfile or None,
        signer=_signer(args),
        platform=push_platform(args.platform),
    )

    def make_view(label: str) -> ProgressView:
        from idpwrap.push import display

        return display.make_view(mode, label)

    store = open_store(args)
    try:
        if args.all_tags:
            results = push_all_tags(store, request, make_view, notice)
        else:
            results = [run(store, request, make_view, notice)]
    except RegistryUnreachable as error:
        if settings["registry"].source != "default":
            raise
        raise RegistryUnreachable(
            f"{error} ({DEFAULT_REGISTRY} is idpwrap's built-in default, idpbuilder's Gitea:"
            " start idpbuilder, or name the registry with --registry or IDPWRAP_REGISTRY)"
        ) from error
    if args.digestfile:
        try:
            write_file(args.digestfile, digestfile_text(results).encode())
        except OSError as error:
            raise UsageError(
                f"cannot write --digestfile {args.digestfile}: {error.strerror}; the push itself"
                " succeeded"
            ) from error
    for result in results:
        if args.json:
            print(json.dumps(result._asdict()))
        else:
            print(f"Pushed {result.reference}@{result.digest}")
    return 0
