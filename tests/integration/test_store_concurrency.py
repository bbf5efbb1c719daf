"""Writers at once on one store: eight builds with eight tags, eight tags, rmi beside builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from testing.cli import Cli
from testing.images import local_image, make_context
from testing.storecheck import check_valid, leftovers, orphans, provenance_blobs

pytestmark = pytest.mark.integration

STAMPED = """\
FROM scratch
COPY busybox /bin/busybox
COPY stamp.txt /stamp.txt
CMD ["/bin/busybox", "cat", "/stamp.txt"]
"""


def test_eight_builds_started_at_once_all_land(cli: Cli, tmp_path: Path) -> None:
    contexts = [
        make_context(tmp_path / f"ctx{n}", STAMPED, {"stamp.txt": f"{tmp_path} {n}\n".encode()})
        for n in range(8)
    ]
    processes = [
        cli.popen("build", "-q", "--context", str(context), "--tag", f"parallel/app:v{n}")
        for n, context in enumerate(contexts)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr

    tags = [f"parallel/app:v{n}" for n in range(8)]
    assert check_valid(cli.store) == tags  # skopeo reads each; every blob matches its sha256
    images = [local_image(cli.store, tag) for tag in tags]
    assert len({image.digest for image in images}) == 8, "eight different images"
    # Builds racing on an empty cache may each make their own busybox layer (its tar carries
    # the time of the directories it creates); whatever they made, each blob is there once.
    union = set().union(*(image.all_digests for image in images)) | provenance_blobs(cli.store)
    assert {f"sha256:{p.name}" for p in (cli.store / "blobs" / "sha256").iterdir()} == union
    assert orphans(cli.store) == set()
    assert leftovers(cli.store) == []


def test_tags_and_removals_at_once(prebuilt, prebuilt_copy: Cli) -> None:
    cli = prebuilt_copy
    for n in range(4):
        assert cli.run("tag", "three:v1", f"doomed:v{n}").returncode == 0
    processes = [cli.popen("tag", "hello:v1", f"many:v{n}", f"other/many:v{n}") for n in range(8)]
    processes += [cli.popen("rmi", f"doomed:v{n}") for n in range(4)]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    expected = sorted(
        ["hello:v1", "three:v1"]
        + [f"many:v{n}" for n in range(8)]
        + [f"other/many:v{n}" for n in range(8)]
    )
    assert check_valid(cli.store, every_blob=False) == expected
    assert {local_image(cli.store, tag).digest for tag in expected if "many" in tag} == {
        prebuilt.hello.digest
    }
    assert orphans(cli.store) == set()
