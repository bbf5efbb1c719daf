"""What a Containerfile takes from outside its context: base images and remote sources.

Only what the build fingerprint needs: the image each ``FROM`` names (after the ``ARG``\\s
declared before the first ``FROM``, with the build's ``--build-arg`` values), images named by
``COPY --from`` and ``RUN --mount=...,from=``, and whether anything is fetched from the
network (``ADD`` of a URL or a git repository). Anything this reader is not sure about is
reported as ``unknown``, and the build then always goes through buildah.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Mapping

# $NAME and ${NAME}; any other expansion form (${NAME:-default}, ...) is left unresolved.
VARIABLE_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
FROM_FLAG_RE = re.compile(r"--from=(\S+)")
MOUNT_FROM_RE = re.compile(r"(?:^|[\s,])from=([^,\s]+)")
REMOTE_SOURCE_RE = re.compile(r"^(?:https?://|git@|git://|ssh://)", re.IGNORECASE)


class Sources(namedtuple("Sources", "images unknown")):
    """``images``: every image the build reads, in order (``scratch`` included);
    ``unknown``: why the reader cannot vouch for the list, or None."""

    __slots__ = ()
    images: tuple[str, ...]
    unknown: str | None


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment line inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        if line:
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    if pending.strip():
        word, _, rest = pending.strip().partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def escape_directive(text: str) -> str | None:
    """The ``# escape=`` parser directive at the top of the file, if any."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("#"):
            return None
        match = re.match(r"#\s*escape\s*=\s*(\S)", line, re.IGNORECASE)
        if match:
            return match.group(1)
    return None


def substitute(text: str, values: Mapping[str, str]) -> str | None:
    """``text`` with its variables replaced, or None when one has no value or another
    expansion form is used."""
    missing = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            missing.append(name)
            return ""
        return values[name]

    result = VARIABLE_RE.sub(replace, text)
    if missing or "$" in result:
        return None
    return result


def sources(text: str, build_args: Mapping[str, str]) -> Sources:
    """The images a build of ``text`` reads, with ``build_args`` given to it."""
    escape = escape_directive(text)
    if escape not in (None, "\\"):
        return Sources((), f"escape directive {escape!r}")
    args: dict[str, str] = {}
    stages: list[str] = []  # names and numbers of the stages so far, lowercase
    count = 0
    images: list[str] = []
    seen_from = False
    for instruction, rest in instructions(text):
        if instruction == "ARG" and not seen_from:
            for declaration in rest.split():
                name, has_default, default = declaration.partition("=")
                if name in build_args:
                    args[name] = build_args[name]
                elif has_default:
                    args[name] = default.strip("\"'")
        elif instruction == "FROM":
            seen_from = True
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
        elif instruction in ("COPY", "ADD"):
            match = FROM_FLAG_RE.search(rest)
            if match and not _is_stage(match.group(1), stages):
                if "$" in match.group(1):
                    return Sources(tuple(images), f"{instruction} --from uses a variable")
                images.append(match.group(1))
            if instruction == "ADD":
                words = [word for word in rest.split() if not word.startswith("--")]
                if any(REMOTE_SOURCE_RE.match(word.strip('[",')) for word in words[:-1]):
                    return Sources(tuple(images), "ADD fetches from the network")
        elif instruction == "RUN":
            for flag in (word for word in rest.split() if word.startswith("--mount=")):
                match = MOUNT_FROM_RE.search(flag[len("--mount=") :])
                if match and not _is_stage(match.group(1), stages):
                    if "$" in match.group(1):
                        return Sources(tuple(images), "RUN --mount from= uses a variable")
                    images.append(match.group(1))
    if not seen_from:
        return Sources((), "no FROM instruction")
    return Sources(tuple(images), None)


def _is_stage(name: str, stages: list[str]) -> bool:
    return name.lower() in stages
