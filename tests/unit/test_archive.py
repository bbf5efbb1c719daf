"""save to one oci-archive (archivesave.py), load it back (archive.py); damaged archives too."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest

from idpwrap.errors import EXIT_STORE, EXIT_USAGE, ArchiveError, StoreError, UsageError
from idpwrap.refs import LocalRef
from idpwrap.store import archivesave
from idpwrap.store.api import Store
from idpwrap.store.archive import load_archive
from idpwrap.store.archivesave import save_archive

REF_NAME = "org.opencontainers.image.ref.name"
BASE = b"shared base layer" * 300


def ref(text: str) -> LocalRef:
    name, tag = text.rsplit(":", 1)
    return LocalRef(name, tag)


def members(path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def write_tar(path, files: dict[str, bytes], mode: str = "w") -> None:
    with tarfile.open(path, mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def layout_files(layout, annotations: dict[str, str] | None) -> dict[str, bytes]:
    """An OCI layout made by the layouts fixture, as archive members."""
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
    for blob in (layout.path / "blobs" / "sha256").iterdir():
        files[f"blobs/sha256/{blob.name}"] = blob.read_bytes()
    index = json.loads((layout.path / "index.json").read_text())
    for entry in index["manifests"]:
        if annotations is None:
            entry.pop("annotations", None)
        else:
            entry["annotations"] = annotations
    files["index.json"] = json.dumps(index).encode()
    return files


@pytest.fixture
def two_images(store, layouts):
    one = store.add_layout(layouts.make([BASE, b"one" * 50]).path, [ref("one:v1")])
    two = store.add_layout(layouts.make([BASE, b"two" * 60]).path, [ref("team/two:v2")])
    return one, two


def test_save_then_load_into_another_store(tmp_path, store, two_images):
    output = tmp_path / "images.tar"
    size = save_archive(store, list(two_images), output)
    assert size == output.stat().st_size
    files = members(output)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    assert [e["annotations"][REF_NAME] for e in index["manifests"]] == ["one:v1", "team/two:v2"]
    blobs = [name for name in files if name.startswith("blobs/")]
    assert len(blobs) == len(set(blobs)) == len(list(store.blob_dir.iterdir()))  # the base once
    for name in blobs:
        assert hashlib.sha256(files[name]).hexdigest() == name.rsplit("/", 1)[1]

    other = Store(tmp_path / "other")
    loaded = load_archive(other, output)
    assert [(str(i.ref), i.digest) for i in loaded] == [(str(i.ref), i.digest) for i in two_images]
    assert {p.name for p in other.blob_dir.iterdir()} == {p.name for p in store.blob_dir.iterdir()}
    assert list((other.root / ".idpwrap.tmp").iterdir()) == []
    assert other.details(other.find(ref("team/two:v2"))).size > 0


def test_save_replaces_the_file_whole_or_leaves_it(tmp_path, store, two_images, monkeypatch):
    output = tmp_path / "images.tar"
    output.write_bytes(b"the previous archive")

    def fail(fd, *args):
        os.write(fd, b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archivesave, "_write_tar", fail)
    with pytest.raises(StoreError) as caught:
        save_archive(store, list(two_images), output)
    assert caught.value.exit_code == EXIT_STORE
    assert "no space left" in str(caught.value) and str(output) in str(caught.value)
    assert "as it was" in str(caught.value)
    assert output.read_bytes() == b"the previous archive"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images.tar", "layouts", "store"]


def test_save_into_a_missing_directory_or_onto_a_directory(tmp_path, store, two_images):
    with pytest.raises(UsageError):
        save_archive(store, list(two_images), tmp_path / "no" / "such.tar")
    with pytest.raises(UsageError):
        save_archive(store, list(two_images), tmp_path)


def test_load_a_gzipped_archive_with_dot_slash_names(tmp_path, store, layouts):
    layout = layouts.make([b"gz layer"])
    files = {f"./{k}": v for k, v in layout_files(layout, {REF_NAME: "gz:v1"}).items()}
    path = tmp_path / "image.tar.gz"
    write_tar(path, files, "w:gz")
    (image,) = load_archive(store, path)
    assert str(image.ref) == "gz:v1" and image.digest == layout.manifest_digest


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [({REF_NAME: "docker.io/library/alpine:3.19"}, "alpine:3.19"),
     ({REF_NAME: "localhost/myapp:v1"}, "myapp:v1"),
     ({REF_NAME: "quay.io/team/tool:2"}, "quay.io/team/tool:2"),
     ({REF_NAME: "v1", "io.containerd.image.name": "docker.io/team/app:v1"}, "team/app:v1")],
)  # fmt: skip
def test_names_are_kept_short(tmp_path, store, layouts, annotations, expected):
    path = tmp_path / "image.tar"
    write_tar(path, layout_files(layouts.make([b"named"]), annotations))
    assert [str(i.ref) for i in load_archive(store, path)] == [expected]


@pytest.mark.parametrize("annotations", [None, {REF_NAME: "v1.0.0"}, {REF_NAME: "MyApp:v1"}])
def test_an_image_without_a_usable_name_needs_a_tag(tmp_path, store, layouts, annotations):
    layout = layouts.make([b"nameless"])
    path = tmp_path / "image.tar"
    write_tar(path, layout_files(layout, annotations))
    with pytest.raises(ArchiveError) as caught:
        load_archive(store, path)
    assert "-t NAME:TAG" in str(caught.value) or "cannot take" in str(caught.value)
    assert caught.value.exit_code == EXIT_USAGE
    assert store.images() == []
    (image,) = load_archive(store, path, [ref("named:v1")])
    assert str(image.ref) == "named:v1" and image.digest == layout.manifest_digest


def test_a_tag_for_an_archive_of_several_images(tmp_path, store, two_images):
    save_archive(store, list(two_images), tmp_path / "two.tar")
    with pytest.raises(UsageError, match="holds 2"):
        load_archive(Store(tmp_path / "other"), tmp_path / "two.tar", [ref("x:v1")])


def test_a_damaged_blob_is_refused_and_the_store_unchanged(tmp_path, store, layouts):
    store.add_layout(layouts.make([b"kept"]).path, [ref("kept:v1")])
    before = store.index_path.read_bytes()
    layout = layouts.make([b"will be damaged"])
    files = layout_files(layout, {REF_NAME: "bad:v1"})
    name = f"blobs/sha256/{layout.layer_digests[0].split(':')[1]}"
    files[name] = b"X" + files[name][1:]
    path = tmp_path / "bad.tar"
    write_tar(path, files)
    with pytest.raises(ArchiveError, match="does not match"):
        load_archive(store, path)
    assert store.index_path.read_bytes() == before
    assert list((store.root / ".idpwrap.tmp").iterdir()) == []


def test_an_incomplete_archive_is_refused(tmp_path, store, layouts):
    layout = layouts.make([b"layer"])
    files = layout_files(layout, {REF_NAME: "cut:v1"})
    del files[f"blobs/sha256/{layout.config_digest.split(':')[1]}"]
    path = tmp_path / "cut.tar"
    write_tar(path, files)
    with pytest.raises(StoreError, match="incomplete"):
        load_archive(store, path)
    assert store.images() == []


def test_hostile_member_names_never_become_paths(tmp_path, store, layouts):
    layout = layouts.make([b"layer"])
    files = layout_files(layout, {REF_NAME: "safe:v1"})
    files["../../escaped"] = b"outside"
    files["/tmp/absolute-escape"] = b"outside"
    files["blobs/sha256/../../../escaped2"] = b"outside"
    path = tmp_path / "hostile.tar"
    write_tar(path, files)
    (image,) = load_archive(store, path)
    assert str(image.ref) == "safe:v1"
    for candidate in (tmp_path / "escaped", tmp_path / "escaped2", store.root / "escaped"):
        assert not candidate.exists()
    assert not os.path.exists("/tmp/absolute-escape")


@pytest.mark.parametrize("name", ["../evil:v1", "a/../../b:v1", "ok:../../x", "UP:v1"])
def test_hostile_image_names_are_refused(tmp_path, store, layouts, name):
    path = tmp_path / "hostile.tar"
    write_tar(path, layout_files(layouts.make([b"layer"]), {REF_NAME: name}))
    with pytest.raises(ArchiveError):
        load_archive(store, path)
    assert store.images() == []


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a tar at all" * 100, "not a tar"), (gzip.compress(b"x" * 100), "not a tar")],
)
def test_not_an_archive(tmp_path, store, content, message):
    path = tmp_path / "file.tar"
    path.write_bytes(content)
    with pytest.raises(ArchiveError, match=message):
        load_archive(store, path)


def test_a_tar_of_something_else(tmp_path, store):
    path = tmp_path / "other.tar"
    write_tar(path, {"etc/passwd": b"root:x:0:0"})
    with pytest.raises(ArchiveError, match="neither an oci-archive"):
        load_archive(store, path)


def test_a_cut_short_archive(tmp_path, store, two_images):
    full = tmp_path / "full.tar"
    save_archive(store, list(two_images), full)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ArchiveError):
        load_archive(Store(tmp_path / "other"), cut)


def test_a_missing_file(tmp_path, store):
    with pytest.raises(UsageError, match="is not a file"):
        load_archive(store, tmp_path / "missing.tar")


def test_a_multi_platform_index_loads_whole_or_this_machines_image(
    tmp_path, store, layouts, monkeypatch
):
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    amd = layouts.make([b"amd64 layer"])
    arm = layouts.make([b"arm64 layer"])
    files = layout_files(amd, None)
    files.update(layout_files(arm, None))
    child = {"mediaType": "application/vnd.oci.image.manifest.v1+json"}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [
                 {**child, "digest": amd.manifest_digest, "size": amd.sizes[amd.manifest_digest],
                  "platform": {"os": "linux", "architecture": "amd64"}},
                 {**child, "digest": arm.manifest_digest, "size": arm.sizes[arm.manifest_digest],
                  "platform": {"os": "linux", "architecture": "arm64"}}]}  # fmt: skip
    data = json.dumps(index).encode()
    digest = hashlib.sha256(data).hexdigest()
    files[f"blobs/sha256/{digest}"] = data
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": f"sha256:{digest}",
         "size": len(data), "annotations": {REF_NAME: "multi:v1"}}]}).encode()  # fmt: skip
    path = tmp_path / "multi.tar"
    write_tar(path, files)
    (image,) = load_archive(store, path)
    assert image.digest == f"sha256:{digest}"  # the index, whole
    assert {f"sha256:{p.name}" for p in store.blob_dir.iterdir()} == (
        amd.blob_digests | arm.blob_digests | {f"sha256:{digest}"}
    )
    # An archive with one platform's blobs only: that platform's image, if it is this machine's.
    for name in amd.blob_digests - arm.blob_digests:
        del files[f"blobs/sha256/{name.split(':', 1)[1]}"]
    write_tar(path, files)
    (image,) = load_archive(Store(tmp_path / "partial"), path)
    assert image.digest == arm.manifest_digest
    monkeypatch.setattr("platform.machine", lambda: "s390x")
    with pytest.raises(ArchiveError, match="linux/amd64, linux/arm64"):
        load_archive(Store(tmp_path / "other"), path)


def test_an_interrupted_save_leaves_no_partial_file(tmp_path, store, two_images, monkeypatch):
    def interrupted(fd, *args):
        os.write(fd, b"x" * 1000)
        raise KeyboardInterrupt

    monkeypatch.setattr(archivesave, "_write_tar", interrupted)
    monkeypatch.setattr(archivesave, "_can_link_unnamed_files", lambda directory: False)
    with pytest.raises(KeyboardInterrupt):
        save_archive(store, list(two_images), tmp_path / "images.tar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layouts", "store"]
