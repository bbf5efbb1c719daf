"""store.py: the OCI image layout that holds every built image, one index.json entry a tag."""

from __future__ import annotations

import json
import os

import pytest

from idpwrap.errors import EXIT_NOT_FOUND, EXIT_STORE, ImageNotFound, StoreError
from idpwrap.refs import LocalRef
from idpwrap.store.api import Store

REF_NAME = "org.opencontainers.image.ref.name"
BASE = b"base layer shared by images" * 100
# The names idpwrap may leave at the store root; no temporary index file among them.
KNOWN_ROOT_NAMES = {"oci-layout", "index.json", "blobs", ".idpwrap.lock", ".idpwrap.gc.lock",
                    ".idpwrap.tmp"}  # fmt: skip


def ref(text: str) -> LocalRef:
    name, tag = text.rsplit(":", 1)
    return LocalRef(name, tag)


def index_of(store: Store) -> dict:
    return json.loads(store.index_path.read_text())


def tags_in(store: Store) -> list[str]:
    return [entry["annotations"][REF_NAME] for entry in index_of(store)["manifests"]]


def stored_blobs(store: Store) -> set[str]:
    return {f"sha256:{path.name}" for path in (store.root / "blobs" / "sha256").iterdir()}


def assert_no_leftovers(store: Store) -> None:
    names = {path.name for path in store.root.iterdir()}
    assert names <= KNOWN_ROOT_NAMES, names - KNOWN_ROOT_NAMES
    if (store.root / ".idpwrap.tmp").exists():
        assert list((store.root / ".idpwrap.tmp").iterdir()) == []


# -- ensure -------------------------------------------------------------------------------


def test_ensure_creates_the_layout(tmp_path):
    store = Store(tmp_path / "deep" / "store")
    store.ensure()
    assert json.loads((store.root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert index_of(store) == {"schemaVersion": 2, "manifests": []}
    assert (store.root / "blobs" / "sha256").is_dir()
    assert_no_leftovers(store)


def test_ensure_keeps_what_is_there(store, layouts):
    store.add_layout(layouts.make([BASE]).path, [ref("app:v1")])
    before = store.index_path.read_bytes()
    store.ensure()
    assert store.index_path.read_bytes() == before


def test_root_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Store(tmp_path.relative_to(tmp_path) / "s").root == tmp_path / "s"


# -- add_layout ---------------------------------------------------------------------------


def test_add_layout_moves_blobs_in_and_tags(store, layouts):
    layout = layouts.make([BASE, b"app layer"])
    image = store.add_layout(layout.path, [ref("myapp:v1.0.0")])
    assert image.ref == LocalRef("myapp", "v1.0.0")
    assert image.digest == layout.manifest_digest
    assert stored_blobs(store) == layout.blob_digests
    for digest, size in layout.sizes.items():
        assert store.blob_path(digest).stat().st_size == size
    assert list((layout.path / "blobs" / "sha256").iterdir()) == []  # moved, not copied
    (entry,) = index_of(store)["manifests"]
    assert entry["digest"] == layout.manifest_digest
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert entry["annotations"] == {REF_NAME: "myapp:v1.0.0"}
    assert_no_leftovers(store)


def test_add_layout_under_several_tags(store, layouts):
    layout = layouts.make([BASE])
    store.add_layout(layout.path, [ref("myapp:v1"), ref("myapp:latest")])
    assert sorted(tags_in(store)) == ["myapp:latest", "myapp:v1"]
    assert {image.digest for image in store.images()} == {layout.manifest_digest}


def test_a_reused_tag_moves(store, layouts):
    first = layouts.make([BASE, b"one"])
    second = layouts.make([BASE, b"two"])
    store.add_layout(first.path, [ref("myapp:v1")])
    store.add_layout(second.path, [ref("myapp:v1")])
    assert tags_in(store) == ["myapp:v1"]
    assert store.find(ref("myapp:v1")).digest == second.manifest_digest


def test_a_rebuild_keeps_other_tags(store, layouts):
    store.add_layout(layouts.make([BASE, b"one"]).path, [ref("myapp:v1"), ref("other:v1")])
    second = layouts.make([BASE, b"two"])
    store.add_layout(second.path, [ref("myapp:v1")])
    assert sorted(tags_in(store)) == ["myapp:v1", "other:v1"]
    assert store.find(ref("other:v1")).digest != second.manifest_digest


def test_shared_blobs_are_stored_once(store, layouts):
    first = layouts.make([BASE, b"one"])
    second = layouts.make([BASE, b"two"])
    store.add_layout(first.path, [ref("one:v1")])
    store.add_layout(second.path, [ref("two:v1")])
    expected = first.blob_digests | second.blob_digests
    assert len(expected) == len(first.blob_digests) + len(second.blob_digests) - 1
    assert stored_blobs(store) == expected
    assert len(list((store.root / "blobs" / "sha256").iterdir())) == len(expected)


def test_add_layout_rejects_a_layout_with_two_images(store, layouts):
    layout = layouts.make([BASE])
    index = json.loads((layout.path / "index.json").read_text())
    index["manifests"] *= 2
    (layout.path / "index.json").write_text(json.dumps(index))
    with pytest.raises(StoreError, match="expected one image"):
        store.add_layout(layout.path, [ref("app:v1")])
    assert tags_in(store) == []


# -- reading ------------------------------------------------------------------------------


def test_images_sorted_and_untagged_entries_left_out(store, layouts):
    store.add_layout(layouts.make([b"z"]).path, [ref("zed:v1")])
    store.add_layout(layouts.make([b"a"]).path, [ref("app:v2"), ref("app:v1")])
    index = index_of(store)
    index["manifests"].append({**index["manifests"][0], "annotations": {}})
    store.index_path.write_text(json.dumps(index))
    assert [str(image.ref) for image in store.images()] == ["app:v1", "app:v2", "zed:v1"]


def test_find(store, layouts):
    layout = layouts.make([BASE])
    store.add_layout(layout.path, [ref("team/app:v1")])
    assert store.find(ref("team/app:v1")).digest == layout.manifest_digest
    assert store.find(ref("team/app:v2")) is None
    assert store.find(ref("app:v1")) is None


def test_find_in_a_store_that_does_not_exist(tmp_path):
    store = Store(tmp_path / "missing")
    assert store.images() == []
    assert store.find(ref("app:v1")) is None
    assert not store.root.exists()  # reading creates nothing


def test_resolve_the_first_candidate_the_store_has(store, layouts):
    layout = layouts.make([BASE])
    store.add_layout(layout.path, [ref("myapp:v1.0.0")])
    image = store.resolve(["giteaadmin/myapp", "myapp"], "v1.0.0", None)
    assert image.ref == LocalRef("myapp", "v1.0.0")


def test_resolve_prefers_the_more_specific_name(store, layouts):
    store.add_layout(layouts.make([b"short"]).path, [ref("app:v1")])
    store.add_layout(layouts.make([b"long"]).path, [ref("team/app:v1")])
    assert str(store.resolve(["team/app", "app"], "v1", None).ref) == "team/app:v1"


def test_resolve_without_tag_is_latest(store, layouts):
    store.add_layout(layouts.make([BASE]).path, [ref("app:latest"), ref("app:v1")])
    assert store.resolve(["app"], None, None).ref.tag == "latest"


def test_resolve_by_digest(store, layouts):
    first = layouts.make([b"one"])
    second = layouts.make([b"two"])
    store.add_layout(first.path, [ref("app:v1")])
    store.add_layout(second.path, [ref("app:v2")])
    assert store.resolve(["app"], None, second.manifest_digest).ref.tag == "v2"
    with pytest.raises(ImageNotFound):
        store.resolve(["app"], "v1", second.manifest_digest)


def test_resolve_not_found_lists_close_names(store, layouts):
    store.add_layout(layouts.make([BASE]).path, [ref("myapp:v1.0.0")])
    with pytest.raises(ImageNotFound) as caught:
        store.resolve(["myap"], "v1.0.0", None)
    message = str(caught.value)
    assert message.startswith("image myap:v1.0.0 is not in the local store")
    assert str(store.root) in message
    assert "did you mean myapp:v1.0.0?" in message
    assert caught.value.exit_code == EXIT_NOT_FOUND


def test_resolve_not_found_lists_other_tags_of_a_candidate(store, layouts):
    store.add_layout(layouts.make([BASE]).path, [ref("myapp:v1.0.0")])
    with pytest.raises(ImageNotFound) as caught:
        store.resolve(["giteaadmin/myapp", "myapp"], "v2.0.0", None)
    assert "myapp:v1.0.0" in str(caught.value)


def test_resolve_in_an_empty_store_says_how_to_build(store):
    with pytest.raises(ImageNotFound) as caught:
        store.resolve(["myapp"], "v1", None)
    assert "idpwrap build" in str(caught.value)
    assert str(store.root) in str(caught.value)


def test_details(store, layouts):
    layout = layouts.make([BASE, b"app"], created="2024-05-01T12:00:00Z")
    image = store.add_layout(layout.path, [ref("app:v1")])
    details = store.details(image)
    assert details.blobs == [
        *[(digest, layout.sizes[digest]) for digest in layout.layer_digests],
        (layout.config_digest, layout.sizes[layout.config_digest]),
    ]
    assert details.size == sum(size for _, size in details.blobs)
    assert details.created == "2024-05-01T12:00:00Z"


def test_a_missing_blob_is_a_store_error(store, layouts):
    layout = layouts.make([BASE])
    image = store.add_layout(layout.path, [ref("app:v1")])
    store.blob_path(layout.config_digest).unlink()
    with pytest.raises(StoreError) as caught:
        store.details(image)
    assert layout.config_digest in str(caught.value)


def test_blob_path_rejects_odd_digests(store):
    with pytest.raises(StoreError):
        store.blob_path("sha256:../../etc/passwd")
    with pytest.raises(StoreError):
        store.blob_path("md5:abc")


# -- delete -------------------------------------------------------------------------------


def test_delete_removes_the_tag_and_only_unreferenced_blobs(store, layouts):
    first = layouts.make([BASE, b"one" * 50])
    second = layouts.make([BASE, b"two" * 70])
    store.add_layout(first.path, [ref("one:v1")])
    store.add_layout(second.path, [ref("two:v1")])
    freed = store.delete(ref("one:v1"))
    assert tags_in(store) == ["two:v1"]
    assert stored_blobs(store) == second.blob_digests  # the shared base layer stays
    only_first = first.blob_digests - second.blob_digests
    assert freed == sum(first.sizes[digest] for digest in only_first)
    assert store.details(store.find(ref("two:v1"))).size > 0  # still whole
    assert_no_leftovers(store)


def test_delete_one_of_two_tags_frees_nothing(store, layouts):
    layout = layouts.make([BASE])
    store.add_layout(layout.path, [ref("app:v1"), ref("app:latest")])
    assert store.delete(ref("app:v1")) == 0
    assert tags_in(store) == ["app:latest"]
    assert stored_blobs(store) == layout.blob_digests


def test_delete_the_last_tag_empties_the_store(store, layouts):
    layout = layouts.make([BASE, b"x"])
    store.add_layout(layout.path, [ref("app:v1")])
    assert store.delete(ref("app:v1")) == sum(layout.sizes.values())
    assert stored_blobs(store) == set()
    assert index_of(store)["manifests"] == []


def test_delete_an_unknown_tag(store, layouts):
    store.add_layout(layouts.make([BASE]).path, [ref("app:v1")])
    before = store.index_path.read_bytes()
    with pytest.raises(ImageNotFound) as caught:
        store.delete(ref("app:v2"))
    assert "app:v2" in str(caught.value)
    assert store.index_path.read_bytes() == before


def test_delete_during_a_push_keeps_the_blobs(store, layouts):
    layout = layouts.make([BASE])
    store.add_layout(layout.path, [ref("app:v1")])
    with store.reading():
        assert store.delete(ref("app:v1")) == 0
    assert tags_in(store) == []
    assert stored_blobs(store) == layout.blob_digests  # collected by a later delete or prune


# -- a damaged or unwritable store --------------------------------------------------------


@pytest.mark.parametrize("content", ["{not json", "[]", '{"schemaVersion": 2}', ""])
def test_a_corrupt_index_is_named_and_never_overwritten(store, layouts, content):
    store.index_path.write_text(content)
    with pytest.raises(StoreError) as caught:
        store.images()
    assert str(store.index_path) in str(caught.value)
    assert caught.value.exit_code == EXIT_STORE
    with pytest.raises(StoreError):
        store.add_layout(layouts.make([BASE]).path, [ref("app:v1")])
    with pytest.raises(StoreError):
        store.delete(ref("app:v1"))
    store.ensure()
    assert store.index_path.read_text() == content


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file modes")
def test_a_store_that_is_not_writable(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    root.chmod(0o500)
    try:
        with pytest.raises(StoreError) as caught:
            Store(root).ensure()
    finally:
        root.chmod(0o700)
    assert "--store" in str(caught.value)
    assert str(root) in str(caught.value)
    assert caught.value.exit_code == EXIT_STORE


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file modes")
def test_an_existing_store_made_read_only(store, layouts):
    store.root.chmod(0o500)
    try:
        with pytest.raises(StoreError) as caught:
            store.ensure()
        with pytest.raises(StoreError) as caught_add:
            store.add_layout(layouts.make([BASE]).path, [ref("app:v1")])
    finally:
        store.root.chmod(0o700)
    assert "--store" in str(caught.value)
    assert "--store" in str(caught_add.value)


def test_the_index_is_replaced_by_rename(store, layouts):
    inode = store.index_path.stat().st_ino
    store.add_layout(layouts.make([BASE]).path, [ref("app:v1")])
    assert store.index_path.stat().st_ino != inode  # a new file renamed over, not rewritten
    inode = store.index_path.stat().st_ino
    store.delete(ref("app:v1"))
    assert store.index_path.stat().st_ino != inode
    assert_no_leftovers(store)
    assert oct(store.index_path.stat().st_mode & 0o777) == oct(0o644)


def test_write_replacing_leaves_the_new_content_and_no_temporary_file(tmp_path):
    from idpwrap.store import layout

    target = tmp_path / "records.json"
    target.write_text("old")
    layout.write_replacing(target, b'{"new": 1}')
    assert target.read_bytes() == b'{"new": 1}'
    assert sorted(path.name for path in tmp_path.iterdir()) == ["records.json"]
    assert target.stat().st_mode & 0o777 == 0o644
