"""buildcache.py: the build fingerprint (what changes it, what does not) and its records."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from idpwrap.build import cache as buildcache
from idpwrap.build.cache import BuildInputs, fingerprint, remember, reuse
from idpwrap.refs import LocalRef
from idpwrap.store.api import StoredImage

DIGEST = "sha256:" + "b" * 64


@pytest.fixture
def context(tmp_path):
    directory = tmp_path / "ctx"
    directory.mkdir()
    (directory / "Containerfile").write_text("FROM scratch\nCOPY . /app\n")
    (directory / "app.txt").write_text("hello")
    (directory / "sub").mkdir()
    (directory / "sub" / "data.bin").write_bytes(b"\0" * 1000)
    return directory


@pytest.fixture
def tools(tmp_path):
    """A PATH with a buildah of known size and time."""
    directory = tmp_path / "bin"
    directory.mkdir()
    (directory / "buildah").write_text("#!/bin/sh\n")
    (directory / "buildah").chmod(0o755)
    return str(directory)


def inputs(context: Path, **changes) -> BuildInputs:
    values = {
        "context": context,
        "containerfile": context / "Containerfile",
        "build_args": {},
        "target": None,
        "labels": (),
        "platform": None,
        "secrets": (),
        "isolation": "chroot",
        "rootless": False,
    }
    values.update(changes)
    return BuildInputs(**values)


def digest_of(context, tools, images=(), **changes):
    found = fingerprint(inputs(context, **changes), list(images), buildah_path=tools)
    assert found.reason is None, found.reason
    return found.digest


def test_same_inputs_same_fingerprint(context, tools):
    assert digest_of(context, tools) == digest_of(context, tools)


def test_modification_time_alone_changes_nothing(context, tools):
    before = digest_of(context, tools)
    os.utime(context / "app.txt", (1, 1))
    assert digest_of(context, tools) == before


def test_a_copy_elsewhere_is_the_same_build(context, tools, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(context, copy)
    assert digest_of(copy, tools) == digest_of(context, tools)


@pytest.mark.parametrize(
    "change",
    [
        lambda c: (c / "app.txt").write_text("hellO"),
        lambda c: (c / "new.txt").write_text(""),
        lambda c: (c / "sub" / "data.bin").unlink(),
        lambda c: (c / "app.txt").chmod(0o600),
        lambda c: (c / "emptydir").mkdir(),
        lambda c: os.symlink("app.txt", c / "link"),
        lambda c: (c / "Containerfile").write_text("FROM scratch\nCOPY . /srv\n"),
        lambda c: (c / ".containerignore").write_text("nothing-matches\n"),
    ],
)
def test_what_changes_the_fingerprint(context, tools, change):
    before = digest_of(context, tools)
    change(context)
    assert digest_of(context, tools) != before


@pytest.mark.parametrize(
    "changes",
    [
        {"build_args": {"A": "1"}},
        {"target": "stage"},
        {"labels": ("a=b",)},
        {"platform": "linux/arm64"},
        {"isolation": "oci"},
        {"rootless": True},
    ],
)
def test_options_change_the_fingerprint(context, tools, changes):
    assert digest_of(context, tools, **changes) != digest_of(context, tools)


def test_ignored_files_do_not_count(context, tools):
    (context / ".containerignore").write_text("*.log\n.git\n")
    (context / ".git").mkdir()
    before = digest_of(context, tools)
    (context / "debug.log").write_text("noise")
    (context / ".git" / "HEAD").write_text("ref: refs/heads/x")
    assert digest_of(context, tools) == before


def test_a_new_buildah_changes_the_fingerprint(context, tools):
    before = digest_of(context, tools)
    (Path(tools) / "buildah").write_text("#!/bin/sh\n# 1.29\n")
    assert digest_of(context, tools) != before


def test_secrets_count_by_content_hash_only(context, tools, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("first-secret")
    before = digest_of(context, tools, secrets=(("token", secret),))
    secret.write_text("other-secret")
    after = digest_of(context, tools, secrets=(("token", secret),))
    assert before != after


@pytest.mark.parametrize(
    ("containerfile", "reason"),
    [
        ("FROM debian:bookworm\n", "base debian:bookworm is neither pinned"),
        ("FROM scratch\nADD https://example.com/a.tgz /a\n", "network"),
        ("FROM scratch\nCOPY --from=tools /t /t\n", "base tools is neither pinned"),
    ],
)
def test_unpinned_inputs_always_build(context, tools, containerfile, reason):
    (context / "Containerfile").write_text(containerfile)
    found = fingerprint(inputs(context), [], buildah_path=tools)
    assert found.digest is None
    assert reason in found.reason


def test_a_base_pinned_by_digest(context, tools):
    (context / "Containerfile").write_text(f"FROM debian@{DIGEST}\n")
    assert digest_of(context, tools)


def test_a_base_in_the_store_counts_by_its_digest(context, tools):
    (context / "Containerfile").write_text("FROM base:v1\nCOPY . /app\n")
    first = StoredImage(LocalRef("base", "v1"), {"digest": DIGEST})
    moved = StoredImage(LocalRef("base", "v1"), {"digest": "sha256:" + "c" * 64})
    assert digest_of(context, tools, [first]) != digest_of(context, tools, [moved])


def test_preprocessed_containerfile_always_builds(context, tools):
    shutil.copy(context / "Containerfile", context / "Containerfile.in")
    found = fingerprint(
        inputs(context, containerfile=context / "Containerfile.in"), [], buildah_path=tools
    )
    assert found.digest is None and "cpp" in found.reason


def test_fifo_is_not_opened(context, tools):
    os.mkfifo(context / "pipe")
    assert digest_of(context, tools)  # would block if it were read


# -- records -----------------------------------------------------------------------------------


def test_remember_and_reuse(store, layouts):
    image = store.add_layout(layouts.make([b"layer"]).path, [LocalRef("app", "v1")])
    remember(store, "f" * 64, image)
    reused = reuse(store, "f" * 64, [LocalRef("app", "v2"), LocalRef("other", "latest")])
    assert reused.digest == image.digest
    assert {str(i.ref) for i in store.images()} == {"app:v1", "app:v2", "other:latest"}
    assert reuse(store, "e" * 64, [LocalRef("app", "v3")]) is None


def test_a_record_whose_image_is_gone_is_ignored(store, layouts):
    image = store.add_layout(layouts.make([b"layer"]).path, [LocalRef("app", "v1")])
    remember(store, "f" * 64, image)
    store.delete(LocalRef("app", "v1"))
    assert reuse(store, "f" * 64, [LocalRef("app", "v1")]) is None
    assert store.images() == []


def test_a_record_with_a_damaged_blob_is_ignored(store, layouts):
    layout = layouts.make([b"layer"])
    image = store.add_layout(layout.path, [LocalRef("app", "v1")])
    remember(store, "f" * 64, image)
    store.blob_path(layout.layer_digests[0]).write_bytes(b"lay")  # truncated
    assert reuse(store, "f" * 64, [LocalRef("app", "v2")]) is None


def test_records_drop_images_no_tag_names(store, layouts):
    first = store.add_layout(layouts.make([b"one"]).path, [LocalRef("app", "v1")])
    remember(store, "1" * 64, first)
    store.delete(LocalRef("app", "v1"))
    second = store.add_layout(layouts.make([b"two"]).path, [LocalRef("app", "v2")])
    remember(store, "2" * 64, second)
    records = json.loads((store.root / buildcache.RECORDS_FILE).read_text())["builds"]
    assert set(records) == {"2" * 64}
    assert records["2" * 64]["digest"] == second.digest


def test_unreadable_records_are_ignored(store, layouts):
    (store.root / buildcache.RECORDS_FILE).write_text("{not json")
    assert reuse(store, "f" * 64, [LocalRef("app", "v1")]) is None
    image = store.add_layout(layouts.make([b"layer"]).path, [LocalRef("app", "v1")])
    remember(store, "f" * 64, image)  # replaces the damaged file
    assert reuse(store, "f" * 64, [LocalRef("app", "v2")]).digest == image.digest
