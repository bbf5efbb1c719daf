"""The one reader of the Containerfile format, and what a build takes from outside its context.

``instructions`` tokenizes a Containerfile as buildah does: parser directives at the top
(``# escape=`` changes the line continuation character; any other line ends the directives),
continuation lines joined, comments dropped, even inside a continued instruction. Each
``Instruction`` keeps its span in the file, so a caller can point at its line or edit it in
place. ``global_args`` and ``substitute`` are the one reading of ``ARG`` and ``$VAR``.

``sources`` is what the build fingerprint needs: the image each ``FROM`` names (after the
``ARG``\\s declared before the first ``FROM``, with the build's ``--build-arg`` values), images
named by ``COPY --from`` and ``RUN --mount=...,from=``, and whether anything is fetched from
the network (``ADD`` of a URL or a git repository). Anything this reader is not sure about is
reported as ``unknown``, and the build then always goes through buildah.
"""

from __future__ import annotations

import os
import re
from collections import namedtuple
from collections.abc import Mapping, Sequence

DEFAULT_ESCAPE = "\\"
DIRECTIVE_RE = re.compile(r"#\s*([A-Za-z]+)\s*=\s*(\S+)\s*$")
# $NAME and ${NAME}; any other expansion form (${NAME:-default}, ...) is left unresolved.
VARIABLE_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
FROM_FLAG_RE = re.compile(r"--from=(\S+)")
MOUNT_FROM_RE = re.compile(r"(?:^|[\s,])from=([^,\s]+)")
REMOTE_SOURCE_RE = re.compile(r"^(?:https?://|git@|git://|ssh://)", re.IGNORECASE)


class Instruction(namedtuple("Instruction", "start end keyword text")):
    """One instruction: where it is in the file (continuation lines included), its keyword in
    upper case, and its text with the continuations joined."""

    __slots__ = ()
    start: int
    end: int
    keyword: str
    text: str

    @property
    def arguments(self) -> str:
        """The text after the keyword."""
        parts = self.text.split(None, 1)
        return parts[1] if len(parts) > 1 else ""


class Sources(namedtuple("Sources", "images unknown")):
    """``images``: every image the build reads, in order (``scratch`` included);
    ``unknown``: why the reader cannot vouch for the list, or None."""

    __slots__ = ()
    images: tuple[str, ...]
    unknown: str | None


def escape_character(text: str) -> str:
    """The line continuation character: the ``# escape=`` directive's, else a backslash.
    Directives count only at the very top: a comment, blank line or instruction ends them."""
    for line in text.splitlines():
        match = DIRECTIVE_RE.match(line.strip())
        if match is None:
            break
        if match.group(1).lower() == "escape":
            return match.group(2)[0]
    return DEFAULT_ESCAPE


def instructions(text: str) -> list[Instruction]:
    """The instructions of a Containerfile, with their spans, honouring ``# escape=``."""
    escape = escape_character(text)
    found: list[Instruction] = []
    lines = text.splitlines(keepends=True)
    position = index = 0
    while index < len(lines) and DIRECTIVE_RE.match(lines[index].strip()):
        position += len(lines[index])
        index += 1
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            position += len(line)
            index += 1
            continue
        start, parts = position, []
        while index < len(lines):
            line = lines[index]
            position += len(line)
            index += 1
            body = line.rstrip()
            if body.lstrip().startswith("#") and parts:
                continue  # a comment inside a continued instruction
            if body.endswith(escape):
                parts.append(body[:-1])
                continue
            parts.append(body)
            break
        joined = " ".join(part.strip() for part in parts if part.strip())
        keyword = joined.split(None, 1)[0].upper() if joined else ""
        found.append(Instruction(start, position, keyword, joined))
    return found


def arg_declarations(arguments: str) -> dict[str, str | None]:
    """``A=1 B`` (after ``ARG``) -> {"A": "1", "B": None}; quotes as a shell reads them."""
    import shlex

    values: dict[str, str | None] = {}
    try:
        words = shlex.split(arguments)
    except ValueError:
        return values
    for word in words:
        name, equals, value = word.partition("=")
        values[name] = value if equals else None
    return values


def build_arg_values(build_args: Sequence[str]) -> dict[str, str | None]:
    """``--build-arg`` values: ``KEY=VALUE``, or ``KEY`` alone for ``$KEY`` of the
    environment (None when that is not set)."""
    values: dict[str, str | None] = {}
    for build_arg in build_args:
        name, equals, value = build_arg.partition("=")
        values[name] = value if equals else os.environ.get(name)
    return values


def global_args(
    found: Sequence[Instruction], build_args: Mapping[str, str | None]
) -> dict[str, str | None]:
    """The ``ARG``\\s declared before the first ``FROM`` (the only ones ``FROM`` sees), each
    with its ``--build-arg`` value, else its default, else None."""
    values: dict[str, str | None] = {}
    for instruction in found:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            for name, default in arg_declarations(instruction.arguments).items():
                values[name] = build_args[name] if name in build_args else default
    return values


def substitute(text: str, values: Mapping[str, str | None]) -> str | None:
    """``text`` with its variables replaced, or None when one has no value or another
    expansion form is used."""
    missing = []

    def replace(match: re.Match[str]) -> str:
        value = values.get(match.group(1) or match.group(2))
        if value is None:
            missing.append(match.group(0))
            return ""
        return value

    result = VARIABLE_RE.sub(replace, text)
    if missing or "$" in result:
        return None
    return result


def sources(text: str, build_args: Mapping[str, str]) -> Sources:
    """The images a build of ``text`` reads, with ``build_args`` given to it."""
    escape = escape_character(text)
    if escape != DEFAULT_ESCAPE:
        # The escape character also quotes ``$`` inside words, which ``substitute`` does not
        # read: such a file always goes through buildah.
        return Sources((), f"escape directive {escape!r}")
    found = instructions(text)
    args = global_args(found, build_args)
    stages: list[str] = []  # names and numbers of the stages so far, lowercase
    count = 0
    images: list[str] = []
    for instruction in found:
        keyword, rest = instruction.keyword, instruction.arguments
        if keyword == "FROM":
            words = [word for word in rest.split() if not word.startswith("--")]
            if not words:
                return Sources(tuple(images), "a FROM without an image")
            image = substitute(words[0], args)
            if image is None:
                return Sources(tuple(images), f"FROM {words[0]} uses an unresolved variable")
            if image.lower() not in stages:
                images.append(image)
            stages.append(str(count))
            count += 1
            if len(words) >= 3 and words[1].lower() == "as":
                stages.append(words[2].lower())
        elif keyword in ("COPY", "ADD"):
            match = FROM_FLAG_RE.search(rest)
            if match and match.group(1).lower() not in stages:
                if "$" in match.group(1):
                    return Sources(tuple(images), f"{keyword} --from uses a variable")
                images.append(match.group(1))
            if keyword == "ADD":
                words = [word for word in rest.split() if not word.startswith("--")]
                if any(REMOTE_SOURCE_RE.match(word.strip('[",')) for word in words[:-1]):
                    return Sources(tuple(images), "ADD fetches from the network")
        elif keyword == "RUN":
            for flag in (word for word in rest.split() if word.startswith("--mount=")):
                match = MOUNT_FROM_RE.search(flag[len("--mount=") :])
                if match and match.group(1).lower() not in stages:
                    if "$" in match.group(1):
                        return Sources(tuple(images), "RUN --mount from= uses a variable")
                    images.append(match.group(1))
    if not any(instruction.keyword == "FROM" for instruction in found):
        return Sources((), "no FROM instruction")
    return Sources(tuple(images), None)
