"""The tool's own image: a Debian root filesystem made with debootstrap, imported with
`idpwrap import`, the top-level Containerfile built on it with idpwrap (scripts/build-image),
and `idpwrap --version` run inside the result with buildah. Slow: about two minutes."""

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from idpwrap.tools import limits

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
IDPWRAP = str(ROOT / ".venv" / "bin" / "idpwrap")


def host_mirror() -> str:
    """The Debian archive this machine's apt uses for its own release (as scripts/env reads it):
    deb822 ``*.sources`` first, then one-line ``sources.list`` entries."""
    release = ""
    with open("/etc/os-release") as os_release:
        for line in os_release:
            if line.startswith("VERSION_CODENAME="):
                release = line.split("=", 1)[1].strip().strip('"')
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if ":" in line and line[0] != "#"
            )
            if (
                "deb" in fields.get("Types", "").split()
                and release in fields.get("Suites", "").split()
            ):
                return fields["URIs"].split()[0]
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list")]:
        for line in path.read_text().splitlines() if path.is_file() else []:
            words = [word for word in line.split() if not word.startswith("[")]
            if len(words) >= 3 and words[0] == "deb" and words[2] == release:
                return words[1]
    # sid names itself by the next release (forky) while its sources say sid: any deb entry
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list")]:
        for line in path.read_text().splitlines() if path.is_file() else []:
            words = [word for word in line.split() if not word.startswith("[")]
            if len(words) >= 3 and words[0] == "deb":
                return words[1]
    pytest.fail("no Debian mirror for this release in /etc/apt/sources*")


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
        run(
            ["debootstrap", "--variant=minbase", "bookworm", str(target), host_mirror()],
            timeout=900,
        )
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

    # buildah 1.39 as root under low hard limits: the same --ulimit flags as idpwrap's builds.
    # A storage of the test's own: in root's default one the 500 MB image would stay for good.
    buildah = ["buildah", "--root", str(tmp_path / "buildah"), "--runroot", str(tmp_path / "run")]
    ulimits = limits.buildah_ulimits("buildah")
    container = run([*buildah, "from", "-q", *ulimits, f"oci:{store}:idpwrap:test"]).stdout.strip()
    try:
        version = run([*buildah, "run", "--isolation", "chroot", container, "--",
                       "idpwrap", "--version"])  # fmt: skip
        expected = run([IDPWRAP, "--version"]).stdout.strip()
        assert version.stdout.strip() == expected
        user = run([*buildah, "run", "--isolation", "chroot", container, "--", "id", "-un"])
        assert user.stdout.strip() == "builder"
        tools = run([*buildah, "run", "--isolation", "chroot", container, "--",
                     "sh", "-c", "buildah --version && skopeo --version"])  # fmt: skip
        assert "buildah version" in tools.stdout and "skopeo version" in tools.stdout
    finally:
        subprocess.run([*buildah, "rm", container], capture_output=True)
        subprocess.run([*buildah, "rmi", "--all", "--force"], capture_output=True)
