"""containerfile.py: the images a build reads, and when that cannot be vouched for."""

from __future__ import annotations

import pytest

from idpwrap.build import bases, buildlog
from idpwrap.build.containerfile import (
    escape_character,
    global_args,
    instructions,
    sources,
    substitute,
)
from idpwrap.refs import LocalRef
from idpwrap.store.api import StoredImage

DIGEST = "sha256:" + "a" * 64
STORED = StoredImage(
    LocalRef("base", "v1"),
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST, "size": 1},
)


def keywords_and_arguments(text: str) -> list[tuple[str, str]]:
    return [(item.keyword, item.arguments) for item in instructions(text)]


def test_instructions_join_continuations_and_drop_comments():
    text = "# c\nFROM scratch\nRUN a \\\n  # inside\n  b\n\ncopy x /y\n"
    assert keywords_and_arguments(text) == [("FROM", "scratch"), ("RUN", "a b"), ("COPY", "x /y")]


# With ``# escape=``` a backtick continues a line and a backslash is an ordinary character
# (Windows paths). containerfile.py used to ignore the directive: it took the backtick line as a
# whole instruction, its next line for an instruction ``DONE``, and joined ``WORKDIR C:\`` with
# the RUN after it; bases.py (and so buildlog.py) read it right.
ESCAPED = "# escape=`\nFROM scratch\nRUN echo `\n  done\nWORKDIR C:\\\nRUN c\n"


def test_the_escape_directive_changes_the_continuation_character():
    assert keywords_and_arguments(ESCAPED) == [
        ("FROM", "scratch"),
        ("RUN", "echo done"),
        ("WORKDIR", "C:\\"),
        ("RUN", "c"),
    ]
    assert escape_character(ESCAPED) == "`"


def test_every_reader_reads_an_escaped_file_alike():
    text = ESCAPED.replace("FROM scratch", "FROM base:v1")
    assert buildlog.line_of(text, buildlog.Step(1, 2, "RUN echo done")) == (3, "RUN echo done")
    assert buildlog.line_of(text, buildlog.Step(1, 4, "RUN c")) == (6, "RUN c")
    assert bases.rewrite(text, [STORED], ())[1][0].written == "base:v1"
    # the fingerprint still does not vouch for it: the escape character also quotes ``$``
    assert "escape" in sources(text, {}).unknown


def test_directives_end_at_the_first_comment():
    # a comment ends the parser directives: this ``# escape=`` is a comment, as buildah reads it
    text = "# a comment\n# escape=`\nFROM scratch\nRUN a \\\n  b\n"
    assert escape_character(text) == "\\"
    assert keywords_and_arguments(text) == [("FROM", "scratch"), ("RUN", "a b")]
    assert sources(text, {}) == (("scratch",), None)


def test_arg_values_are_read_as_a_shell_reads_them():
    text = 'ARG A="x y" B\nFROM scratch\nARG C=1\n'
    assert global_args(instructions(text), {"B": "b"}) == {"A": "x y", "B": "b"}
    assert global_args(instructions(text), {}) == {"A": "x y", "B": None}


def test_substitute():
    assert substitute("${A}:$B", {"A": "x", "B": "y"}) == "x:y"
    assert substitute("$A", {}) is None
    assert substitute("$A", {"A": None}) is None
    assert substitute("${A:-d}", {"A": "x"}) is None


@pytest.mark.parametrize(
    ("text", "args", "images"),
    [
        ("FROM scratch\nCOPY a /a\n", {}, ("scratch",)),
        ("FROM base:v1 AS b\nFROM b\nCOPY --from=b /x /x\n", {}, ("base:v1",)),
        ("FROM scratch AS one\nFROM scratch\nCOPY --from=0 /x /x\n", {}, ("scratch", "scratch")),
        ("ARG BASE=scratch\nFROM ${BASE}\n", {}, ("scratch",)),
        ("ARG BASE=scratch\nFROM $BASE\n", {"BASE": "base:v2"}, ("base:v2",)),
        ("FROM --platform=linux/amd64 scratch\n", {}, ("scratch",)),
        ("FROM scratch\nCOPY --from=tools:v1 /t /t\n", {}, ("scratch", "tools:v1")),
        (
            "FROM scratch\nRUN --mount=type=bind,from=cache:v1,target=/c true\n",
            {},
            ("scratch", "cache:v1"),
        ),
        (f"FROM app@{DIGEST}\n", {}, (f"app@{DIGEST}",)),
        ("FROM scratch\nADD local.tar /x\n", {}, ("scratch",)),
    ],
)
def test_images(text, args, images):
    found = sources(text, args)
    assert found.unknown is None
    assert found.images == images


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("FROM $NOPE\n", "unresolved variable"),
        ("FROM scratch\nADD https://example.com/x.tar /x\n", "network"),
        ("FROM scratch\nADD git@github.com:o/r.git /r\n", "network"),
        ('FROM scratch\nADD ["http://x/y", "/y"]\n', "network"),
        ("# escape=`\nFROM scratch\n", "escape"),
        ("COPY a /a\n", "no FROM"),
        ("FROM scratch\nCOPY --from=$X /a /a\n", "variable"),
    ],
)
def test_unknown(text, reason):
    assert reason in sources(text, {}).unknown


def test_arg_after_from_does_not_change_bases():
    found = sources("FROM scratch\nARG BASE=x\nFROM scratch\n", {"BASE": "y"})
    assert found.images == ("scratch", "scratch")
