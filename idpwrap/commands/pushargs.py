"""Push's options, declared once for ``idpwrap push`` and ``idpwrap build --push``: what they
resolve to (a PushRequest, by flags, then IDPWRAP_*, then the config file, then the defaults),
and the push run and reported (progress, the digest file, the result lines or JSON, a tag
another push moved). The push itself is ``idpwrap.push.pushing``.
"""

from __future__ import annotations

import json

from idpwrap.commands.shared import (
    add_credential_arguments,
    add_tls_arguments,
    notice,
    read_password,
)
from idpwrap.errors import RegistryUnreachable, TagMoved, UsageError
from idpwrap.push.pushing import push_all_tags, run
from idpwrap.push.request import PushRequest, digestfile_text
from idpwrap.push.source import write_file
from idpwrap.refs import DEFAULT_REGISTRY, destination_host, parse_source

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from idpwrap.config.settings import Setting
    from idpwrap.push.display import ProgressView
    from idpwrap.sign.signing import Signer
    from idpwrap.store.api import Store

PROGRESS_MODES = ("auto", "tty", "plain", "json", "none")


def add_push_options(parser: argparse.ArgumentParser) -> None:
    """How a push goes: where, as whom, with which trust, what it reports; declared once for
    ``push`` and ``build --push`` (and the build cache, which reaches registries alike)."""
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
    add_credential_arguments(parser)
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
        "--provenance", action="store_true", default=None,
        help="attach the build's provenance to the pushed image: signed with a signing key"
        " (sha256-<digest>.att), else unsigned as an OCI artifact found by the referrers API"
        " or the tag sha256-<digest> (config key provenance, $IDPWRAP_PROVENANCE)",
    )  # fmt: skip
    parser.add_argument(
        "--no-provenance", dest="provenance", action="store_false",
        help="attach no unsigned provenance, whatever the config file says",
    )  # fmt: skip
    parser.add_argument(
        "--no-up-to-date-check", dest="up_to_date_check", action="store_false", default=None,
        help="copy even when the registry's tag already serves the image (default: ask it"
        " first and skip the copy; config key up_to_date_check, $IDPWRAP_UP_TO_DATE_CHECK)",
    )  # fmt: skip
    parser.add_argument(
        "--json", action="store_true",
        help='print {"reference", "digest", "size", "up_to_date", "tag_digest"} on stdout'
        ' (and "provenance": the attached artifacts, with --provenance)',
    )  # fmt: skip
    parser.add_argument(
        "--progress", choices=PROGRESS_MODES,
        help="progress on stderr (default: $IDPWRAP_PROGRESS, else auto: bars on a terminal,"
        " plain lines otherwise)",
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


def prepare(
    args: argparse.Namespace, source: str, destination: str | None, command: str = "push"
) -> tuple[PushRequest, dict[str, Setting]]:
    """The PushRequest of the push options and settings (flags, then IDPWRAP_*, then the
    config file, then the defaults)."""
    from idpwrap.config import settings as config

    password = read_password(args, command)
    # -q is push's --progress none; build's -q (quiet buildah) silences its push as well.
    quiet = getattr(args, "quiet", False)
    if quiet and args.progress not in (None, "none"):
        raise UsageError(f"--quiet means no progress: drop --progress {args.progress} or --quiet")
    settings = config.for_push(
        source_host=parse_source(source).host or destination_host(destination),
        registry=args.registry,
        owner=args.owner,
        insecure=config.insecure_flag(args.insecure, args.tls_verify),
        ca_file=args.ca_file,
        cert_dir=args.cert_dir,
        retry=args.retry,
        progress="none" if quiet else args.progress,
    )
    request = PushRequest(
        source=source,
        destination=destination,
        registry=settings["registry"].value,
        owner=settings["owner"].value,
        tls=config.trust_of(settings, args.cert_dir),
        retry=settings["retry"].value,
        username=args.username,
        password=password,
        authfile=args.authfile or None,
        signer=_signer(args),
        platform=push_platform(getattr(args, "platform_to_push", None)),
        **_tag_questions(args),
    )
    return request, settings


def push_and_report(
    args: argparse.Namespace,
    store: Store,
    request: PushRequest,
    settings: dict[str, Setting],
    all_tags: bool = False,
) -> None:
    """The push, its digest file and its result lines (or JSON) on stdout."""
    mode = settings["progress"].value

    def make_view(label: str) -> ProgressView:
        from idpwrap.push import display

        return display.make_view(mode, label)

    try:
        if all_tags:
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
            shown = result._asdict()
            if shown["provenance"] is None:  # asked for: a list, even an empty one
                del shown["provenance"]
            else:
                shown["provenance"] = list(shown["provenance"])
            print(json.dumps(shown))
            continue
        if result.up_to_date:
            print(f"Up to date {result.reference}@{result.digest} (already in the registry)")
        else:
            print(f"Pushed {result.reference}@{result.digest}")
        for artifact in result.provenance or ():
            print(f"Provenance attached: {artifact} (unsigned)")
    moved = [result for result in results if result.moved]
    if moved:
        import sys

        sys.stdout.flush()
        first = moved[0]
        raise TagMoved.by_another_push(
            first.reference, first.digest, first.tag_digest, len(moved) - 1
        )


def _tag_questions(args: argparse.Namespace) -> dict[str, object]:
    """--no-up-to-date-check and the lookup's timeout, from the flag or the settings."""
    from idpwrap.config import settings as config

    loaded = config.load()
    check = loaded.setting("up_to_date_check", args.up_to_date_check, "--no-up-to-date-check")
    timeout = loaded.setting("tag_lookup_timeout")
    provenance = loaded.setting("provenance", args.provenance, "--provenance")
    return {
        "up_to_date_check": bool(check.value),
        "lookup_timeout": float(timeout.value),
        "provenance": bool(provenance.value),
    }
