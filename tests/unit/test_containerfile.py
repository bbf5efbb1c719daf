"""containerfile.py: the images a build reads, and when that cannot be vouched for."""

from __future__ import annotations

import pytest

from idpwrap.build.containerfile import instructions, sources, substitute

DIGEST = "sha256:" + "a" * 64


def test_instructions_join_continuations_and_drop_comments():
    text = "# c\nFROM scratch\nRUN a \\\n  # inside\n  b\n\ncopy x /y\n"
    assert instructions(text) == [("FROM", "scratch"), ("RUN", "a  b"), ("COPY", "x /y")]


def test_substitute():
    assert substitute("${A}:$B", {"A": "x", "B": "y"}) == "x:y"
    assert substitute("$A", {}) is None
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
