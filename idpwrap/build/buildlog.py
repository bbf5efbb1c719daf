"""buildah bud's output: what a person sees of it, and one line that says why a build failed.

buildah prints ``STEP n/m: TEXT`` (``[k/s] STEP n/m: TEXT`` in a multi-stage build) before
each instruction and ends a failure with ``Error: building at STEP "TEXT": REASON``. The
reason is in Go's words, at times with the Go struct of the step appended
(``&imagebuilder.Step{...}``) and a logrus line before it (``time="..." level=error
msg="+(UNHANDLED LOGLEVEL) ..."``). ``failure_summary`` turns that into
``Containerfile:LINE: what went wrong``; ``OutputFilter`` replaces idpwrap's internal names
(the pinned base layouts, the private build layout) with the names the user wrote.

The texts were taken from buildah 1.28 (Debian 12) and 1.39 (Debian 13); tests/data holds them.
"""

from __future__ import annotations

import os
import re
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence

STEP_RE = re.compile(r"^(?:\[(\d+)/\d+\] )?STEP (\d+)/(\d+): (.*)$")
ERROR_RE = re.compile(r'^Error: (?:building at STEP "(.*?)": )?(.*)$')
GO_STRUCT_RE = re.compile(r"\s*&[a-z]+\.[A-Z]\w*\{.*$")
LOGRUS_RE = re.compile(r'^time="[^"]*" level=(\w+) msg="(.*)"\s*$')
UNKNOWN_INSTRUCTION_RE = re.compile(r'[Uu]nknown instruction:? "?([A-Za-z0-9_-]+)"?')
EXIT_STATUS_RE = re.compile(r"(?:^|: )exit status (\d+)$")
# 1.28 and 1.39 alike: a missing source is `copier: stat: "/nosuch.txt": no such file or
# directory`, one .dockerignore excludes `no items matching glob "/ctx/x" copied (1 filtered
# out using /ctx/.dockerignore)`
MISSING_SOURCE_RE = re.compile(
    r'copier: stat: "/?([^"]+)": no such file or directory'
    r'|no items matching glob "([^"]+)" copied'
)
INTERNAL_BASE_RE = re.compile(r"(?:oci|dir):(idpwrap-base-[0-9a-f]+)(?::image)?")
# An oci: destination's name, or none: a build into buildah's storage is unnamed there.
COMMIT_RE = re.compile(r"^COMMIT(?: oci:\S*)?$")
BARE_ARROW = "--> "
INSTRUCTIONS = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
)  # fmt: skip
SHOWN_TEXT = 60


class Step(namedtuple("Step", "stage number text total", defaults=(0,))):
    """A ``STEP`` line: the stage (1 in a single-stage build), the step within it, its text,
    and the stage's number of steps (0: unknown)."""

    __slots__ = ()
    stage: int
    number: int
    text: str
    total: int


def parse_step(line: str) -> Step | None:
    match = STEP_RE.match(line.strip())
    if match is None:
        return None
    return Step(int(match.group(1) or 1), int(match.group(2)), match.group(4), int(match.group(3)))


def clean(text: str) -> str:
    """buildah's words without a Go struct, a logrus frame or escaped quotes."""
    match = LOGRUS_RE.match(text.strip())
    if match:
        text = match.group(2).replace('\\"', '"')
    text = GO_STRUCT_RE.sub("", text)
    return text.replace("+(UNHANDLED LOGLEVEL)", "").strip()


def line_of(containerfile_text: str, step: Step) -> tuple[int, str] | None:
    """(line number, instruction text) of ``step``: its stage's n-th instruction, counting the
    stage's FROM as 1, when that has the step's keyword; else the first with the step's text."""
    from idpwrap.build.containerfile import instructions

    found = instructions(containerfile_text)
    stages: list[list[tuple[int, str]]] = []
    for instruction in found:
        number = containerfile_text.count("\n", 0, instruction.start) + 1
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((number, instruction.text))
    keyword = step.text.split(None, 1)[0].upper() if step.text.strip() else ""
    wanted = " ".join(step.text.split())
    placed = None
    if 0 < step.stage <= len(stages) and 0 < step.number <= len(stages[step.stage - 1]):
        placed = stages[step.stage - 1][step.number - 1]
        if " ".join(placed[1].split()) == wanted:
            return placed
    for instruction in found:
        if " ".join(instruction.text.split()) == wanted:
            return containerfile_text.count("\n", 0, instruction.start) + 1, instruction.text
    # buildah spelled it otherwise: the step's place, if the stage has as many steps (a base's
    # ONBUILD triggers add steps that are in no line of this file)
    if (
        placed is not None
        and step.total in (0, len(stages[step.stage - 1]))
        and placed[1].split(None, 1)[0].upper() == keyword
    ):
        return placed
    return None


def shown(text: str) -> str:
    return text if len(text) <= SHOWN_TEXT else text[: SHOWN_TEXT - 3] + "..."


def reason(step_text: str, error: str, names: Mapping[str, str]) -> str:
    """Why the step failed, as a person would say it."""
    keyword = step_text.split(None, 1)[0].upper() if step_text.strip() else ""
    unknown = UNKNOWN_INSTRUCTION_RE.search(error)
    if unknown:
        import difflib  # a failure's path only: every build would pay for its import

        word = unknown.group(1).upper()
        close = difflib.get_close_matches(word, INSTRUCTIONS, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"unknown instruction {word}{hint}"
    status = EXIT_STATUS_RE.search(error)
    if keyword == "RUN" and status:
        return f"{shown(step_text)} exited with status {status.group(1)}"
    missing = MISSING_SOURCE_RE.search(error)
    if keyword in ("COPY", "ADD") and missing:
        source = missing.group(1) or os.path.basename(missing.group(2))
        if missing.group(2) and "filtered out" in error:
            return f"{keyword} source {source} is excluded by .dockerignore"
        return f"{keyword} source {source} is not in the context (or is ignored by .dockerignore)"
    if keyword == "FROM":
        hint = pull_hint(error)
        if hint:
            return f"{shown(step_text)}: {hide_internal_names(error, names)}; {hint}"
    return f"{shown(step_text)}: {hide_internal_names(error, names)}"


# containers/image's words for a registry's 401 or 403 (never a local "permission denied").
PULL_REFUSED_WORDS = (
    "authentication required", "unauthorized", "access to the resource is denied",
    "insufficient_scope",
)  # fmt: skip
PULL_UNTRUSTED_WORDS = ("x509:", "certificate signed by unknown authority", "tls: ")


def pull_hint(error: str) -> str | None:
    """What to do when a registry refused to give a FROM image, or its TLS was not trusted."""
    lowered = error.lower()
    if any(words in lowered for words in PULL_REFUSED_WORDS):
        return (
            "give credentials for that registry as for a push (GITEA_USERNAME and GITEA_TOKEN,"
            " REGISTRY_USERNAME and REGISTRY_PASSWORD, --authfile, or idpwrap login HOST)"
        )
    if any(words in lowered for words in PULL_UNTRUSTED_WORDS):
        return "trust that registry as for a push: --ca-file PEM, --cert-dir DIR or --insecure"
    return None


def has_reason(output_lines: Sequence[str]) -> bool:
    """Whether buildah's error is one a Containerfile explains (a RUN's exit status, a missing
    COPY source, an unknown instruction), not a failure of the machine under it."""
    errors = [clean(match.group(2)) for line in output_lines if (match := ERROR_RE.match(line))]
    patterns = (EXIT_STATUS_RE, MISSING_SOURCE_RE, UNKNOWN_INSTRUCTION_RE)
    return any(pattern.search(error) for error in errors for pattern in patterns)


def failure_summary(
    output_lines: Sequence[str],
    exit_code: int,
    containerfile: str,
    containerfile_text: str,
    names: Mapping[str, str] | None = None,
) -> str:
    """One line: ``FILE:LINE: why`` when buildah says which step failed, else its error."""
    names = names or {}
    step: Step | None = None
    error: str | None = None
    for raw in output_lines:
        line = raw.strip()
        parsed = parse_step(line)
        if parsed is not None:
            step, error = parsed, None
            continue
        match = ERROR_RE.match(line)
        if match:
            error = clean(match.group(2))
            if step is None and match.group(1):
                step = Step(0, 0, match.group(1))
    if error is None:
        last = [clean(line) for line in output_lines if clean(line)]
        error = last[-1] if last else f"buildah exited with status {exit_code}"
    if step is None:
        error = hide_internal_names(error, names)
        return f"buildah bud failed (exit code {exit_code}): {error}"
    step_text = hide_internal_names(step.text, names)
    where = line_of(containerfile_text, step)
    if where is None:
        return f"{containerfile}: STEP {step_text!r}: {reason(step_text, error, names)}"
    number, text = where
    return f"{containerfile}:{number}: {reason(text, error, names)}"


def hide_internal_names(text: str, names: Mapping[str, str]) -> str:
    """``oci:idpwrap-base-<digest>:image`` -> the base the Containerfile names."""
    return INTERNAL_BASE_RE.sub(lambda match: names.get(match.group(1), match.group(0)), text)


def log_path(environ: Mapping[str, str]) -> str:
    """Where the output of the last failed build is kept: one file per user, like the
    build cache (``$XDG_STATE_HOME/idpwrap``, else ``~/.local/state/idpwrap``)."""
    state = environ.get("XDG_STATE_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(state, "idpwrap", "last-failed-build.log")


def keep(lines: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """Write ``lines`` to the failed build's log (private: build output can show build
    arguments); its path, or None when it cannot be written."""
    path = log_path(environ)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.writelines(line + "\n" for line in lines)
    except OSError:
        return None
    return path


class OutputFilter:
    """buildah's output as it streams, in the user's names: the pinned bases as written, the
    commit to the private layout as the tags, and no bare ``-->`` (the image ID buildah has
    none for when it writes to a layout) at the end."""

    def __init__(self, write: Callable[[str], None], names: Mapping[str, str], tags: str) -> None:
        self.write = write
        self.names = names
        self.tags = tags
        self.partial = ""
        self.skip_blank = False

    def __call__(self, text: str) -> None:
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        shown_lines = [line for line in (self.line(line) for line in lines) if line is not None]
        if shown_lines:
            self.write("".join(line + "\n" for line in shown_lines))

    def flush(self) -> None:
        if self.partial:
            line = self.line(self.partial)
            self.partial = ""
            if line is not None:
                self.write(line + "\n")

    def line(self, line: str) -> str | None:
        bare = line.rstrip("\r")
        if bare == BARE_ARROW or bare == BARE_ARROW.strip():
            self.skip_blank = True
            return None
        if self.skip_blank and not bare.strip():
            self.skip_blank = False
            return None
        self.skip_blank = False
        if "UNHANDLED LOGLEVEL" in bare:
            return None  # the same Go struct as the Error line that follows
        if bare.startswith("Error: "):
            return hide_internal_names(GO_STRUCT_RE.sub("", bare), self.names)
        if COMMIT_RE.match(bare):
            return f"COMMIT {self.tags}"
        return hide_internal_names(line, self.names)
