"""Formatting for people and scripts: ages and reproducible times (commands/times.py), podman's
``--format`` templates (commands/gotemplate.py) and ``images --format`` on them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from idpwrap.commands import gotemplate, images, times
from idpwrap.errors import EXIT_USAGE, UsageError

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


# -- times ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=5), "seconds ago"),
        (timedelta(minutes=1), "1 minute ago"),
        (timedelta(minutes=5, seconds=3), "5 minutes ago"),
        (timedelta(hours=2), "2 hours ago"),
        (timedelta(days=1, hours=3), "1 day ago"),
        (timedelta(days=40), "40 days ago"),
    ],
)
def test_age(delta, text):
    created = (NOW - delta).isoformat().replace("+00:00", "Z")
    assert times.since(created, now=NOW) == text


def test_odd_values():
    assert times.since("") == "unknown"
    assert times.since("yesterday") == "yesterday"
    assert times.since("2026-12-03T10:00:00", now=NOW) == "2 hours ago"  # naive means UTC
    # Go's nine fractional digits (buildah's clock)
    assert times.since("2026-12-03T11:00:00.123456789Z", now=NOW) == "59 minutes ago"


def test_a_fixed_time_is_reproducible_with_the_time_it_was_stored():
    stored = (NOW - timedelta(minutes=5)).timestamp()
    assert times.since("1970-01-01T00:00:00Z", stored, NOW) == "reproducible, stored 5 minutes ago"
    assert times.since("1970-01-01T00:00:00Z", None, NOW) == "reproducible (1970-01-01T00:00:00Z)"
    assert "20" not in times.since("1970-01-01T00:00:00Z", stored, NOW)  # never "20790 days"


def test_a_commit_time_reads_as_its_age():
    # SOURCE_DATE_EPOCH or HEAD's commit time: a real moment, the source's age
    assert times.since("2026-11-30T12:00:00Z", 1.0, NOW) == "3 days ago"


def test_inspect_says_what_a_fixed_time_is():
    stored = datetime(2026, 12, 3, 11, 0, tzinfo=UTC).timestamp()
    text = times.described("1970-01-01T00:00:00Z", stored, NOW)
    assert text == (
        "1970-01-01T00:00:00Z (reproducible: a fixed time, not when it was built; stored here"
        " 2026-12-03 11:00:00 UTC, 1 hour ago)"
    )
    assert times.described("2026-12-01T12:00:00Z", stored, NOW) == (
        "2026-12-01T12:00:00Z (2 days ago)"
    )
    assert times.described("") == "unknown"


def test_go_time_is_podmans_created_at():
    assert times.go_time("2026-12-01T08:09:10Z") == "2026-12-01 08:09:10 +0000 UTC"
    assert times.go_time("1970-01-01T00:00:00Z") == "1970-01-01 00:00:00 +0000 UTC"
    assert times.go_time("odd") == "odd"


# -- templates -----------------------------------------------------------------------------------

HEADERS = images.FORMAT_HEADERS
ROW = {
    "Repository": "myapp",
    "Tag": "v1",
    "ID": "0123456789ab",
    "Digest": "sha256:" + "c" * 64,
    "Size": "1.0 MiB",
    "Created": "reproducible, stored 5 minutes ago",
    "CreatedSince": "reproducible, stored 5 minutes ago",
    "CreatedAt": "1970-01-01 00:00:00 +0000 UTC",
    "Platforms": "linux/amd64",
}


def test_fields_and_text_between():
    template = gotemplate.parse("{{.Repository}}:{{ .Tag }} {{.ID}}", HEADERS)
    assert gotemplate.lines(template, [ROW], HEADERS) == ["myapp:v1 0123456789ab"]


def test_backslash_t_typed_in_a_shell_is_a_tab():
    template = gotemplate.parse("{{.Repository}}\\t{{.Size}}", HEADERS)
    assert gotemplate.render(template, ROW) == "myapp\t1.0 MiB"


def test_table_has_podmans_headers_and_aligned_columns():
    template = gotemplate.parse("table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}", HEADERS)
    other = {**ROW, "Repository": "a-much-longer-name", "Tag": "latest"}
    assert gotemplate.lines(template, [ROW, other], HEADERS) == [
        "REPOSITORY          TAG     IMAGE ID",
        "myapp               v1      0123456789ab",
        "a-much-longer-name  latest  0123456789ab",
    ]


def test_json_is_json():
    assert gotemplate.parse("json", HEADERS).json
    assert not gotemplate.parse("{{.ID}}", HEADERS).json


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{{.Names}}", "unknown field .Names: the fields are {{.Repository}}, {{.Tag}}"),
        ("{{.repository}}", "unknown field .repository"),
        ("{{if .Tag}}x{{end}}", "'{{if .Tag}}' is not supported"),
        ("{{.Tag | printf}}", "is not supported"),
        ("{{json .}}", "is not supported"),
        ("{{.Tag", "an unclosed '{{'"),
        ("{{.Tag}}}}", "a stray '}}'"),
    ],
)
def test_anything_else_is_a_usage_error(text, words):
    with pytest.raises(UsageError) as caught:
        gotemplate.parse(text, HEADERS)
    assert words in str(caught.value) and str(caught.value).startswith("--format: ")
    assert caught.value.exit_code == EXIT_USAGE


def test_images_values_as_podman_prints_them():
    row = images.ImageRow(
        "myapp", "v1", "sha256:" + "d" * 64, 1048576, "1970-01-01T00:00:00Z",
        config="sha256:" + "e" * 64, platforms=("linux/amd64",),
    )  # fmt: skip
    values = images.format_values(row, None)
    assert values["ID"] == "e" * 12  # the config's digest, short: podman's image ID
    assert values["Digest"] == "sha256:" + "d" * 64
    assert values["Size"] == "1.0 MiB"
    assert values["Created"] == values["CreatedSince"] == "reproducible (1970-01-01T00:00:00Z)"
    assert values["CreatedAt"] == "1970-01-01 00:00:00 +0000 UTC"
    assert set(values) == set(images.FORMAT_HEADERS)
