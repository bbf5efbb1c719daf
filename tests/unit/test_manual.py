"""The manual stays true: man pages fresh and complete, a short README, no broken links.

The man pages are generated from the parsers (scripts/manpages.py); hand-written synopses
drifted before, so a flag missing from a page, or a page older than the parser, fails here.
Needs no groff: the pages are compared and searched as roff text.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from idpwrap.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[2]
MAN1 = ROOT / "man" / "man1"
README = ROOT / "README.md"
# The README's first lines, exactly as they have always been.
TWO_COMMANDS = (
    "# idpwrap\n\n```sh\n"
    "scripts/demo   # builds examples/hello with buildah and pushes it, with real progress,"
    " to a registry it starts on 127.0.0.1\n"
    "scripts/test   # the whole test suite: unit tests, then real buildah, skopeo and"
    " docker-registry\n```\n"
)


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("idpwrap's parser has no commands")


def page_text(name: str) -> str:
    """The page as a reader sees its words: roff's escaped hyphens and font changes undone."""
    text = (MAN1 / name).read_text()
    return re.sub(r"\\f[BIRP]|\\[,/]", "", text).replace("\\-", "-")


def test_man_pages_are_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "manpages.py"), "--check"],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_every_command_has_a_page() -> None:
    assert (MAN1 / "idpwrap.1").is_file()
    for name in COMMANDS:
        assert (MAN1 / f"idpwrap-{name}.1").is_file(), name
        assert f"idpwrap-{name}" in page_text("idpwrap.1"), name


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_of_help_is_in_the_page(name: str) -> None:
    parser = subparsers(build_parser(selected=name))[name]
    page = page_text(f"idpwrap-{name}.1")
    shown = [
        action for action in parser._actions
        if action.help != argparse.SUPPRESS and "--help" not in action.option_strings
    ]  # fmt: skip
    assert shown, name
    for action in shown:
        for option in action.option_strings:
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", page), (name, option)
        if not action.option_strings:  # a positional, named as --help names it
            words = "{" + ",".join(action.choices) + "}" if action.choices else action.metavar
            assert str(words or action.dest) in page, (name, action.dest)


def test_hidden_options_stay_out() -> None:
    for name in COMMANDS:
        parser = subparsers(build_parser(selected=name))[name]
        page = page_text(f"idpwrap-{name}.1")
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                for option in action.option_strings:
                    assert not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", page), (
                        name,
                        option,
                    )


def test_readme_is_short_and_starts_with_the_two_commands() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert text.startswith(TWO_COMMANDS)


def test_relative_links_lead_to_files() -> None:
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    assert len(pages) > 10
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code is not links
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_the_module_map_names_every_module() -> None:
    """docs/development.md is where a newcomer finds a concern: every module of the package
    and of the test support is named there by its path, and every path named there exists."""
    text = (ROOT / "docs" / "development.md").read_text()
    modules = [
        path.relative_to(ROOT).as_posix()
        for top in ("idpwrap", "testing")
        for path in sorted((ROOT / top).rglob("*.py"))
        if path.name != "__init__.py"
    ]
    named = set(re.findall(r"\b((?:idpwrap|testing)/[\w/]+\.py)\b", text))
    missing = [module for module in modules if module not in named and module not in text]
    assert not missing, f"docs/development.md does not name: {missing}"
    gone = sorted(path for path in named if not (ROOT / path).exists())
    assert not gone, f"docs/development.md names modules that do not exist: {gone}"
