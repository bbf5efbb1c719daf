"""platforms.py: parsing --platform, binfmt_misc entries, the emulation check; store/indexes.py:
an index assembled from single-platform layouts, and its children picked by platform."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from idpwrap import platforms
from idpwrap.build.building import containerfile_runs
from idpwrap.commands import build, pushargs
from idpwrap.config import settings as config
from idpwrap.errors import EXIT_SETUP, ConfigError, ImageNotFound, SetupError, UsageError
from idpwrap.refs import LocalRef, Registry
from idpwrap.store import indexes
from idpwrap.store.api import Store
from idpwrap.tools.skopeo import CopyOptions, copy_argv

# Debian's /usr/lib/binfmt.d/qemu-aarch64.conf as the kernel shows it once registered.
AARCH64_ENTRY = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: POF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""
S390X_DISABLED = """disabled
interpreter /usr/libexec/qemu-binfmt/s390x-binfmt-P
flags: POF
offset 0
magic 7f454c460201010000000000000000000002001600
mask ffffffffffffff00fffffffffffffffffffeffff
"""


def binfmt(tmp_path: Path, status: str = "enabled", **entries: str) -> str:
    directory = tmp_path / "binfmt_misc"
    directory.mkdir()
    (directory / "status").write_text(f"{status}\n")
    (directory / "register").write_text("")
    for name, text in entries.items():
        (directory / name.replace("_", "-")).write_text(text)
    return str(directory)


@pytest.fixture
def on_amd64(monkeypatch):
    class Uname:
        machine = "x86_64"

    monkeypatch.setattr(platforms.os, "uname", lambda: Uname)


def test_entries_are_matched_by_the_elf_header_they_recognise(tmp_path, on_amd64):
    directory = binfmt(tmp_path, qemu_aarch64=AARCH64_ENTRY, qemu_s390x=S390X_DISABLED,
                       python3_11="enabled\ninterpreter /usr/bin/python3.11\nflags: \noffset 0\n"
                       "magic 0d0d0d0a\n")  # fmt: skip
    assert platforms.emulators(directory) == {"arm64": "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"}
    assert platforms.can_run("linux/arm64", directory)
    assert platforms.can_run("linux/amd64", directory)  # native
    assert platforms.can_run("linux/386", directory)  # native on x86_64
    assert not platforms.can_run("linux/s390x", directory)  # its entry is disabled


def test_nothing_runs_foreign_when_binfmt_misc_is_off_or_unmounted(tmp_path, on_amd64):
    assert platforms.emulators(binfmt(tmp_path, "disabled", qemu_aarch64=AARCH64_ENTRY)) == {}
    assert platforms.emulators(str(tmp_path / "not-mounted")) == {}


def test_emulation_check_says_what_to_install_mount_and_register(tmp_path, on_amd64):
    with pytest.raises(SetupError) as caught:
        platforms.check_emulation(["linux/arm64", "linux/amd64"], str(tmp_path / "none"))
    message = str(caught.value)
    assert caught.value.exit_code == EXIT_SETUP
    assert "cannot run programs of linux/arm64" in message
    assert "apt-get install qemu-user-static" in message
    assert f"mount -t binfmt_misc binfmt_misc {tmp_path / 'none'}" in message
    assert "/usr/lib/binfmt.d/qemu-aarch64.conf" in message
    assert "\n" not in message
    platforms.check_emulation(["linux/arm64"], binfmt(tmp_path, qemu_aarch64=AARCH64_ENTRY))


def test_platform_names():
    assert platforms.of({"os": "linux", "architecture": "arm", "variant": "v7"}) == "linux/arm/v7"
    assert platforms.as_platform("linux/arm64/v8") == {
        "architecture": "arm64", "os": "linux", "variant": "v8",
    }  # fmt: skip
    assert platforms.matches("linux/arm64", "linux/arm64/v8")
    assert not platforms.matches("linux/arm/v6", "linux/arm/v7")


def test_build_takes_one_platform_several_or_the_configs(tmp_path, monkeypatch):
    assert build.platform_fields(["linux/arm64"]) == {"platform": "linux/arm64", "platforms": ()}
    assert build.platform_fields(["linux/amd64,linux/arm64"]) == {
        "platform": None, "platforms": ("linux/amd64", "linux/arm64"),
    }  # fmt: skip
    file = tmp_path / "config.yaml"
    file.write_text("platform: [linux/amd64, linux/arm64]\n")
    monkeypatch.setenv("IDPWRAP_CONFIG", str(file))
    assert build.platform_fields(None)["platforms"] == ("linux/amd64", "linux/arm64")
    monkeypatch.setenv("IDPWRAP_PLATFORM", "linux/s390x")
    assert build.platform_fields(None) == {"platform": "linux/s390x", "platforms": ()}
    file.write_text("platform: arm64\n")
    monkeypatch.delenv("IDPWRAP_PLATFORM")
    with pytest.raises(ConfigError, match="expected OS/ARCH"):
        config.Config.load()


def test_push_takes_one_platform():
    assert pushargs.push_platform(None) is None
    assert pushargs.push_platform("linux/ARM64") == "linux/arm64"
    with pytest.raises(UsageError, match="push takes one platform"):
        pushargs.push_platform("linux/amd64,linux/arm64")


def test_a_whole_index_is_copied_with_every_child():
    options = CopyOptions(Registry("r:5000"), 7, "/d", all_images=True)
    assert "--multi-arch=all" in copy_argv("oci:/l:image", "docker://r:5000/a:v1", options)
    options = CopyOptions(Registry("r:5000"), 7, "/d")
    assert "--multi-arch=all" not in copy_argv("oci:/l:image", "docker://r:5000/a:v1", options)


def test_containerfile_runs(tmp_path):
    file = tmp_path / "Containerfile"
    file.write_text("FROM scratch\nCOPY a /a\n# RUN not this\n")
    assert not containerfile_runs(file)
    file.write_text("FROM scratch\nrun \\\n  true\n")
    assert containerfile_runs(file)


# -- indexes -----------------------------------------------------------------------------------


def one_image_layout(directory: Path, arch: str, shared: bytes) -> Path:
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **put(shared)}
    config = {"mediaType": "application/vnd.oci.image.config.v1+json",
              **put(json.dumps({"architecture": arch, "os": "linux"}).encode())}  # fmt: skip
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config, "layers": [layer]}  # fmt: skip
    descriptor = {"mediaType": manifest["mediaType"], **put(json.dumps(manifest).encode())}
    entry = {**descriptor, "annotations": {"org.opencontainers.image.ref.name": "build"}}
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return directory


def test_assembled_index_holds_each_child_with_its_platform_and_shared_blobs_once(tmp_path):
    amd = one_image_layout(tmp_path / "amd", "amd64", b"same layer")
    arm = one_image_layout(tmp_path / "arm", "arm64", b"same layer")
    descriptor = indexes.assemble([amd, arm], tmp_path / "index")
    store = Store(tmp_path / "store")
    store.ensure()
    (image,) = store.add_images(tmp_path / "index", [(descriptor, [LocalRef("app", "v1")])])
    assert indexes.is_index(image)
    assert indexes.platforms_of(store, image) == ["linux/amd64", "linux/arm64"]
    arm_child = indexes.child(store, image, "linux/arm64")
    assert store.details(arm_child).config["architecture"] == "arm64"
    blobs = indexes.copied_blobs(store, image)
    assert [kind for _, _, kind in blobs] == ["blob", "config", "config"]  # the layer once
    assert len(list(store.blob_dir.iterdir())) == 1 + 2 + 2 + 1  # layer, configs, manifests, index
    with pytest.raises(ImageNotFound, match="has no linux/s390x image"):
        indexes.child(store, image, "linux/s390x")
    assert store.delete(LocalRef("app", "v1")) > 0
    assert list(store.blob_dir.iterdir()) == []
