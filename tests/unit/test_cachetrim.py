"""cache trim's plan (build/cachetrim.py) and the marks it reads (build/cachemarks.py), with
"now" passed in: no clock, no registry."""

from __future__ import annotations

import pytest

from idpwrap.build import cachemarks
from idpwrap.build.cachetrim import BUILD, LAYER_STEP, MARK, OTHER, Tag, kind_of, plan
from idpwrap.commands.cache import parse_age
from idpwrap.errors import UsageError

DAY = 86400.0
NOW = 1_800_000_000.0
B, R, A1, A2 = "sha256:b", "sha256:r", "sha256:a1", "sha256:a2"


def fp(n: int) -> str:
    return f"{n:064x}"


def build(n: int, age_days: float | None, layers: tuple[str, ...], digest: str = "") -> Tag:
    time = None if age_days is None else NOW - age_days * DAY
    return Tag(f"idpwrap-build-{fp(n)}", BUILD, digest or f"sha256:e{n}", time, (layers,))


def mark(n: int, age_days: float) -> Tag:
    return Tag(f"idpwrap-used-{fp(n)}", MARK, f"sha256:m{n}", NOW - age_days * DAY)


def step(name: str, layers: tuple[str, ...], digest: str = "") -> Tag:
    return Tag(name * 64, LAYER_STEP, digest or f"sha256:s{name}", None, (layers,))


def decided(tags: list[Tag], older: float = 7, keep: int = 0) -> dict[str, tuple[bool, str]]:
    return {d.tag: (d.remove, d.reason) for d in plan(tags, NOW, older * DAY, keep)}


def test_kinds():
    assert kind_of(f"idpwrap-build-{fp(1)}") == BUILD
    assert kind_of(f"idpwrap-used-{fp(1)}") == MARK
    assert kind_of("a" * 64) == LAYER_STEP
    assert kind_of("v1.0.0") == kind_of("A" * 64) == kind_of("a" * 63) == OTHER


def test_an_old_build_goes_with_its_mark_and_the_steps_only_it_holds():
    tags = [
        build(1, 10, (B, R, A1)), mark(1, 10), build(2, 1, (B, R, A2)), mark(2, 1),
        step("1", (B,)), step("2", (B, R)), step("3", (B, R, A1)), step("4", (B, R, A2)),
        Tag("v1", OTHER, "sha256:v1"),
    ]  # fmt: skip
    result = decided(tags)
    assert result[f"idpwrap-build-{fp(1)}"] == (True, "used 10d ago")
    assert result[f"idpwrap-used-{fp(1)}"][0] is True
    assert result[f"idpwrap-build-{fp(2)}"] == (False, "used 1d ago")
    assert not result["1" * 64][0] and not result["2" * 64][0] and not result["4" * 64][0]
    assert result["3" * 64] == (True, "a step of removed builds only (1)")
    assert result["v1"] == (False, "not a build cache tag")


def test_keep_keeps_the_newest_whatever_their_age():
    tags = [build(1, 30, (A1,)), mark(1, 30), build(2, 20, (A2,)), mark(2, 20)]
    result = decided(tags, keep=1)
    assert result[f"idpwrap-build-{fp(2)}"] == (False, "used 20d ago, one of the newest 1")
    assert result[f"idpwrap-build-{fp(1)}"][0] is True
    assert not any(remove for remove, _ in decided(tags, keep=2).values())


def test_what_has_no_age_stays_and_says_so():
    tags = [build(1, None, (B,)), step("5", (R,))]
    result = decided(tags, older=0)
    assert result[f"idpwrap-build-{fp(1)}"] == (
        False, "no idpwrap-used mark: its age is unknown",
    )  # fmt: skip
    assert result["5" * 64] == (
        False, "no build entry holds this step's layers: its age is unknown",
    )  # fmt: skip


def test_a_manifest_another_staying_tag_names_stays():
    tags = [
        build(1, 10, (B, A1), digest="sha256:same"), mark(1, 10),
        Tag("release", OTHER, "sha256:same"),
    ]  # fmt: skip
    result = decided(tags)
    assert result[f"idpwrap-build-{fp(1)}"] == (False, "its manifest is also release, which stays")
    # the last step's cache image may be the very manifest of the entry: both go together
    same = [build(1, 10, (B, A1), digest="sha256:same"), mark(1, 10),
            step("6", (B, A1), digest="sha256:same")]  # fmt: skip
    assert all(remove for remove, _ in decided(same).values())


def test_a_mark_whose_build_is_gone_goes_when_old():
    assert decided([mark(3, 8)])[f"idpwrap-used-{fp(3)}"][0] is True
    assert decided([mark(3, 6)])[f"idpwrap-used-{fp(3)}"][0] is False


def test_the_mark_round_trip():
    body = cachemarks.mark_manifest(fp(1), "sha256:" + "c" * 64, "x", 10, NOW)
    found = cachemarks.read_mark(body)
    assert found == cachemarks.Mark(NOW, "sha256:" + "c" * 64)
    assert cachemarks.read_mark(b'{"schemaVersion": 2}') is None
    assert cachemarks.read_mark(b"not json") is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 7 * DAY), ("36h", 36 * 3600.0), ("1d12h", 1.5 * DAY), ("90m", 5400.0)],
)
def test_ages(text, seconds):
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "7w", "d", "-1d", "1.5d"])
def test_bad_ages(text):
    with pytest.raises(UsageError, match="expected an age"):
        parse_age(text)
