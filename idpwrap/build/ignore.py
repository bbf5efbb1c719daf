"""``.containerignore`` / ``.dockerignore``: which files of a context a build can see.

buildah 1.28 reads the context's ``.containerignore``, else its ``.dockerignore``, and matches
each path with Docker's pattern matcher (``pkg/fileutils``): a pattern is a cleaned path glob
turned into a regular expression (``*`` and ``?`` stop at ``/``, ``**`` crosses directories),
a path is excluded when the last pattern that matches it, or matches one of its parent
directories, is not a ``!`` exception (``MatchesOrParentMatches``: ``**/a`` leaves out ``a/b``).

This module answers one question for the build fingerprint: which files might be copied into
the image. It errs on the side of "might": a file counted that buildah leaves out only costs
a needless build, a file left out that buildah copies would let a changed file go unnoticed.
So a pattern whose meaning is not certain (regular-expression characters, character classes,
escapes) makes the whole context count.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections import namedtuple
from pathlib import Path

IGNORE_FILES = (".containerignore", ".dockerignore")
# Docker's translation passes other characters to the regular expression unchanged, so
# ``x[0-9]`` and ``a+b`` mean what they mean there (checked against buildah 1.28). An escape or
# a repetition count might be read differently by Go's engine and Python's: not trusted.
UNCERTAIN = set("\\{}")


class Pattern(namedtuple("Pattern", "text exclusion regex")):
    __slots__ = ()
    text: str
    exclusion: bool
    regex: re.Pattern[str]


class Ignore(namedtuple("Ignore", "source patterns certain")):
    """The rules of one context. ``certain`` is False when a pattern's meaning is unsure: then
    nothing is treated as excluded."""

    __slots__ = ()
    source: str | None  # the file's name, or None without one
    patterns: tuple[Pattern, ...]
    certain: bool

    @property
    def has_exclusions(self) -> bool:
        return any(pattern.exclusion for pattern in self.patterns)

    def excluded(self, path: str) -> bool:
        """Whether buildah leaves ``path`` (relative to the context, with ``/``) out: the last
        pattern that matches it or one of its parent directories decides."""
        if not self.certain:
            return False
        parts = path.split("/")
        prefixes = ["/".join(parts[: count + 1]) for count in range(len(parts) - 1)]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue  # it could not change the answer
            if pattern.regex.match(path) or any(pattern.regex.match(p) for p in prefixes):
                matched = not pattern.exclusion
        return matched

    def prunes(self, directory: str) -> bool:
        """Whether nothing below ``directory`` can be copied: it is excluded, so everything
        below it is matched too, and no ``!`` exception can bring anything back."""
        return self.certain and not self.has_exclusions and self.excluded(directory)


def glob_to_regex(pattern: str) -> str:
    """Docker's translation of one cleaned pattern into a regular expression."""
    regex = "^"
    index = 0
    while index < len(pattern):
        char = pattern[index]
        index += 1
        if char == "*":
            if index < len(pattern) and pattern[index] == "*":
                index += 1
                if index < len(pattern) and pattern[index] == "/":
                    index += 1
                regex += ".*" if index >= len(pattern) else "(.*/)?"
            else:
                regex += "[^/]*"
        elif char == "?":
            regex += "[^/]"
        elif char in ".$":
            regex += "\\" + char
        else:
            regex += char
    return regex + "$"


def parse(text: str, source: str | None = None) -> Ignore:
    """The patterns of an ignore file, as buildah 1.28 reads them."""
    patterns = []
    certain = True
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
            if not line:
                continue
        cleaned = posixpath.normpath(line).lstrip("/") or "."
        if UNCERTAIN & set(cleaned):
            certain = False
            continue
        try:
            regex = re.compile(glob_to_regex(cleaned))
        except re.error:
            certain = False
            continue
        patterns.append(Pattern(cleaned, exclusion, regex))
    return Ignore(source, tuple(patterns), certain)


def for_context(context: Path) -> Ignore:
    """The context's ``.containerignore``, else its ``.dockerignore``, else no rules."""
    for name in IGNORE_FILES:
        path = context / name
        try:
            text = path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            continue
        except OSError:
            return Ignore(name, (), False)  # unreadable: buildah will say so; count everything
        return parse(text.removeprefix("\ufeff"), name)
    return Ignore(None, (), True)


def walk(context: Path, rules: Ignore) -> list[tuple[str, os.stat_result]]:
    """Every entry of ``context`` a build might copy, as (relative path, lstat), sorted.

    Directories are listed as well (an empty one is copied too); symbolic links are listed,
    never followed.
    """
    entries: list[tuple[str, os.stat_result]] = []
    pending = [""]
    while pending:
        relative = pending.pop()
        directory = os.path.join(context, relative) if relative else str(context)
        with os.scandir(directory) as listing:
            children = sorted(listing, key=lambda entry: entry.name)
        for entry in children:
            path = f"{relative}/{entry.name}" if relative else entry.name
            info = entry.stat(follow_symlinks=False)
            is_dir = entry.is_dir(follow_symlinks=False)
            if is_dir:
                if rules.prunes(path):
                    continue
                entries.append((path, info))
                pending.append(path)
            elif not rules.excluded(path):
                entries.append((path, info))
    entries.sort(key=lambda item: item[0])
    return entries
