"""``idpwrap doctor``: can builds and pushes work here? One line per check, with the fix."""

from __future__ import annotations

import json

from idpwrap import doctor
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
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def execute(args: argparse.Namespace) -> int:
    checks = doctor.run_all(args.registry, args.store)
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
