"""``idpwrap cache trim REPO``: a registry build cache's old entries removed (build/cachetrim.py),
reached with push's credentials and TLS trust."""

from __future__ import annotations

import json
import re
import time

from idpwrap.commands.shared import add_credential_arguments, add_tls_arguments, read_password
from idpwrap.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from idpwrap.build.cachetrim import Decision, Outcome

DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("trim",), help="trim: remove old entries")
    parser.add_argument(
        "repository", metavar="REPO",
        help="the cache repository: HOST/PATH, or a PATH on --registry (e.g."
        " giteaadmin/myapp-buildcache, what --cache auto writes next to giteaadmin/myapp)",
    )  # fmt: skip
    parser.add_argument(
        "--older-than", metavar="AGE", required=True,
        help="remove whole builds last written or used longer ago than AGE (7d, 36h, 1d12h,"
        " 90m), with buildah's layer steps that only they hold",
    )  # fmt: skip
    parser.add_argument(
        "--keep", type=int, default=0, metavar="N",
        help="keep the N most recently used whole builds whatever their age (default 0)",
    )  # fmt: skip
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would be removed; remove nothing"
    )
    parser.add_argument(
        "--json", action="store_true",
        help='print {"repository", "dry_run", "removed", "kept", "deleted_manifests"} on stdout',
    )  # fmt: skip
    parser.add_argument(
        "--registry", metavar="URL",
        help="the registry of a REPO given as PATH (default: $IDPWRAP_REGISTRY, else the config"
        " file's registry, else idpbuilder's Gitea)",
    )  # fmt: skip
    add_tls_arguments(parser)
    add_credential_arguments(parser)


def parse_age(text: str) -> float:
    """``7d``, ``36h``, ``1d12h``, ``90m`` -> seconds."""
    match = DURATION.fullmatch(text.strip())
    if not text.strip() or not match or not any(match.groups()):
        raise UsageError(f"--older-than {text!r}: expected an age such as 7d, 36h, 1d12h or 90m")
    days, hours, minutes = (int(part or 0) for part in match.groups())
    return float(days * 86400 + hours * 3600 + minutes * 60)


def execute(args: argparse.Namespace) -> int:
    from idpwrap.build import cachetrim
    from idpwrap.build.registrycache import parse_repository
    from idpwrap.config import settings as config
    from idpwrap.creds import sources as creds
    from idpwrap.errors import DeleteRefused
    from idpwrap.refs import looks_like_host, parse_registry
    from idpwrap.registry import repository as remote

    older_than = parse_age(args.older_than)
    if args.keep < 0:
        raise UsageError(f"--keep {args.keep}: expected 0 or more")
    text = args.repository
    if not looks_like_host(text.split("/", 1)[0]):
        chosen = config.load().setting("registry", args.registry, "--registry").value
        text = f"{parse_registry(str(chosen)).host}/{text}"
    registry, path = parse_repository(text)
    settings = config.for_push(
        source_host=registry.host, registry=None, owner=None,
        insecure=config.insecure_flag(args.insecure, args.tls_verify),
        ca_file=args.ca_file, cert_dir=args.cert_dir, retry=None, progress=None,
    )  # fmt: skip
    credentials = creds.resolve(
        registry.host, username=args.username, password=read_password(args, "cache trim"),
        authfile=args.authfile or None,
    )  # fmt: skip
    repository = remote.Repository(
        registry, path, credentials, config.trust_of(settings, args.cert_dir)
    )
    try:
        outcome = cachetrim.trim(repository, time.time(), older_than, args.keep, args.dry_run)
    except remote.DeleteRefused as error:
        raise DeleteRefused.by(
            repository.where(), str(error),
            "nothing was removed (--dry-run lists what would go)",
        ) from None  # fmt: skip
    report(args, repository.where(), outcome)
    return 0


def report(args: argparse.Namespace, where: str, outcome: Outcome) -> None:
    removed = [item for item in outcome.decisions if item.remove]
    kept = [item for item in outcome.decisions if not item.remove]
    if args.json:
        print(
            json.dumps(
                {
                    "repository": where,
                    "dry_run": args.dry_run,
                    "removed": [_entry(item) for item in removed],
                    "kept": [_entry(item) for item in kept],
                    "deleted_manifests": outcome.deleted,
                }
            )
        )
        return
    verb = "would remove" if args.dry_run else "removed"
    if args.verbose:
        for item in outcome.decisions:
            print(f"{verb if item.remove else 'kept'} {where}:{item.tag} ({item.reason})")
    builds = sum(item.kind == "build" for item in removed)
    steps = sum(item.kind == "layer" for item in removed)
    unknown = sum("unknown" in item.reason for item in kept)
    print(
        f"{verb.capitalize()} {len(removed)} tag{'s' if len(removed) != 1 else ''} of {where}"
        f" ({builds} whole build{'s' if builds != 1 else ''}, {steps} layer"
        f" step{'s' if steps != 1 else ''}, with their marks); kept {len(kept)}"
        + (f" ({unknown} of unknown age: -v lists them)" if unknown else "")
    )


def _entry(item: Decision) -> dict[str, object]:
    return {"tag": item.tag, "kind": item.kind, "digest": item.digest, "reason": item.reason}
