"""A full disk wherever a build, a load or a save writes (the store, buildah's storage under
XDG_DATA_HOME, the temporary directory): exit code 8 and one line that names the full
filesystem's mount point, never a Containerfile line nor Go structures; the store stays valid.
Each disk is a small tmpfs mounted for the test."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.cli import Cli, Result, make_cli
from testing.images import make_context
from testing.storecheck import check_valid, leftovers

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: tmpfs mounts"),
]

EXIT_STORE = 8
BIG = 24 * 1024 * 1024  # more than the 20 MiB disk can hold
CONTAINERFILE = """\
FROM scratch
COPY busybox /bin/busybox
COPY big.bin /big.bin
RUN ["/bin/busybox", "true"]
"""


@contextlib.contextmanager
def small_disk(target: Path, size: str = "20m") -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
        check=True,
        capture_output=True,
    )
    try:
        yield target
    finally:
        # buildah may leave its overlay mounts below it after a failure: those first
        mounts = [
            line.split()[4]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(f"{target}/")
        ]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)


@pytest.fixture(scope="module")
def big_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = random.Random(20).randbytes(BIG)  # incompressible: gzip cannot make it fit
    return make_context(tmp_path_factory.mktemp("big"), CONTAINERFILE, {"big.bin": data})


def assert_one_line_naming(result: Result, mount_point: Path) -> str:
    assert result.returncode == EXIT_STORE, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    (line,) = result.error_lines()
    assert f"on {mount_point} (tmpfs, " in line, line
    assert "Containerfile:" not in line and "{Env:" not in line and "&imagebuilder" not in line
    return line


def build(cli: Cli, context: Path, env: dict[str, str] | None = None) -> Result:
    return cli.run(
        "build", "-q", "--context", str(context), "--tag", "big:v1", env=env, timeout=600
    )


def test_the_store_full_during_a_build(prebuilt, tmp_path: Path, big_context: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        store = disk / "store"
        shutil.copytree(prebuilt.store, store, symlinks=True)
        cli = make_cli(tmp_path / "cli", store)
        line = assert_one_line_naming(build(cli, big_context), disk)
        assert "no space left" in line and f"the store {store}" in line, line
        assert check_valid(store) == ["hello:v1", "three:v1"]
        assert leftovers(store) == []


def test_buildahs_storage_full_during_a_build(prebuilt_copy: Cli, tmp_path: Path, big_context):
    with small_disk(tmp_path / "disk") as disk:
        env = {"XDG_DATA_HOME": str(disk / "data")}
        line = assert_one_line_naming(build(prebuilt_copy, big_context, env), disk)
        assert "no space left" in line and "buildah's storage" in line, line
        assert check_valid(prebuilt_copy.store) == ["hello:v1", "three:v1"]
        assert leftovers(prebuilt_copy.store) == []


def test_the_temporary_directory_full_during_a_build(prebuilt_copy, tmp_path, big_context):
    with small_disk(tmp_path / "disk", "1m") as disk:
        filler = disk / "filler"
        with contextlib.suppress(OSError), open(filler, "wb") as handle:
            handle.write(b"\0" * (2 * 1024 * 1024))  # leaves nothing free
        result = build(prebuilt_copy, big_context, {"TMPDIR": str(disk)})
        if result.returncode == 0:
            pytest.fail("the build passed with a full TMPDIR:\n" + result.describe())
        assert_one_line_naming(result, disk)
        assert check_valid(prebuilt_copy.store) == ["hello:v1", "three:v1"]
