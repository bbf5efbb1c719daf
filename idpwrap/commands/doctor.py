"""``idpwrap doctor``: can builds and pushes work here? One line per check, with the fix."""

from __future__ import annotations

import json
import os

from idpwrap.commands.shared import add_authfile_argument, add_tls_arguments
from idpwrap.doctor import checks as doctor
from idpwrap.errors import EXIT_FAILED

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry", metavar="URL",
        help="check this registry (default: the one a push would use: $IDPWRAP_REGISTRY, the"
        " config file's, else idpbuilder's Gitea)",
    )  # fmt: skip
    add_tls_arguments(parser)
    add_authfile_argument(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def execute(args: argparse.Namespace) -> int:
    from idpwrap.errors import UsageError

    for flag, path, exists in (
        ("--ca-file", args.ca_file, os.path.isfile),
        ("--cert-dir", args.cert_dir, os.path.isdir),
        ("--authfile", args.authfile, os.path.isfile),
    ):
        if path and not exists(path):
            raise UsageError(f"{flag} {path} does not exist")
    from idpwrap.config import settings as config

    tls_flags = {  # None: not given, the config file decides
        "insecure": config.insecure_flag(args.insecure, args.tls_verify),
        "ca_file": args.ca_file,
        "cert_dir": args.cert_dir,
    }
    checks = doctor.run_all(args.registry, args.store, tls_flags, args.authfile)
    errors = sum(1 for check in checks if check.status == doctor.ERROR)
    warnings = sum(1 for check in checks if check.status == doctor.WARNING)
    if args.json:
        print(
            json.dumps(
                {"ok": errors == 0, "errors": errors, "warnings": warnings,
                 "checks": [check._asdict() for check in checks]},
                indent=2,
            )
        )  # fmt: skip
    else:
        for check in checks:
            fix = f" -> fix: {check.fix}" if check.fix and check.status != doctor.OK else ""
            print(f"{check.status:<8} {check.name:<12} {check.message}{fix}")
        verdict = "builds and pushes should work" if errors == 0 else "a build or push would fail"
        counts = f"{plural(errors, 'error')}, {plural(warnings, 'warning')}"
        print(f"{counts}: {verdict}")
    return EXIT_FAILED if errors else 0
