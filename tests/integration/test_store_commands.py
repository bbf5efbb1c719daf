"""The store through the CLI: images, rmi with shared layers, re-builds, concurrent builds."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from testing.cli import Cli
from testing.images import (
    MiB,
    blob_path,
    local_image,
    make_context,
    read_index,
    store_digests,
    tagged,
)
from testing.processes import StreamWatcher
from testing.storecheck import check_valid

pytestmark = pytest.mark.integration

UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "kB": 1000, "KB": 1000}
UNITS |= {"MB": 1000**2, "GB": 1000**3}
SIZE = re.compile(r"(\d+(?:\.\d+)?)\s?(B|KiB|MiB|GiB|kB|KB|MB|GB)\b")
STAMPED_CONTAINERFILE = """\
FROM scratch
COPY busybox /bin/busybox
COPY stamp.txt /stamp.txt
"""


def shown_size(text: str) -> tuple[float, float]:
    """The first size in ``text`` as (bytes, how far off its rounding may be)."""
    match = SIZE.search(text)
    assert match, f"no size in {text!r}"
    number, unit = match.groups()
    decimals = len(number.partition(".")[2])
    return float(number) * UNITS[unit], 0.5 * 10**-decimals * UNITS[unit]


def shows_size(text: str, actual: int) -> bool:
    """``text`` shows ``actual`` bytes, rounded as displayed (1.0 MiB for 1088857 bytes)."""
    shown, tolerance = shown_size(text)
    return abs(shown - actual) <= tolerance + 1


def image_rows(cli: Cli) -> dict[str, list[str]]:
    """``idpwrap images`` as NAME:TAG -> its columns (separated by two or more spaces)."""
    result = cli.run("images")
    assert result.returncode == 0, result.describe()
    lines = result.stdout.splitlines()
    assert lines and lines[0].split()[:2] == ["REPOSITORY", "TAG"], result.stdout
    rows = {}
    for line in lines[1:]:
        columns = re.split(r"\s{2,}", line.strip())
        rows[f"{columns[0]}:{columns[1]}"] = columns
    return rows


def skopeo_inspect_raw(store: Path, tag: str) -> bytes:
    """The manifest as skopeo reads it from the store: the layout is valid for other tools."""
    return subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{store}:{tag}"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout


def test_images_then_rmi_frees_only_unshared_blobs(prebuilt, prebuilt_copy: Cli, registry) -> None:
    cli, store = prebuilt_copy, prebuilt_copy.store
    hello, three = prebuilt.hello, prebuilt.three
    shared = set(hello.blobs) & set(three.blobs)
    assert shared, "hello and three should share the busybox layer"

    rows = image_rows(cli)
    assert set(rows) == {"hello:v1", "three:v1"}, rows
    for image in (hello, three):
        row = " ".join(rows[image.tag])
        assert image.digest.split(":")[1][:12] in row, row
        assert shows_size(row, sum(image.blobs.values())), (row, image.blobs)

    removed = cli.run("rmi", "three:v1")
    assert removed.returncode == 0, removed.describe()
    assert "three:v1" in removed.stdout
    only_three = three.all_digests - hello.all_digests
    freed = sum(blob_path(prebuilt.store, digest).stat().st_size for digest in only_three)
    assert shows_size(removed.stdout, freed), (removed.stdout, freed)

    assert tagged(store, "three:v1") == []
    left = store_digests(store)
    assert not (only_three & left), "blobs only three:v1 used are still there"
    assert hello.all_digests <= left, "rmi removed a blob hello:v1 still uses"
    assert set(image_rows(cli)) == {"hello:v1"}
    assert hashlib.sha256(skopeo_inspect_raw(store, "hello:v1")).hexdigest() in hello.digest

    again = cli.run("rmi", "three:v1")
    assert again.returncode == 3 and "Traceback" not in again.stderr, again.describe()

    # The image that shared a layer with the removed one still pushes whole.
    push = cli.run(
        "push",
        "--registry",
        registry.url,
        *registry.tls_options(),
        "--progress",
        "none",
        "hello:v1",
        "giteaadmin/after-rmi:v1",
        credentials=registry.credentials,
    )
    assert push.returncode == 0, push.describe()
    assert registry.client().manifest_digest("giteaadmin/after-rmi", "v1") == hello.digest
    for digest in shared:
        assert registry.client().blob("giteaadmin/after-rmi", digest).status == 200


def test_rebuild_same_context_and_tag_uses_the_cache_and_moves_the_tag(
    cli: Cli, tmp_path: Path
) -> None:
    context = make_context(
        tmp_path / "context", STAMPED_CONTAINERFILE, {"stamp.txt": tmp_path.name.encode()}
    )
    build = ("build", "--context", str(context), "--tag", "rebuilt:v1")

    def built(result, tag: str = "rebuilt:v1"):
        """The build succeeded and ``tag`` is in the index once, on the digest it printed."""
        assert result.returncode == 0, result.describe()
        assert "Traceback" not in result.stderr
        assert len(tagged(cli.store, tag)) == 1, read_index(cli.store)
        image = local_image(cli.store, tag)
        assert f"Digest: {image.digest}" in result.stdout, result.stdout
        assert all(blob_path(cli.store, digest).is_file() for digest in image.all_digests)
        return image

    first = built(cli.run(*build))

    # The same inputs again: idpwrap may recognise them and reuse the image, or buildah runs
    # with its --layers cache; either way the same layers, and the tag once.
    second = built(cli.run(*build))
    assert second.layers == first.layers

    # An input buildah's cache does not key on (an unused build argument) makes buildah run,
    # every step from its cache (docs/development.md: buildah 1.28 fails on a fully cached build
    # unless idpwrap copes); the tag moves to the image that build wrote.
    cached = cli.run(*build, "--build-arg", "UNUSED_BY_THE_CONTAINERFILE=1")
    third = built(cached)
    assert "Using cache" in cached.stderr, "buildah should have run from its layer cache"
    assert third.layers == first.layers, "cached layers are the same blobs"

    # A changed context: the tag moves to a new image, still exactly once in the index.
    (context / "stamp.txt").write_text("changed\n")
    fourth = built(cli.run(*build))
    assert fourth.digest not in (first.digest, second.digest, third.digest)
    assert fourth.layers[0] == first.layers[0]  # busybox, from the cache
    assert fourth.layers[-1] != first.layers[-1]
    manifest = skopeo_inspect_raw(cli.store, "rebuilt:v1")
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == fourth.digest
    assert list((cli.store / ".idpwrap.tmp").iterdir()) == []


def test_concurrent_builds_with_different_tags_all_land(cli: Cli, hello_context: Path) -> None:
    tags = [f"parallel:v{number}" for number in range(4)]
    processes = [
        cli.popen("build", "-q", "--context", str(hello_context), "--tag", tag) for tag in tags
    ]
    outcomes = [(process, *process.communicate(timeout=120)) for process in processes]
    for process, stdout, stderr in outcomes:
        assert process.returncode == 0, stderr
        assert "Image saved to local store: parallel:v" in stdout

    names = [
        entry.get("annotations", {}).get("org.opencontainers.image.ref.name")
        for entry in read_index(cli.store)["manifests"]
    ]
    # the untagged entries are each image's provenance (store/referrers.py)
    assert sorted(name for name in names if name) == tags
    for tag in tags:
        image = local_image(cli.store, tag)
        assert all(blob_path(cli.store, digest).is_file() for digest in image.all_digests)


def test_rmi_during_a_push_leaves_the_blobs_the_push_reads(
    prebuilt, prebuilt_copy: Cli, registry, relay_to
) -> None:
    cli, three = prebuilt_copy, prebuilt.three
    relay = relay_to(registry, 4 * MiB)
    process = cli.popen(
        "push",
        "--registry",
        f"https://{relay.host}",
        *registry.tls_options(),
        "--progress",
        "json",
        "three:v1",
        "giteaadmin/rmi-during-push:v1",
        credentials=registry.credentials,
    )
    stderr = StreamWatcher(process.stderr)
    try:
        assert stderr.wait_for_line(lambda line: '"event":"progress"' in line, 30), stderr.text(0)
        removed = cli.run("rmi", "three:v1")
        assert removed.returncode == 0, removed.describe()
        assert tagged(cli.store, "three:v1") == []
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    error_text = stderr.text()
    stdout = process.stdout.read() if process.stdout else ""
    assert process.returncode == 0, error_text[-3000:]
    assert f"Pushed {relay.host}/giteaadmin/rmi-during-push:v1@{three.digest}" in stdout
    assert registry.client().manifest_digest("giteaadmin/rmi-during-push", "v1") == three.digest


def test_corrupt_index_is_reported_and_never_overwritten(
    prebuilt_copy: Cli, hello_context: Path
) -> None:
    index = prebuilt_copy.store / "index.json"
    index.write_text('{"schemaVersion": 2, "manifests": [')
    corrupt = index.read_bytes()
    for args in (
        ("images",),
        ("build", "-q", "--context", str(hello_context), "--tag", "hello:v2"),
    ):
        result = prebuilt_copy.run(*args)
        assert result.returncode == 8, result.describe()
        assert "Traceback" not in result.stderr
        errors = result.error_lines()
        assert len(errors) == 1 and "index.json" in errors[0], result.describe()
        assert index.read_bytes() == corrupt, f"{args[0]} rewrote a corrupt index.json"


# -- podman habits: images --format, rmi -f, a reproducible image's time -----------------------


def test_images_format_with_podmans_fields(prebuilt, prebuilt_copy: Cli) -> None:
    cli = prebuilt_copy
    hello = local_image(cli.store, "hello:v1")
    result = cli.run("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Digest}}")
    assert result.returncode == 0, result.describe()
    short_id = hello.config[0].removeprefix("sha256:")[:12]
    assert f"hello:v1 {short_id} {hello.digest}" in result.stdout.splitlines()

    table = cli.run(
        "images", "--format", "table {{.Repository}}\\t{{.Tag}}\\t{{.Size}}\\t{{.CreatedSince}}"
    )
    assert table.returncode == 0, table.describe()
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["REPOSITORY", "TAG", "SIZE", "CREATED"]
    (row,) = [line for line in rows if line.startswith("hello ")]
    # built outside a git work tree: created 1970-01-01, said as such, never "20790 days ago"
    assert "reproducible, stored " in row
    assert "days ago" not in table.stdout

    as_json = cli.run("images", "--format", "json")
    assert as_json.returncode == 0 and '"reference": "hello:v1"' in as_json.stdout

    created_at = cli.run("images", "--format", "{{.CreatedAt}}")
    assert "1970-01-01 00:00:00 +0000 UTC" in created_at.stdout.splitlines()

    unknown = cli.run("images", "--format", "{{.Names}}")
    assert unknown.returncode == 2, unknown.describe()
    (line,) = unknown.error_lines()
    assert "unknown field .Names: the fields are {{.Repository}}" in line


def test_default_images_and_inspect_say_a_reproducible_time_is_one(prebuilt_copy: Cli) -> None:
    cli = prebuilt_copy
    listed = cli.run("images")
    assert listed.returncode == 0, listed.describe()
    assert "reproducible, stored " in listed.stdout and "days ago" not in listed.stdout
    inspected = cli.run("inspect", "hello:v1")
    assert inspected.returncode == 0, inspected.describe()
    (created,) = [line for line in inspected.stdout.splitlines() if line.startswith("Created:")]
    assert created.startswith("Created:      1970-01-01T00:00:00Z (reproducible: a fixed time")
    assert "stored here " in created


def test_rmi_by_id_of_an_image_with_two_tags_needs_force(prebuilt_copy: Cli) -> None:
    cli = prebuilt_copy
    assert cli.run("tag", "hello:v1", "other:v1").returncode == 0
    short_id = local_image(cli.store, "hello:v1").config[0].removeprefix("sha256:")[:12]
    refused = cli.run("rmi", short_id)
    assert refused.returncode == 2, refused.describe()
    (line,) = refused.error_lines()
    assert "has 2 tags (hello:v1, other:v1)" in line and f"idpwrap rmi -f {short_id}" in line
    assert {"hello:v1", "other:v1"} <= set(check_valid(cli.store))

    forced = cli.run("rmi", "-f", short_id)
    assert forced.returncode == 0, forced.describe()
    assert "Untagged: hello:v1" in forced.stdout and "Untagged: other:v1" in forced.stdout
    remaining = check_valid(cli.store)
    assert "hello:v1" not in remaining and "other:v1" not in remaining
    assert "three:v1" in remaining
