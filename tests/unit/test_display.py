"""display.py: throttled plain lines, JSON events, human-readable sizes."""

from __future__ import annotations

import io
import itertools
import json
import re
import time

import pytest

from idpwrap.push import display
from idpwrap.push.display import JsonView, NoView, PlainView, make_view
from idpwrap.push.progress import PushProgress
from idpwrap.units import human_size

LAYER = "sha256:" + "4945e11a273e" + "0" * 52
CONFIG = "sha256:" + "bb486132d6" + "2" * 54
LINE = re.compile(r"^push app:v1 +(\d+)% .+ / .+$")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time, "monotonic", fake)
    return fake


def one_blob(total: int = 1000) -> PushProgress:
    # The config is tiny next to the layer, so the layer's count is the percentage.
    return PushProgress.for_manifest([(LAYER, total)], (CONFIG, 0))


def set_percent(progress: PushProgress, percent: int) -> None:
    progress.blobs[0].done = progress.blobs[0].total * percent // 100


def percents(stream: io.StringIO) -> list[int]:
    lines = stream.getvalue().splitlines()
    for line in lines:
        assert LINE.match(line), line
    return [int(LINE.match(line).group(1)) for line in lines]


# -- PlainView ----------------------------------------------------------------------------


def test_plain_view_throttles_by_time_and_by_bucket(clock):
    out = io.StringIO()
    view = PlainView("app:v1", out)
    progress = one_blob()
    view.start(progress)
    steps = [  # (seconds since start, percent)
        (0.2, 5),
        (0.5, 50),  # new bucket, but too soon
        (1.0, 55),  # a second later: printed
        (1.5, 75),  # too soon
        (2.2, 58),  # cannot happen for real; same bucket anyway
        (2.3, 59),  # same bucket as 55
        (3.4, 61),  # a new bucket, a second later: printed
        (3.5, 99),  # too soon
        (9.0, 99),  # printed
        (12.0, 99),  # same bucket
    ]
    start = clock.now
    for seconds, percent in steps:
        clock.now = start + seconds
        set_percent(progress, percent)
        view.update(progress, [])
    assert percents(out) == [0, 55, 61, 99]


def test_plain_view_sweep_keeps_both_limits(clock):
    out = io.StringIO()
    view = PlainView("app:v1", out)
    progress = one_blob(10_000)
    times = []
    view.start(progress)
    times.append(clock.now)
    for step in range(1, 2000):
        clock.now += 0.05
        set_percent(progress, min(99, step // 20))
        before = out.getvalue().count("\n")
        view.update(progress, [])
        if out.getvalue().count("\n") > before:
            times.append(clock.now)
    printed = percents(out)
    buckets = [percent // 10 for percent in printed]
    assert len(buckets) == len(set(buckets))
    assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(times))
    assert len(printed) <= 11


def test_plain_view_prints_100_once_on_success(clock):
    out = io.StringIO()
    view = PlainView("app:v1", out)
    progress = one_blob()
    view.start(progress)
    clock.now += 5
    view.update(progress, progress.finish())  # 100% is left to close()
    assert percents(out) == [0]
    view.close(progress, succeeded=True)
    view.close(progress, succeeded=True)
    assert percents(out) == [0, 100]


def test_plain_view_prints_no_final_line_on_failure(clock):
    out = io.StringIO()
    view = PlainView("app:v1", out)
    progress = one_blob()
    view.start(progress)
    clock.now += 5
    set_percent(progress, 42)
    view.update(progress, [])
    view.close(progress, succeeded=False)
    assert percents(out) == [0, 42]


def test_plain_view_line_shows_bytes(clock):
    out = io.StringIO()
    view = PlainView("app:v1", out)
    progress = PushProgress.for_manifest([(LAYER, 59 * 1024 * 1024)], (CONFIG, 0))
    view.start(progress)
    assert out.getvalue() == "push app:v1    0% 0 B / 59.0 MiB\n"


# -- JsonView -----------------------------------------------------------------------------


def records_of(stream: io.StringIO) -> list[dict]:
    lines = stream.getvalue().splitlines()
    return [json.loads(line) for line in lines]


def run_capture(capture: dict, view) -> PushProgress:
    manifest = capture["manifest"]
    layers = [(layer["digest"], layer["size"]) for layer in manifest["layers"]]
    config = manifest["config"]
    progress = PushProgress.for_manifest(layers, (config["digest"], config["size"]))
    view.start(progress)
    for _, text in capture["chunks"]:
        view.update(progress, progress.feed(text))
    view.update(progress, progress.finish())
    view.close(progress, True)
    return progress


def test_json_view_one_object_per_line_with_full_digests(fresh_capture):
    out = io.StringIO()
    view = JsonView(out)
    progress = run_capture(fresh_capture, view)
    view.pushed("gitea.example:8443/owner/app:v1", fresh_capture["manifest"]["config"]["digest"])
    records = records_of(out)
    kinds = [record["event"] for record in records]
    assert {"progress", "blob_done", "complete", "pushed"} <= set(kinds)
    assert kinds[0] == "start"
    assert kinds[-2:] == ["complete", "pushed"]
    full = re.compile(r"^sha256:[0-9a-f]{64}$")
    for record in records:
        if "blob" in record:
            assert full.match(record["blob"])
    assert full.match(records[-1]["digest"])
    assert records[-1]["reference"] == "gitea.example:8443/owner/app:v1"
    done = [record["blob"] for record in records if record["event"] == "blob_done"]
    assert sorted(done) == sorted(blob.digest for blob in progress.blobs)
    assert records[-2] == {
        "event": "complete",
        "done": progress.total_bytes,
        "total": progress.total_bytes,
        "percent": 100,
    }


def test_json_view_percent_rises_and_skips_are_marked(again_capture):
    out = io.StringIO()
    run_capture(again_capture, JsonView(out))
    records = records_of(out)
    percents = [record["percent"] for record in records if "percent" in record]
    assert percents == sorted(percents)
    assert all(percent < 100 for percent in percents[:-1])
    skipped = [record["skipped"] for record in records if record["event"] == "blob_done"]
    assert skipped == [True, True, True, True, False]


def test_json_view_no_complete_on_failure():
    out = io.StringIO()
    view = JsonView(out)
    progress = PushProgress.for_manifest([(LAYER, 10)], (CONFIG, 1))
    view.start(progress)
    view.close(progress, False)
    assert [record["event"] for record in records_of(out)] == ["start"]


# -- human_size and make_view ------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (24 * 1024**2, "24.0 MiB"),
        (int(59.1 * 1024**2), "59.1 MiB"),
        (2 * 1024**3, "2.0 GiB"),
        (3 * 1024**4, "3072.0 GiB"),
    ],
)
def test_human_size(count, text):
    assert human_size(count) == text


def test_human_size_never_shows_1024_of_a_unit():
    assert human_size(1024**2 - 1) == "1.0 MiB"


def test_make_view(capsys):
    assert isinstance(make_view("plain", "x"), PlainView)
    assert isinstance(make_view("json", "x"), JsonView)
    assert isinstance(make_view("none", "x"), NoView)
    assert isinstance(make_view("auto", "x"), PlainView)  # captured stderr is not a terminal
    assert display.PLAIN_INTERVAL_SECONDS == 1.0
