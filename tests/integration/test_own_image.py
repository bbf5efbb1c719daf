"""The tool's own image: a Debian root filesystem made with debootstrap, imported with
`idpwrap import`, the top-level Containerfile built on it with idpwrap (scripts/build-image),
and `idpwrap --version` run inside the result with buildah. Slow: about two minutes."""

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
IDPWRAP = str(ROOT / ".venv" / "bin" / "idpwrap")
MIRROR = "http://deb.debian.org/debian"


def run(command, **kwargs):
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


def unmount_below(directory):
    """debootstrap mounts /proc (and more) in its target and can leave it there when it stops
    early: nothing of the host may end up in the tarball, or stay mounted under /tmp."""
    prefix = str(directory.resolve()) + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


@pytest.fixture(scope="module")
def debian_rootfs(tmp_path_factory):
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is not installed: scripts/setup installs it")
    target = tmp_path_factory.mktemp("debootstrap") / "rootfs"
    try:
        run(["debootstrap", "--variant=minbase", "bookworm", str(target), MIRROR], timeout=900)
    finally:
        unmount_below(target)
    tarball = target.parent / "rootfs.tar"
    with tarfile.open(tarball, "w") as archive:
        archive.add(target, arcname=".")
    shutil.rmtree(target)
    return tarball


def test_own_image_builds_on_an_imported_debian_and_runs_idpwrap(debian_rootfs, tmp_path):
    store = tmp_path / "store"
    env = {**os.environ, "IDPWRAP_STORE": str(store)}
    imported = run([IDPWRAP, "import", str(debian_rootfs), "debian:bookworm-minbase"], env=env)
    assert "Image saved to local store: debian:bookworm-minbase" in imported.stdout

    built = subprocess.run(
        [str(ROOT / "scripts" / "build-image"), "--base",
         f"oci:{store}:debian:bookworm-minbase", "--tag", "idpwrap:test"],
        env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    assert "Image saved to local store: idpwrap:test" in built.stdout

    container = run(["buildah", "from", "-q", f"oci:{store}:idpwrap:test"]).stdout.strip()
    try:
        version = run(["buildah", "run", "--isolation", "chroot", container, "--",
                       "idpwrap", "--version"])  # fmt: skip
        expected = run([IDPWRAP, "--version"]).stdout.strip()
        assert version.stdout.strip() == expected
        user = run(["buildah", "run", "--isolation", "chroot", container, "--", "id", "-un"])
        assert user.stdout.strip() == "builder"
        tools = run(["buildah", "run", "--isolation", "chroot", container, "--",
                     "sh", "-c", "buildah --version && skopeo --version"])  # fmt: skip
        assert "buildah version" in tools.stdout and "skopeo version" in tools.stdout
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True)
