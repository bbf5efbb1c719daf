"""``idpwrap version``: idpwrap's version and those of the buildah and skopeo it would run.

(``idpwrap --version`` prints idpwrap's alone, without starting anything.)
"""

from __future__ import annotations

import sys

from idpwrap import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

TOOLS = ("buildah", "skopeo")


def tool_version(tool: str) -> str:
    """``buildah version 1.28.2 (...)`` -> ``1.28.2``; ``not found`` when it is not installed."""
    import sh

    try:
        output = str(sh.Command(tool)("--version", _env=_environment())).strip()
    except sh.CommandNotFound:
        return "not found"
    except sh.ErrorReturnCode as error:
        return f"error: {error.stderr.decode(errors='replace').strip() or error.exit_code}"
    words = output.split()
    return words[2] if len(words) > 2 and words[1] == "version" else output


def _environment() -> dict[str, str]:
    from idpwrap.tools.procs import child_environment

    return child_environment()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the versions as JSON")


def execute(args: argparse.Namespace) -> int:
    from idpwrap.tools import matrix

    versions = {"idpwrap": __version__, **{tool: tool_version(tool) for tool in TOOLS}}
    versions["python"] = matrix.python_version()
    tested, said = matrix.verdict(versions["buildah"], versions["skopeo"], versions["python"])
    if args.json:
        import json

        print(json.dumps({**versions, "tested": tested, "matrix": said}))
    else:
        for name, version in versions.items():
            print(f"{name:8} {version}")
        print(f"{'matrix':8} {said}")
    if not tested and args.json:  # the JSON is for programs: a person reads stderr
        sys.stderr.write(f"idpwrap: warning: {said}\n")
    return 0
