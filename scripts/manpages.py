"""The man pages in man/man1, generated from idpwrap's argparse parsers with argparse-manpage.

    .venv/bin/python scripts/manpages.py           # rewrites man/man1/*.1
    .venv/bin/python scripts/manpages.py --check   # exit 1, naming the stale pages, if any differ

idpwrap(1) lists the commands, the options every command takes and the exit codes (the table
of docs/exit-codes.md, so that the codes are written down in one place); idpwrap-COMMAND(1) is
one command's synopsis, arguments and options. Hand-written synopses drifted from the parser,
so none is written here: every option comes from the parser itself, help=SUPPRESS ones left out.
The pages are deterministic (no date, a fixed width), so tests/unit/test_manual.py can compare
them with freshly generated ones.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tomllib
from pathlib import Path

from argparse_manpage.manpage import Manpage

from idpwrap import __version__
from idpwrap.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent
MAN1 = ROOT / "man" / "man1"
EXIT_CODES = ROOT / "docs" / "exit-codes.md"
MANUAL = "idpwrap manual"
# argparse-manpage stamps today's date (or SOURCE_DATE_EPOCH's) unless given one; a page that
# changed every day could never be checked for freshness, so the date field says the version.
PAGE_DATA = {"project_name": "idpwrap", "manual_title": MANUAL, "date": __version__}


def escape(text: str) -> str:
    """Text for roff: backslashes doubled, hyphens as \\- so that options copy as typed."""
    return text.replace("\\", "\\\\").replace("-", "\\-")


def synopsis(parser: argparse.ArgumentParser, prog: str) -> str:
    """The usage line as one unwrapped, unhyphenated paragraph (argparse-manpage's own leaves
    the hyphens of options unescaped, so groff would print them as typographic hyphens)."""
    usage = " ".join(parser.format_usage().split(":", 1)[-1].split())
    rest = usage.removeprefix(prog).strip()
    return f".nh\n.ad l\n.B {escape(prog)}\n{escape(rest)}"


def subparsers_action(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise SystemExit("scripts/manpages.py: idpwrap's parser has no commands")


def visible(action: argparse.Action) -> bool:
    return action.help != argparse.SUPPRESS and "--help" not in action.option_strings


def option_entry(action: argparse.Action) -> str:
    """One option as a .TP entry, in argparse-manpage's style."""
    if action.nargs == 0:
        names = ", ".join(f"\\fB{escape(option)}\\fR" for option in action.option_strings)
    else:
        metavar = action.metavar or action.dest.upper()
        names = ", ".join(
            f"\\fB{escape(option)}\\fR \\fI{escape(str(metavar))}\\fR"
            for option in action.option_strings
        )
    return f".TP\n{names}\n{escape(action.help or '')}"


def exit_codes_section() -> str:
    """docs/exit-codes.md's table as a .TP list."""
    entries = []
    for line in EXIT_CODES.read_text().splitlines():
        match = re.fullmatch(r"\| (\d+) \| (.*) \|", line)
        if match:
            meaning = match.group(2).replace("`", "")
            entries.append(f".TP\n.B {match.group(1)}\n{escape(meaning)}")
    if not entries:
        raise SystemExit(f"scripts/manpages.py: no exit code table in {EXIT_CODES}")
    return "\n".join(entries)


def command_page(name: str, parser: argparse.ArgumentParser) -> str:
    page = Manpage(parser, dict(PAGE_DATA))
    page.prog = f"idpwrap-{name}"  # the page's name and title; the synopsis keeps "idpwrap NAME"
    page.description = parser.description  # the NAME line: "idpwrap-push - copy an image ..."
    page.add_section("synopsis", "=", synopsis(parser, parser.prog))
    example = parser.epilog
    parser.epilog = None  # shown as EXAMPLE below, not as argparse-manpage's COMMENTS
    try:
        if example:
            page.add_section("example", "=", escape(example.removeprefix("example: ")))
        page.add_section("see also", "=", "\\fBidpwrap\\fR(1)")
        return str(page)
    finally:
        parser.epilog = example


def main_page(full: argparse.ArgumentParser) -> str:
    # The top-level parser alone (no command declared): its own options, without a dump of
    # every command, which have their own pages.
    top = build_parser(selected="")
    subparsers_action(top).help = argparse.SUPPRESS
    page = Manpage(top, dict(PAGE_DATA))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    page.description = project["description"]
    page.add_section("synopsis", "=", synopsis(full, "idpwrap"))
    commands = subparsers_action(full)
    page.add_section(
        "commands", "=",
        "\n".join(
            f".TP\n\\fBidpwrap {escape(choice.dest)}\\fR\n{escape(choice.help or '')}.\n"
            f"See \\fBidpwrap\\-{escape(choice.dest)}\\fR(1)."
            for choice in commands._choices_actions
        ),
    )  # fmt: skip
    # What every command declares (the common parent options), from the parsers themselves.
    per_command = [
        [action for action in parser._actions if visible(action) and action.option_strings]
        for parser in commands.choices.values()
    ]
    shared = [
        action for action in per_command[0]
        if all(any(other.option_strings == action.option_strings for other in actions)
               for actions in per_command[1:])
    ]  # fmt: skip
    page.add_section(
        "common options",
        "=",
        "Every command takes these options:\n" + "\n".join(option_entry(a) for a in shared),
    )
    page.add_section("exit status", "=", exit_codes_section())
    page.add_section(
        "see also",
        "=",
        ",\n".join(f"\\fBidpwrap\\-{escape(name)}\\fR(1)" for name in COMMANDS)
        + ",\n\\fBbuildah\\fR(1), \\fBskopeo\\fR(1)",
    )
    return str(page)


def render() -> dict[str, str]:
    """File name -> page text, for every page."""
    # The parser's help formatter takes its width from COLUMNS or the terminal: fix it, so
    # that the pages do not depend on where they are generated.
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"
    try:
        full = build_parser()
        pages = {"idpwrap.1": main_page(full)}
        for name, parser in subparsers_action(full).choices.items():
            pages[f"idpwrap-{name}.1"] = command_page(name, parser)
        return pages
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def main(argv: list[str]) -> int:
    check = argv == ["--check"]
    if argv and not check:
        print("usage: scripts/manpages.py [--check]", file=sys.stderr)
        return 2
    pages = render()
    existing = {path.name for path in MAN1.glob("*.1")} if MAN1.is_dir() else set()
    stale = sorted(
        name for name, text in pages.items()
        if not (MAN1 / name).is_file() or (MAN1 / name).read_text() != text
    )  # fmt: skip
    extra = sorted(existing - set(pages))
    if check:
        for name in stale:
            print(f"man/man1/{name} differs from the parser's", file=sys.stderr)
        for name in extra:
            print(f"man/man1/{name} has no command any more", file=sys.stderr)
        if stale or extra:
            print("run: .venv/bin/python scripts/manpages.py", file=sys.stderr)
            return 1
        return 0
    MAN1.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (MAN1 / name).write_text(pages[name])
        print(f"wrote man/man1/{name}")
    for name in extra:
        (MAN1 / name).unlink()
        print(f"removed man/man1/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
