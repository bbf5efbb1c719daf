"""Choosing a build's time: flag, SOURCE_DATE_EPOCH, git, fixed epoch; and what it becomes."""

from __future__ import annotations

import pytest

from idpwrap.build import timestamps
from idpwrap.errors import UsageError
from idpwrap.tools.buildah import BuildOptions, bud_argv


@pytest.fixture
def no_git(monkeypatch):
    monkeypatch.setattr(timestamps, "git_facts", lambda context: None)


@pytest.fixture
def with_git(monkeypatch):
    facts = (1700000000, "a" * 40, "https://git.example.test/o/r.git")
    monkeypatch.setattr(timestamps, "git_facts", lambda context: facts)


def test_fixed_epoch_without_git_or_environment(no_git):
    chosen = timestamps.choose("/ctx", None, {})
    assert chosen.seconds == 0 and chosen.revision is None
    assert chosen.annotations() == ["org.opencontainers.image.created=1970-01-01T00:00:00Z"]


def test_git_then_environment_then_flag(with_git):
    assert timestamps.choose("/ctx", None, {}).seconds == 1700000000
    assert timestamps.choose("/ctx", None, {"SOURCE_DATE_EPOCH": "5"}).seconds == 5
    assert timestamps.choose("/ctx", 7, {"SOURCE_DATE_EPOCH": "5"}).seconds == 7
    now = timestamps.choose("/ctx", "now", {"SOURCE_DATE_EPOCH": "5"})
    assert now.seconds is None
    assert f"org.opencontainers.image.revision={'a' * 40}" in now.annotations()
    assert "org.opencontainers.image.source=https://git.example.test/o/r.git" in now.annotations()


def test_a_bad_source_date_epoch_is_a_usage_error(no_git):
    with pytest.raises(UsageError, match="SOURCE_DATE_EPOCH='tomorrow'"):
        timestamps.choose("/ctx", None, {"SOURCE_DATE_EPOCH": "tomorrow"})


@pytest.mark.parametrize(
    ("text", "value"), [("now", "now"), ("NOW", "now"), ("0", 0), (" 1700000000 ", 1700000000)]
)
def test_parse_setting(text, value):
    assert timestamps.parse_setting(text, "--timestamp") == value


@pytest.mark.parametrize("text", ["-1", "yesterday", "1.5", ""])
def test_parse_setting_refuses(text):
    with pytest.raises(UsageError, match="--timestamp"):
        timestamps.parse_setting(text, "--timestamp")


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://user:token@host.test:3000/o/r.git", "https://host.test:3000/o/r.git"),
        ("https://host.test/o/r.git", "https://host.test/o/r.git"),
        ("git@host.test:o/r.git", "host.test:o/r.git"),
        ("ssh://git@host.test/o/r", "ssh://host.test/o/r"),
        ("", None),
    ],
)
def test_remote_urls_lose_their_credentials(url, public):
    assert timestamps.public_url(url) == public


def test_the_real_git_outside_a_work_tree(tmp_path):
    assert timestamps.git_facts(str(tmp_path)) is None


def test_bud_argv_carries_the_time_and_annotations(tmp_path):
    options = BuildOptions(
        context=tmp_path, containerfile=tmp_path / "Containerfile", timestamp=0,
        annotations=("org.opencontainers.image.created=1970-01-01T00:00:00Z",),
    )  # fmt: skip
    argv = bud_argv(options, "oci:/l:build")
    assert argv[argv.index("--timestamp") + 1] == "0"
    assert argv[argv.index("--annotation") + 1].startswith("org.opencontainers.image.created=")
    assert "--timestamp" not in bud_argv(
        BuildOptions(context=tmp_path, containerfile=tmp_path / "Containerfile"), "oci:/l:build"
    )
