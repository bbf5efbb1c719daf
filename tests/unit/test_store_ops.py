"""store.py beyond add/find/delete: tag, rmi of several, prune, locked temporary directories,
lookup, whole-image checks, and concurrent writers (real processes, one store)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os

import pytest

from idpwrap.errors import ImageNotFound, StoreError
from idpwrap.refs import LocalRef
from idpwrap.store.api import Store
from idpwrap.store.layout import layout_is_whole, walk_blobs

REF_NAME = "org.opencontainers.image.ref.name"
BASE = b"a base layer both images use" * 200


def ref(text: str) -> LocalRef:
    name, tag = text.rsplit(":", 1)
    return LocalRef(name, tag)


def tags_in(store: Store) -> list[str]:
    index = json.loads(store.index_path.read_text())
    return sorted(entry["annotations"][REF_NAME] for entry in index["manifests"])


def blob_names(store: Store) -> set[str]:
    return {f"sha256:{path.name}" for path in store.blob_dir.iterdir()}


def snapshot(store: Store) -> dict[str, bytes]:
    return {
        str(path.relative_to(store.root)): path.read_bytes()
        for path in sorted(store.root.rglob("*"))
        if path.is_file() and not path.name.startswith(".idpwrap")
    }


# -- tag ----------------------------------------------------------------------------------


def test_tag_adds_names_and_moves_an_existing_one(store, layouts):
    one = store.add_layout(layouts.make([b"one"]).path, [ref("one:v1")])
    two = store.add_layout(layouts.make([b"two"]).path, [ref("two:v1")])
    inode = store.index_path.stat().st_ino
    store.tag(one, [ref("one:latest"), ref("two:v1"), ref("one:latest")])
    assert tags_in(store) == ["one:latest", "one:v1", "two:v1"]
    assert store.find(ref("two:v1")).digest == one.digest != two.digest
    assert store.index_path.stat().st_ino != inode  # replaced whole


def test_tag_of_an_image_removed_meanwhile(store, layouts):
    image = store.add_layout(layouts.make([b"one"]).path, [ref("one:v1")])
    store.delete(ref("one:v1"))
    before = store.index_path.read_bytes()
    with pytest.raises(ImageNotFound):
        store.tag(image, [ref("again:v1")])
    assert store.index_path.read_bytes() == before


# -- delete_many ----------------------------------------------------------------------------


def test_delete_many_is_all_or_nothing(store, layouts):
    store.add_layout(layouts.make([b"one"]).path, [ref("one:v1")])
    before = snapshot(store)
    with pytest.raises(ImageNotFound) as caught:
        store.delete_many([ref("one:v1"), ref("missing:v1")])
    assert "missing:v1" in str(caught.value)
    assert snapshot(store) == before


def test_delete_many_reports_what_each_tag_alone_used(store, layouts):
    first = layouts.make([BASE, b"first only" * 30])
    second = layouts.make([BASE, b"second only" * 40])
    store.add_layout(first.path, [ref("one:v1")])
    store.add_layout(second.path, [ref("two:v1")])
    orphan = store.blob_dir / ("ef" * 32)
    orphan.write_bytes(b"left by a killed build")
    freed, orphans, collected = store.delete_many([ref("one:v1"), ref("two:v1"), ref("one:v1")])
    assert collected
    assert [str(tag) for tag, _ in freed] == ["one:v1", "two:v1"]
    assert freed[0][1] == sum(first.sizes[d] for d in first.blob_digests - second.blob_digests)
    assert freed[1][1] == sum(second.sizes.values())  # the base went with the last user
    assert orphans == (0, 0, 1, len(b"left by a killed build"))
    assert blob_names(store) == set()
    assert tags_in(store) == []


def test_delete_many_tells_a_moved_tags_old_image_from_an_interruptions_blobs(store, layouts):
    """A rebuild moves the tag; its old image's blobs are "no tag uses any more", not blobs
    that interrupted commands left."""
    old = layouts.make([BASE, b"the old build" * 30])
    new = layouts.make([BASE, b"the new build" * 30])
    store.add_layout(old.path, [ref("app:v1")])
    store.add_layout(new.path, [ref("app:v1")])  # the rebuild: the tag moves
    store.add_layout(layouts.make([b"other" * 9]).path, [ref("other:v1")])
    (store.blob_dir / ("ef" * 32)).write_bytes(b"left by a killed build")
    _, orphans, collected = store.delete_many([ref("other:v1")])
    assert collected
    only_old = old.blob_digests - new.blob_digests
    assert orphans.untagged == len(only_old)
    assert orphans.untagged_bytes == sum(old.sizes[d] for d in only_old)
    assert (orphans.stray, orphans.stray_bytes) == (1, len(b"left by a killed build"))
    assert blob_names(store) == new.blob_digests


def test_delete_many_while_a_push_reads_collects_nothing(store, layouts):
    layout = layouts.make([BASE])
    store.add_layout(layout.path, [ref("one:v1")])
    with store.reading():
        freed, _, collected = store.delete_many([ref("one:v1")])
    assert not collected and freed == [(ref("one:v1"), 0)]
    assert blob_names(store) == layout.blob_digests
    assert store.prune().blobs == len(layout.blob_digests)


def test_a_corrupt_manifest_stops_collection(store, layouts):
    first = layouts.make([b"one"])
    store.add_layout(first.path, [ref("one:v1")])
    store.add_layout(layouts.make([b"two"]).path, [ref("two:v1")])
    store.blob_path(first.manifest_digest).write_text("{cut sh")
    _, _, collected = store.delete_many([ref("two:v1")])
    assert not collected  # one:v1's layers are unknown: nothing may go
    with pytest.raises(StoreError) as caught:
        store.prune()
    assert first.manifest_digest.split(":")[1] in str(caught.value)
    assert "rmi" in str(caught.value)
    assert first.blob_digests <= blob_names(store)


# -- prune --------------------------------------------------------------------------------


def make_leftovers(store: Store) -> None:
    (store.root / ".index.json.1a2b3c4d5e6f").write_text('{"half":')
    (store.root / ".oci-layout.0a0b0c0d0e0f").write_text("")
    (store.blob_dir / ".partial-blob").write_bytes(b"x" * 10)


def temp_dir_of_a_dead_process(store: Store) -> str:
    """A temporary directory whose process was killed: its lock is gone with it."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        path = store.temp_dir("build")
        (path / "layout").mkdir()
        (path / "layout" / "blob").write_bytes(b"y" * 100)
        os.write(write, str(path).encode())
        os._exit(0)
    os.close(write)
    path = os.read(read, 4096).decode()
    os.close(read)
    os.waitpid(pid, 0)
    return path


def test_prune_removes_orphans_and_leftovers_of_dead_processes_only(store, layouts):
    kept = layouts.make([BASE])
    store.add_layout(kept.path, [ref("kept:v1")])
    gone = layouts.make([b"gone" * 100])
    store.add_layout(gone.path, [ref("gone:v1")])
    with store.reading():
        store.delete(ref("gone:v1"))  # collection skipped: orphans stay
    make_leftovers(store)
    dead = temp_dir_of_a_dead_process(store)
    alive = store.temp_dir("load")  # this process, still working in it
    waited = []
    report = store.prune(on_wait=lambda: waited.append(True))
    orphans = gone.blob_digests - kept.blob_digests
    assert report.blobs == len(orphans) + 1  # and the stray .partial-blob
    assert report.untagged == len(orphans), "the removed tag's image, not an interruption's"
    assert report.untagged_bytes == sum(gone.sizes[d] for d in orphans)
    assert report.blob_bytes == sum(gone.sizes[d] for d in orphans) + 10
    assert report.leftovers == 3 and report.leftover_bytes == 8 + 100
    assert report.freed == report.blob_bytes + report.leftover_bytes
    assert not waited
    assert blob_names(store) == kept.blob_digests
    assert not os.path.exists(dead)
    assert alive.is_dir()
    assert {p.name for p in store.root.iterdir()} <= {
        "oci-layout", "index.json", "blobs", ".idpwrap.lock", ".idpwrap.gc.lock", ".idpwrap.tmp"
    }  # fmt: skip
    store.release(alive)
    assert not alive.exists()
    assert store.prune() == (0, 0, 0, 0, 0, 0)


def test_prune_leaves_the_directory_of_a_live_process(store):
    read, write = os.pipe()
    done_read, done_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        path = store.temp_dir("build")
        os.write(write, str(path).encode())
        os.read(done_read, 1)
        os._exit(0)
    path = os.read(read, 4096).decode()
    try:
        assert store.prune().leftovers == 0
        assert os.path.isdir(path)
    finally:
        os.write(done_write, b"x")
        os.waitpid(pid, 0)
    assert store.prune().leftovers == 1
    assert not os.path.exists(path)


def test_prune_of_a_store_that_does_not_exist(tmp_path):
    store = Store(tmp_path / "nothing")
    assert store.prune() == (0, 0, 0, 0, 0, 0)
    assert not store.root.exists()


def test_prune_never_runs_on_a_corrupt_index(store, layouts):
    store.add_layout(layouts.make([BASE]).path, [ref("app:v1")])
    store.index_path.write_text('{"manifests": [')
    before = blob_names(store)
    with pytest.raises(StoreError) as caught:
        store.prune()
    assert str(store.index_path) in str(caught.value)
    assert blob_names(store) == before


# -- whole images only --------------------------------------------------------------------


def test_add_layout_refuses_an_incomplete_image_and_changes_nothing(store, layouts):
    store.add_layout(layouts.make([BASE]).path, [ref("kept:v1")])
    before = snapshot(store)
    broken = layouts.make([b"layer one", b"layer two"])
    (broken.path / "blobs" / "sha256" / broken.layer_digests[1].split(":")[1]).unlink()
    with pytest.raises(StoreError, match="incomplete"):
        store.add_layout(broken.path, [ref("broken:v1")])
    short = layouts.make([b"layer three"])
    (short.path / "blobs" / "sha256" / short.layer_digests[0].split(":")[1]).write_bytes(b"x")
    with pytest.raises(StoreError, match="damaged"):
        store.add_layout(short.path, [ref("short:v1")])
    assert snapshot(store) == before


def test_layout_is_whole(layouts):
    layout = layouts.make([b"layer"])
    assert layout_is_whole(layout.path)
    blob = layout.path / "blobs" / "sha256" / layout.layer_digests[0].split(":")[1]
    blob.write_bytes(b"LAYER")  # same size, other bytes
    assert not layout_is_whole(layout.path)
    blob.unlink()
    assert not layout_is_whole(layout.path)
    assert not layout_is_whole(layout.path / "missing")


def test_walk_blobs_follows_indexes_and_skips_missing_ones(layouts):
    layout = layouts.make([b"a", b"b"])
    blob_dir = layout.path / "blobs" / "sha256"
    manifest = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": layout.manifest_digest,
        "size": layout.sizes[layout.manifest_digest],
    }
    index = json.dumps({"schemaVersion": 2, "manifests": [manifest]})
    index_digest = "sha256:" + hashlib.sha256(index.encode()).hexdigest()
    (blob_dir / index_digest.split(":")[1]).write_text(index)
    top = [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest}]
    assert set(walk_blobs(top, blob_dir)) == layout.blob_digests | {index_digest}
    missing = [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:" + "0" * 64}]  # fmt: skip
    assert set(walk_blobs(missing, blob_dir)) == {"sha256:" + "0" * 64}
    with pytest.raises(StoreError):
        walk_blobs(missing, blob_dir, strict=True)


# -- lookup -------------------------------------------------------------------------------


def test_lookup_by_name_digest_and_prefix(store, layouts):
    image = store.add_layout(layouts.make([b"one"]).path, [ref("team/app:v1"), ref("app:latest")])
    hex_digest = image.digest.split(":")[1]
    assert str(store.lookup("team/app:v1").ref) == "team/app:v1"
    assert str(store.lookup("app").ref) == "app:latest"
    assert store.lookup(image.digest).digest == image.digest
    assert store.lookup(hex_digest[:12]).digest == image.digest
    assert str(store.lookup(f"team/app@{image.digest}").ref) == "team/app:v1"
    with pytest.raises(ImageNotFound):
        store.lookup("sha256:" + "0" * 64)
    with pytest.raises(ImageNotFound):
        store.lookup("team/app:v2")


def test_lookup_by_digest_names_the_first_tag_and_asks_for_a_longer_prefix(store, layouts):
    image = store.add_layout(layouts.make([b"one"]).path, [ref("zz:v1"), ref("aa:v1")])
    store.tag(image, [ref("mm:v1")])
    hex_digest = image.digest.split(":")[1]
    for text in (image.digest, hex_digest[:12]):
        assert str(store.lookup(text).ref) == "aa:v1", "the tag sorting first, every time"
    with pytest.raises(ImageNotFound) as caught:
        store.lookup(hex_digest[:5])
    assert str(caught.value) == (
        f"{hex_digest[:5]} is not a tag, and too short a digest prefix: give 12 or more hex"
        f" digits of the digest, e.g. {hex_digest[:12]}"
    )
    with pytest.raises(ImageNotFound, match="is not in the local store"):
        store.lookup("fff")  # neither a tag nor the start of a digest here


def test_an_ambiguous_digest_prefix_asks_for_more_of_it(store, monkeypatch):
    from idpwrap.store.api import StoredImage

    images = [
        StoredImage(ref(f"app:v{n}"), {"digest": f"sha256:{'ab' * 6}{n}{'0' * 51}"}) for n in (1, 2)
    ]
    monkeypatch.setattr(store, "images", lambda: images)
    with pytest.raises(ImageNotFound, match=r"matches 2 images .*: give more of the digest"):
        store.lookup("ab" * 6)
    assert str(store.lookup("ab" * 6 + "2").ref) == "app:v2"


def test_a_manifest_entry_without_digest_is_corruption(store):
    store.index_path.write_text('{"schemaVersion": 2, "manifests": [{"size": 3}]}')
    with pytest.raises(StoreError, match="corrupt"):
        store.images()


# -- temporary directories ----------------------------------------------------------------


def test_temp_dirs_are_private_and_released(store):
    with store.working_dir("build") as path:
        assert path.parent == store.root / ".idpwrap.tmp"
        assert path.name.startswith(f"build-{os.getpid()}-")
        assert oct(path.stat().st_mode & 0o777) == oct(0o700)
        (path / "file").write_text("x")
    assert not path.exists()


# -- concurrent writers -------------------------------------------------------------------


def _add_in_a_process(root: str, layout: str, tag: str) -> None:
    Store(__import__("pathlib").Path(root)).add_layout(
        __import__("pathlib").Path(layout), [ref(tag)]
    )


def test_concurrent_writers_all_land(store, layouts):
    made = [layouts.make([BASE, f"image {n}".encode() * 100]) for n in range(8)]
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_add_in_a_process, args=(str(store.root), str(m.path), f"app:v{n}"))
        for n, m in enumerate(made)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    assert tags_in(store) == sorted(f"app:v{n}" for n in range(8))
    for path in store.blob_dir.iterdir():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
    assert blob_names(store) == set().union(*(m.blob_digests for m in made))
