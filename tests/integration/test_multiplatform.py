"""Multi-platform images for real: ``build --platform linux/amd64,linux/arm64`` (the arm64 RUN
step under qemu-user-static through binfmt_misc), the OCI index in the store, the store
commands on it, FROM a stored multi-platform base, and the push of the whole index (or one
child) to the test registry and to the Gitea mode.

The arm64 busybox comes from Debian's busybox-static:arm64, which scripts/emulation fetches into
.venv/foreign/arm64 (no base image can be pulled)."""

from __future__ import annotations

import base64
import gzip
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from idpwrap import platforms
from testing.cli import Cli, make_cli
from testing.gitea.running import GiteaRegistry
from testing.images import blob_path, read_blob_json, tag_digest
from testing.paths import BUSYBOX, ROOT
from testing.registry.running import RunningRegistry
from testing.storecheck import check_valid, leftovers, orphans

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ARM64_BUSYBOX = ROOT / ".venv" / "foreign" / "arm64" / "busybox"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
TWO = "linux/amd64,linux/arm64"
# The RUN step runs the image's own busybox: under emulation for the foreign platform.
CONTAINERFILE = """FROM scratch
ARG TARGETARCH
COPY busybox-${TARGETARCH} /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox uname -m > /arch"]
"""
ON_BASE = """FROM app:v1
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox uname -m > /arch2"]
"""


def needs_arm64() -> None:
    if platforms.host() != "linux/amd64":
        pytest.skip(f"the two-platform tests build amd64 and arm64 from a {platforms.host()} host")
    if not ARM64_BUSYBOX.is_file():
        pytest.skip(f"no arm64 busybox at {ARM64_BUSYBOX}: run scripts/emulation")
    if not platforms.can_run("linux/arm64"):
        pytest.skip("no binfmt_misc emulation for arm64: run scripts/emulation as root")


def two_platform_context(directory: Path, containerfile: str = CONTAINERFILE) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, directory / "busybox-amd64")
    shutil.copy2(ARM64_BUSYBOX, directory / "busybox-arm64")
    (directory / "Containerfile").write_text(containerfile)
    return directory


def children(store: Path, tag: str) -> dict[str, dict[str, Any]]:
    """platform -> child descriptor of the index ``tag`` names."""
    index = read_blob_json(store, tag_digest(store, tag))
    assert index["mediaType"] == OCI_INDEX, index
    found = {}
    for entry in index["manifests"]:
        platform = entry["platform"]
        found[f"{platform['os']}/{platform['architecture']}"] = entry
    return found


def file_in_layer(store: Path, layer_digest: str, name: str) -> bytes:
    data = gzip.decompress(blob_path(store, layer_digest).read_bytes())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile(name)
        assert member is not None, f"{name} is not a file in {layer_digest}"
        return member.read()


def last_layer_file(store: Path, manifest_digest: str, name: str) -> bytes:
    manifest = read_blob_json(store, manifest_digest)
    return file_in_layer(store, manifest["layers"][-1]["digest"], name)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A store with app:v1 built for linux/amd64 and linux/arm64 (one build)."""
    needs_arm64()
    base = tmp_path_factory.mktemp("multiplatform")
    cli = make_cli(base / "cli", base / "store")
    context = two_platform_context(base / "context")
    result = cli.run("build", "--platform", TWO, "-t", "app:v1", str(context), timeout=600)
    assert result.returncode == 0, result.describe()
    assert "building linux/arm64 (2 of 2)" in result.stderr
    return cli


@pytest.fixture
def copy(built: Cli, tmp_path: Path) -> Cli:
    store = tmp_path / "store"
    shutil.copytree(built.store, store, symlinks=True)
    return make_cli(tmp_path / "cli", store)


def test_two_platforms_make_one_index_whose_arm64_child_ran_under_emulation(built: Cli) -> None:
    store = built.store
    found = children(store, "app:v1")
    assert sorted(found) == ["linux/amd64", "linux/arm64"]
    for platform, expected in (("linux/amd64", b"x86_64\n"), ("linux/arm64", b"aarch64\n")):
        digest = found[platform]["digest"]
        config = read_blob_json(store, read_blob_json(store, digest)["config"]["digest"])
        assert (config["os"], config["architecture"]) == tuple(platform.split("/"))
        assert last_layer_file(store, digest, "arch") == expected, platform
    assert check_valid(store) == ["app:v1"]  # skopeo reads the index; every blob matches
    assert orphans(store) == set() and leftovers(store) == []
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{store}:app:v1"], capture_output=True, check=True
    ).stdout
    assert json.loads(raw)["mediaType"] == OCI_INDEX


def test_images_and_inspect_show_the_platforms(built: Cli) -> None:
    listed = built.run("images")
    assert listed.returncode == 0, listed.describe()
    header, row = listed.stdout.splitlines()
    assert header.split() == ["REPOSITORY", "TAG", "DIGEST", "SIZE", "PLATFORMS", "CREATED"]
    assert row.split()[:3] == ["app", "v1", tag_digest(built.store, "app:v1")[7:19]]
    assert "linux/amd64,linux/arm64" in row.split()
    (entry,) = json.loads(built.run("images", "--json").stdout)
    assert entry["platforms"] == ["linux/amd64", "linux/arm64"]
    assert entry["mediaType"] == OCI_INDEX
    info = json.loads(built.run("inspect", "--json", "app:v1").stdout)
    assert [child["platform"] for child in info["manifests"]] == ["linux/amd64", "linux/arm64"]
    child = json.loads(built.run("inspect", "--json", "--platform", "linux/arm64", "app:v1").stdout)
    assert (child["os"], child["architecture"]) == ("linux", "arm64")
    assert child["digest"] == children(built.store, "app:v1")["linux/arm64"]["digest"]
    missing = built.run("inspect", "--platform", "linux/s390x", "app:v1")
    assert missing.returncode == 3
    assert missing.error_lines() == [
        "idpwrap: error: app:v1 has no linux/s390x image (it has linux/amd64, linux/arm64):"
        " build it with --platform linux/s390x too, or choose one of those"
    ]


def test_tag_rmi_prune_save_load_keep_the_index_whole(copy: Cli, tmp_path: Path) -> None:
    store = copy.store
    digest = tag_digest(store, "app:v1")
    assert copy.run("tag", "app:v1", "app:v2").returncode == 0
    assert tag_digest(store, "app:v2") == digest
    assert copy.run("rmi", "app:v1").returncode == 0
    assert copy.run("prune").returncode == 0
    assert check_valid(store) == ["app:v2"]  # every child's blobs stayed for app:v2
    archive = tmp_path / "app.tar"
    saved = copy.run("save", "-o", str(archive), "app:v2")
    assert saved.returncode == 0, saved.describe()
    other = make_cli(tmp_path / "other-cli", tmp_path / "other-store")
    loaded = other.run("load", "-i", str(archive))
    assert loaded.returncode == 0, loaded.describe()
    assert tag_digest(other.store, "app:v2") == digest  # the index, not one child
    assert check_valid(other.store) == ["app:v2"]
    assert copy.run("rmi", "app:v2").returncode == 0
    assert list((store / "blobs" / "sha256").iterdir()) == []


def test_from_a_stored_multi_platform_base_takes_each_platforms_child(
    copy: Cli, tmp_path: Path
) -> None:
    context = two_platform_context(tmp_path / "on-base", ON_BASE)
    result = copy.run("build", "--platform", TWO, "-t", "derived:v1", str(context), timeout=600)
    assert result.returncode == 0, result.describe()
    base = children(copy.store, "app:v1")
    derived = children(copy.store, "derived:v1")
    for platform, expected in (("linux/amd64", b"x86_64\n"), ("linux/arm64", b"aarch64\n")):
        base_layers = read_blob_json(copy.store, base[platform]["digest"])["layers"]
        layers = read_blob_json(copy.store, derived[platform]["digest"])["layers"]
        assert layers[: len(base_layers)] == base_layers, platform
        assert last_layer_file(copy.store, derived[platform]["digest"], "arch2") == expected
    single = copy.run("build", "-q", "--platform", "linux/arm64", "-t", "one:v1", str(context))
    assert single.returncode == 0, single.describe()
    manifest = read_blob_json(copy.store, tag_digest(copy.store, "one:v1"))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert last_layer_file(copy.store, tag_digest(copy.store, "one:v1"), "arch2") == b"aarch64\n"


def test_an_unchanged_two_platform_build_is_recognised(copy: Cli, tmp_path: Path) -> None:
    context = two_platform_context(tmp_path / "again")
    first = copy.run("build", "-q", "--platform", TWO, "-t", "again:v1", str(context))
    assert first.returncode == 0, first.describe()
    second = copy.run("build", "--platform", TWO, "-t", "again:v2", str(context))
    assert second.returncode == 0, second.describe()
    assert "nothing changed since the build of" in second.stderr
    assert tag_digest(copy.store, "again:v2") == tag_digest(copy.store, "again:v1")


def test_a_platform_without_emulation_is_refused_before_building(cli: Cli, tmp_path: Path) -> None:
    candidates = [f"linux/{arch}" for arch in ("s390x", "ppc64le", "riscv64", "mips64le")]
    foreign = [platform for platform in candidates if not platforms.can_run(platform)]
    if not foreign:
        pytest.skip("this machine emulates every candidate platform")
    context = tmp_path / "ctx"
    context.mkdir()
    shutil.copy2(BUSYBOX, context / "busybox")
    (context / "Containerfile").write_text("FROM scratch\nCOPY busybox /bin/busybox\nRUN true\n")
    refused = cli.run("build", "--platform", foreign[0], "-t", "x:v1", str(context))
    assert refused.returncode == 9, refused.describe()
    (line,) = refused.error_lines()
    assert f"cannot run programs of {foreign[0]}" in line and "qemu-user-static" in line
    assert "STEP" not in refused.stderr  # said before buildah ran
    (context / "Containerfile").write_text("FROM scratch\nCOPY busybox /bin/busybox\n")
    built = cli.run("build", "-q", "--platform", foreign[0], "-t", "x:v1", str(context))
    assert built.returncode == 0, built.describe()  # no RUN step: no emulation needed
    config = read_blob_json(
        cli.store, read_blob_json(cli.store, tag_digest(cli.store, "x:v1"))["config"]["digest"]
    )
    assert config["architecture"] == foreign[0].split("/")[1]


# -- push --------------------------------------------------------------------------------------


def auth_file(path: Path, host: str, username: str, password: str) -> Path:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    path.chmod(0o600)
    return path


def skopeo_raw(reference: str, authfile: Path, ca_dir: Path, *extra: str) -> bytes:
    completed = subprocess.run(
        ["skopeo", "inspect", "--raw", "--authfile", str(authfile), "--cert-dir", str(ca_dir),
         *extra, reference],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr.decode()
    return completed.stdout


def ca_dir_for(ca_file: str, directory: Path) -> Path:
    directory.mkdir(exist_ok=True)
    shutil.copy(ca_file, directory / "ca.crt")
    return directory


def check_pushed_index(
    built: Cli, reference: str, authfile: Path, ca_dir: Path, tmp_path: Path
) -> None:
    import hashlib

    digest = tag_digest(built.store, "app:v1")
    raw = skopeo_raw(f"docker://{reference}", authfile, ca_dir)
    assert f"sha256:{hashlib.sha256(raw).hexdigest()}" == digest
    index = json.loads(raw)
    assert index["mediaType"] == OCI_INDEX
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    arm = children(built.store, "app:v1")["linux/arm64"]["digest"]
    pulled = tmp_path / "pulled"
    completed = subprocess.run(
        ["skopeo", "--override-arch", "arm64", "copy", "--src-authfile", str(authfile),
         "--src-cert-dir", str(ca_dir), f"docker://{reference}", f"oci:{pulled}:arm"],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr.decode()
    (entry,) = json.loads((pulled / "index.json").read_text())["manifests"]
    assert entry["digest"] == arm  # the arm64 child, unchanged
    assert last_layer_file(pulled, arm, "arch") == b"aarch64\n"
    storage = ["--root", str(tmp_path / "buildah"), "--runroot", str(tmp_path / "buildah-run"),
               "--storage-driver", "vfs"]  # fmt: skip
    completed = subprocess.run(
        ["buildah", *storage, "pull", "--arch", "arm64", "--authfile", str(authfile),
         "--cert-dir", str(ca_dir), "-q", f"docker://{reference}"],
        capture_output=True, timeout=120, check=False, text=True,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    inspected = subprocess.run(
        ["buildah", *storage, "inspect", "--type", "image", completed.stdout.strip()],
        capture_output=True, timeout=60, check=True, text=True,
    ).stdout  # fmt: skip
    assert json.loads(inspected)["FromImageDigest"] == arm


def test_push_sends_the_whole_index_with_one_progress_total(
    built: Cli, registry: RunningRegistry, tmp_path: Path
) -> None:
    reference = f"{registry.host}/multi/app:v1"
    result = built.run(
        "push", "--registry", registry.url, *registry.tls_options(), "--progress", "json",
        "--json", "app:v1", reference, credentials=registry.credentials, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.describe()
    digest = tag_digest(built.store, "app:v1")
    assert json.loads(result.stdout.splitlines()[-1])["digest"] == digest
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    store = built.store
    expected: dict[str, int] = {}
    for child in children(store, "app:v1").values():
        manifest = read_blob_json(store, child["digest"])
        for blob in [*manifest["layers"], manifest["config"]]:
            expected[blob["digest"]] = blob["size"]
    assert events[0]["total"] == sum(expected.values())
    percents = [event["percent"] for event in events if "percent" in event]
    assert percents == sorted(percents) and percents[-1] == 100
    assert all(p < 100 for p in percents[:-1])
    authfile = auth_file(tmp_path / "auth.json", registry.host, *registry.credentials)
    check_pushed_index(built, reference, authfile, ca_dir_for(registry.ca_file, tmp_path / "ca"),
                       tmp_path)  # fmt: skip


def test_push_of_one_platform_sends_that_child_as_a_plain_manifest(
    built: Cli, registry: RunningRegistry, tmp_path: Path
) -> None:
    reference = f"{registry.host}/multi/app:arm64"
    digestfile = tmp_path / "digest"
    result = built.run(
        "push", "--registry", registry.url, *registry.tls_options(), "--platform", "linux/arm64",
        "--digestfile", str(digestfile), "app:v1", reference, credentials=registry.credentials,
    )  # fmt: skip
    assert result.returncode == 0, result.describe()
    arm = children(built.store, "app:v1")["linux/arm64"]["digest"]
    assert digestfile.read_text() == f"{arm}\n"
    authfile = auth_file(tmp_path / "auth.json", registry.host, *registry.credentials)
    ca_dir = ca_dir_for(registry.ca_file, tmp_path / "ca")
    raw = skopeo_raw(f"docker://{reference}", authfile, ca_dir)
    assert json.loads(raw)["mediaType"] == "application/vnd.oci.image.manifest.v1+json"


def test_push_of_the_index_to_gitea(
    built: Cli, gitea_registry: GiteaRegistry, tmp_path: Path
) -> None:
    token = gitea_registry.secret("giteaAdmin", "token")
    result = built.run(
        "push", "--registry", gitea_registry.url, *gitea_registry.tls_options(), "app:v1",
        credentials=("giteaAdmin", token), timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.describe()
    reference = f"{gitea_registry.host}/giteaadmin/app:v1"
    assert f"Pushed {reference}@{tag_digest(built.store, 'app:v1')}" in result.stdout
    authfile = auth_file(tmp_path / "auth.json", gitea_registry.host, "giteaAdmin", token)
    ca_dir = ca_dir_for(gitea_registry.ca_file, tmp_path / "ca")
    check_pushed_index(built, reference, authfile, ca_dir, tmp_path)


def test_push_all_tags_sends_each_index(
    copy: Cli, registry: RunningRegistry, tmp_path: Path
) -> None:
    assert copy.run("tag", "app:v1", "app:v2").returncode == 0
    digestfile = tmp_path / "digests"
    result = copy.run(
        "push", "--registry", registry.url, *registry.tls_options(), "--all-tags", "--json",
        "--digestfile", str(digestfile), "app", f"{registry.host}/alltags/app",
        credentials=registry.credentials, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.describe()
    digest = tag_digest(copy.store, "app:v1")
    pushed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(p["reference"], p["digest"]) for p in pushed] == [
        (f"{registry.host}/alltags/app:{tag}", digest) for tag in ("v1", "v2")
    ]
    client = registry.client()
    for tag in ("v1", "v2"):
        assert client.manifest_digest("alltags/app", tag) == digest
