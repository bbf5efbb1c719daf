"""progress.py: skopeo's progress bars, as captured from a real pty, into byte counts."""

from __future__ import annotations

import pytest

from idpwrap.push.progress import BlobState, PushProgress, parse_size

from .conftest import load_capture

MIB = 1024 * 1024
LAYER = "sha256:4945e11a273e" + "0" * 52
OTHER = "sha256:77aa00bb11cc" + "1" * 52
CONFIG = "sha256:bb486132d6" + "2" * 54


def for_capture(capture: dict) -> PushProgress:
    manifest = capture["manifest"]
    layers = [(layer["digest"], layer["size"]) for layer in manifest["layers"]]
    config = manifest["config"]
    return PushProgress.for_manifest(layers, (config["digest"], config["size"]))


def manifest_total(capture: dict) -> int:
    manifest = capture["manifest"]
    return manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])


def state_of(progress: PushProgress) -> list[tuple[str, int, BlobState]]:
    return [(blob.digest, blob.done, blob.state) for blob in progress.blobs]


def stream(capture: dict) -> str:
    return "".join(text for _, text in capture["chunks"])


def synthetic(total: int = 30 * MIB) -> PushProgress:
    return PushProgress.for_manifest([(LAYER, total), (OTHER, 2 * MIB)], (CONFIG, 1304))


# -- the real captures --------------------------------------------------------------------


def test_percent_never_decreases_and_stays_below_100(capture):
    progress = for_capture(capture)
    seen = [progress.percent]
    for _, text in capture["chunks"]:
        progress.feed(text)
        seen.append(progress.percent)
        assert progress.percent < 100
    assert seen == sorted(seen)
    progress.finish()
    assert progress.percent == 100


def test_fresh_push_every_blob_ends_done(fresh_capture):
    progress = for_capture(fresh_capture)
    for _, text in fresh_capture["chunks"]:
        progress.feed(text)
    progress.flush()
    assert [blob.state for blob in progress.blobs] == [BlobState.DONE] * 5
    assert all(blob.done == blob.total for blob in progress.blobs)
    assert progress.done_bytes == progress.total_bytes
    assert progress.manifest_seen
    assert progress.percent == 99  # everything copied, but the manifest is not confirmed yet


def test_fresh_push_reports_every_blob_done_exactly_once(fresh_capture):
    progress = for_capture(fresh_capture)
    events = []
    for _, text in fresh_capture["chunks"]:
        events += progress.feed(text)
    events += progress.finish()
    done = [event.blob.digest for event in events if event.kind == "blob_done"]
    assert sorted(done) == sorted(blob.digest for blob in progress.blobs)
    assert [event.kind for event in events][-1] == "manifest"


def test_second_push_skips_layers_and_uploads_the_config(again_capture):
    progress = for_capture(again_capture)
    for _, text in again_capture["chunks"]:
        progress.feed(text)
    layers, config = progress.blobs[:-1], progress.blobs[-1]
    assert [blob.state for blob in layers] == [BlobState.SKIPPED] * 4
    assert config.kind == "config"
    assert config.state is BlobState.DONE
    assert progress.done_bytes == progress.total_bytes
    assert progress.percent == 99


def test_total_bytes_is_the_sum_of_the_manifest_sizes(capture):
    progress = for_capture(capture)
    assert progress.total_bytes == manifest_total(capture)
    for _, text in capture["chunks"]:
        progress.feed(text)
    progress.finish()
    assert progress.total_bytes == manifest_total(capture)
    assert progress.done_bytes == manifest_total(capture)


def test_one_character_at_a_time_gives_the_same_state(capture):
    whole = for_capture(capture)
    whole.feed(stream(capture))
    by_char = for_capture(capture)
    for character in stream(capture):
        by_char.feed(character)
    assert state_of(by_char) == state_of(whole)
    assert by_char.manifest_seen == whole.manifest_seen
    assert by_char.percent == whole.percent


def test_pty_line_endings_give_the_same_state(fresh_capture):
    # A pty turns "\n" into "\r\n"; chunked one character at a time the two halves arrive apart.
    plain = for_capture(fresh_capture)
    plain.feed(stream(fresh_capture))
    crlf = for_capture(fresh_capture)
    for character in stream(fresh_capture).replace("\n", "\r\n"):
        crlf.feed(character)
    assert state_of(crlf) == state_of(plain)


def test_the_fresh_bars_count_the_bytes_in_between():
    fresh_capture = load_capture("fresh", "1.9.3")
    progress = for_capture(fresh_capture)
    chunks = fresh_capture["chunks"]
    big = progress.blobs[1]  # d9154674ec78, 31460591 bytes, drawn at 19.0MiB / 30.0MiB
    for _, text in chunks[:6]:
        progress.feed(text)
    assert big.state is BlobState.COPYING
    assert big.done == 19 * MIB
    assert 0 < progress.percent < 100


# -- synthetic streams --------------------------------------------------------------------


def test_a_retry_restarting_the_bar_never_lowers_done():
    progress = synthetic()
    blob = progress.blobs[0]
    progress.feed("Copying blob 4945e11a273e [=====>-----] 20.0MiB / 30.0MiB\n")
    assert blob.done == 20 * MIB
    percent = progress.percent
    assert progress.feed("Copying blob 4945e11a273e [>---------] 1.0MiB / 30.0MiB\n") == []
    assert blob.done == 20 * MIB
    assert progress.percent == percent
    progress.feed("Copying blob 4945e11a273e [======>---] 25.0MiB / 30.0MiB\n")
    assert blob.done == 25 * MIB
    progress.feed("Copying blob 4945e11a273e done\n")
    assert blob.done == blob.total
    assert blob.state is BlobState.DONE


def test_lines_cut_by_carriage_return_alone():
    progress = synthetic()
    events = progress.feed(
        "Copying blob 4945e11a273e [=>--] 5.0MiB / 30.0MiB\r"
        "Copying blob 4945e11a273e [==>-] 10.0MiB / 30.0MiB\r"
    )
    assert [event.done for event in events] == [5 * MIB, 10 * MIB]
    assert progress.blobs[0].done == 10 * MIB


def test_ansi_escapes_are_ignored():
    progress = synthetic()
    progress.feed(
        "\x1b[1A\x1b[J\x1b[?25lCopying blob 4945e11a273e [==>-] 10.0MiB / 30.0MiB\x1b[0m\r\n"
        "\x1b[2A\x1b[JCopying blob 77aa00bb11cc done  \r\n"
        "\x1b(BCopying config bb486132d6 skipped: already exists\r\n"
    )
    layer, other, config = progress.blobs
    assert layer.done == 10 * MIB
    assert other.state is BlobState.DONE
    assert config.state is BlobState.SKIPPED


def test_unknown_blob_ids_are_ignored():
    progress = synthetic()
    before = state_of(progress)
    events = progress.feed(
        "Copying blob 0123456789ab [==>-] 10.0MiB / 30.0MiB\n"
        "Copying blob 0123456789ab done\n"
        "Copying config 0123456789 done\n"
        "Getting image source signatures\n"
        "Storing signatures\n"
    )
    assert events == []
    assert state_of(progress) == before


def test_a_bar_at_the_total_does_not_complete_the_blob_before_done():
    progress = PushProgress.for_manifest([(LAYER, MIB)], (CONFIG, 1331))
    layer, config = progress.blobs
    progress.feed("Copying blob 4945e11a273e [=========] 1.0MiB / 1.0MiB\n")
    progress.feed("Copying config bb486132d6 [=========] 1.3KiB / 1.3KiB\n")
    assert layer.done == layer.total - 1
    assert config.done == config.total - 1
    assert not layer.finished
    assert not config.finished
    assert layer.state is BlobState.COPYING
    progress.feed("Copying blob 4945e11a273e done\n")
    assert layer.finished
    assert layer.done == layer.total


def test_a_bar_above_the_total_is_capped():
    # skopeo rounds to 0.1 of a unit: 2.9MiB is more than a 3002341-byte blob.
    progress = PushProgress.for_manifest([(LAYER, 3002341)], (CONFIG, 1304))
    progress.feed("Copying blob 4945e11a273e [=====] 2.9MiB / 2.9MiB\n")
    assert progress.blobs[0].done == 3002340


def test_a_bar_without_figures_marks_the_blob_copying_once():
    progress = synthetic()
    first = progress.feed("Copying blob 4945e11a273e .        \n")
    assert [event.kind for event in first] == ["progress"]
    assert progress.blobs[0].state is BlobState.COPYING
    assert progress.feed("Copying blob 4945e11a273e …\n") == []


def test_lines_after_a_blob_is_finished_change_nothing():
    progress = synthetic()
    progress.feed("Copying blob 4945e11a273e skipped: already exists\n")
    blob = progress.blobs[0]
    assert progress.feed("Copying blob 4945e11a273e [=>--] 1.0MiB / 30.0MiB\n") == []
    assert progress.feed("Copying blob 4945e11a273e done\n") == []
    assert blob.state is BlobState.SKIPPED
    assert blob.done == blob.total


def test_config_ids_match_by_prefix_and_kind():
    progress = synthetic()
    events = progress.feed("Copying config bb486132d6 done\n")
    assert [event.blob.kind for event in events] == ["config"]


def test_an_unterminated_last_line_is_parsed_by_flush():
    progress = synthetic()
    assert progress.feed("Copying blob 77aa00bb11cc done") == []
    assert not progress.blobs[1].finished
    progress.flush()
    assert progress.blobs[1].state is BlobState.DONE


def test_manifest_line_alone_does_not_reach_100():
    progress = synthetic()
    for blob in ("4945e11a273e", "77aa00bb11cc"):
        progress.feed(f"Copying blob {blob} done\n")
    progress.feed("Copying config bb486132d6 done\nWriting manifest to image destination\n")
    assert progress.manifest_seen
    assert progress.percent == 99
    events = progress.finish()
    assert progress.completed
    assert progress.percent == 100
    assert [event.kind for event in events] == ["manifest"]


def test_finish_completes_blobs_skopeo_never_mentioned():
    progress = synthetic()
    events = progress.finish()
    assert [event.kind for event in events] == ["blob_done"] * 3 + ["manifest"]
    assert all(blob.state is BlobState.DONE for blob in progress.blobs)
    assert progress.percent == 100


@pytest.mark.parametrize(
    ("number", "unit", "expected"),
    [
        ("166.0", "b", 166),
        ("1.3", "KiB", 1331),
        ("24.0", "MiB", 24 * MIB),
        ("1.5", "GiB", 3 * 1024**3 // 2),
        ("2", "MB", 2_000_000),
    ],
)
def test_parse_size(number, unit, expected):
    assert parse_size(number, unit) == expected


def test_each_captured_skopeo_shows_a_blob_part_way(fresh_capture):
    # 1.9.3: `[==>---] 24.0MiB / 59.1MiB`; 1.18.0 adds the rate: `... / 6.0MiB | 4.8 MiB/s`.
    progress = for_capture(fresh_capture)
    part_way = set()
    for _, text in fresh_capture["chunks"]:
        progress.feed(text)
        part_way |= {b.digest for b in progress.blobs if 0 < b.done < b.total}
    assert part_way, fresh_capture["description"]
