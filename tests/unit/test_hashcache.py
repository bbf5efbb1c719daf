"""hashcache.py: a file's digest reused only while its bytes cannot have changed."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from idpwrap.build import hashcache
from idpwrap.build.cache import BuildInputs, fingerprint

OLD = 1_600_000_000 * 10**9 + 123_456_789  # a time long before any test runs


def stat_of(path: Path, **times: int) -> os.stat_result:
    """``path``'s lstat with some fields replaced (the times a file system could give)."""
    info = os.lstat(path)
    fields = list(info)
    values = {
        "st_mtime_ns": info.st_mtime_ns,
        "st_ctime_ns": info.st_ctime_ns,
        "st_size": info.st_size,
        **times,
    }
    # os.stat_result: the first ten are the tuple; the *_ns fields follow by name only.
    fields[6] = values["st_size"]
    extra = {"st_mtime_ns": values["st_mtime_ns"], "st_ctime_ns": values["st_ctime_ns"]}
    extra["st_atime_ns"] = info.st_atime_ns
    return os.stat_result(fields[:10], extra)


def old_stat(path: Path) -> os.stat_result:
    return stat_of(path, st_mtime_ns=OLD, st_ctime_ns=OLD)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_an_old_file_is_read_once_across_builds(tmp_path):
    file = tmp_path / "a.txt"
    file.write_bytes(b"one")
    info = stat_of(file, st_mtime_ns=OLD, st_ctime_ns=OLD)
    first = hashcache.for_context(tmp_path / "store", "/ctx")
    assert first.digest("a.txt", str(file), info) == sha(b"one")
    first.save()
    # The bytes change behind the cache's back, the stat key stays: the kept digest answers,
    # which shows that the second build did not read the file.
    file.write_bytes(b"two")
    second = hashcache.for_context(tmp_path / "store", "/ctx")
    assert second.digest("a.txt", str(file), info) == sha(b"one")
    assert second.hashed == 0


def test_changed_content_with_equal_size_and_mtime_is_detected(tmp_path):
    """The same size, the modification time set back: the change time moved, so it is read."""
    file = tmp_path / "a.txt"
    file.write_bytes(b"one")
    os.utime(file, ns=(OLD, OLD))
    cache = hashcache.for_context(tmp_path / "store", "/ctx")
    before = os.lstat(file)
    cache.digest("a.txt", str(file), stat_of(file, st_ctime_ns=OLD))
    cache.save()
    file.write_bytes(b"two")
    os.utime(file, ns=(OLD, OLD))
    after = os.lstat(file)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    again = hashcache.for_context(tmp_path / "store", "/ctx")
    assert again.digest("a.txt", str(file), after) == sha(b"two")
    assert again.hashed == 1


@pytest.mark.parametrize("field", ["st_size", "st_mtime_ns", "st_ctime_ns"])
def test_any_field_of_the_key_makes_it_read_again(tmp_path, field):
    file = tmp_path / "a.txt"
    file.write_bytes(b"one")
    info = stat_of(file, st_mtime_ns=OLD, st_ctime_ns=OLD)
    cache = hashcache.for_context(tmp_path / "store", "/ctx")
    cache.digest("a.txt", str(file), info)
    cache.save()
    file.write_bytes(b"two")
    times = {"st_mtime_ns": OLD, "st_ctime_ns": OLD, field: getattr(info, field) + 1}
    moved = stat_of(file, **times)
    again = hashcache.for_context(tmp_path / "store", "/ctx")
    assert again.digest("a.txt", str(file), moved) == sha(b"two")


def test_a_racy_file_is_never_kept(tmp_path):
    """Times within the clock's granularity of the hashing: a write in the same tick could keep
    every field of the key, so the digest is not kept, in this process or on disk."""
    file = tmp_path / "a.txt"
    file.write_bytes(b"one")
    now = time.time_ns()
    racy = stat_of(file, st_mtime_ns=now, st_ctime_ns=now)
    cache = hashcache.for_context(tmp_path / "store", "/ctx")
    assert cache.digest("a.txt", str(file), racy) == sha(b"one")
    file.write_bytes(b"two")  # the same size; the test hands the same times again
    assert cache.digest("a.txt", str(file), racy) == sha(b"two")
    cache.save()
    assert not (tmp_path / "store" / hashcache.HASHES_DIR).exists()
    assert hashcache.for_context(tmp_path / "store", "/ctx").digest(
        "a.txt", str(file), racy
    ) == sha(b"two")


def test_the_racy_rule():
    now = 1_700_000_000 * 10**9 + 500_000_000
    young = os.stat_result((0,) * 10, {"st_mtime_ns": now - 10_000_000, "st_ctime_ns": OLD})
    old = os.stat_result((0,) * 10, {"st_mtime_ns": OLD, "st_ctime_ns": now - 10**9})
    assert hashcache.is_racy(young, now)
    assert not hashcache.is_racy(old, now)
    # whole seconds: a file system with coarse times gets the wider window
    second = (now // 10**9 - 1) * 10**9
    coarse = os.stat_result((0,) * 10, {"st_mtime_ns": second, "st_ctime_ns": second})
    assert hashcache.is_racy(coarse, now)
    # the change time counts as much as the modification time (touch -d sets only the latter)
    touched = os.stat_result((0,) * 10, {"st_mtime_ns": OLD, "st_ctime_ns": now})
    assert hashcache.is_racy(touched, now)


def test_deleted_files_leave_the_cache_and_a_torn_file_is_ignored(tmp_path):
    store = tmp_path / "store"
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(name.encode())
    cache = hashcache.for_context(store, "/ctx")
    for name in ("a", "b"):
        cache.digest(name, str(tmp_path / name), old_stat(tmp_path / name))
    cache.save()
    only_a = hashcache.for_context(store, "/ctx")
    only_a.digest("a", str(tmp_path / "a"), old_stat(tmp_path / "a"))
    only_a.changed = True  # as when one file was read anew
    only_a.save()
    assert set(hashcache.for_context(store, "/ctx").kept) == {"a"}
    (path,) = (store / hashcache.HASHES_DIR).iterdir()
    path.write_text('{"version": 2, "files": {"a": "1:2')
    assert hashcache.for_context(store, "/ctx").kept == {}
    assert hashcache.for_context(store, "/other").kept == {}


def test_the_fingerprint_follows_content_through_the_cache(tmp_path):
    """Two builds through kept digests: the fingerprint changes with the content, not with a
    file's times alone."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text("FROM scratch\nCOPY . /\n")
    (context / "a.txt").write_text("one")
    for name in ("Containerfile", "a.txt"):
        os.utime(context / name, ns=(OLD, OLD))
    tools = tmp_path / "bin"
    tools.mkdir()
    inputs = BuildInputs(
        context, context / "Containerfile", {}, None, (), None, (), "chroot", False
    )

    def build() -> str | None:
        cache = hashcache.for_context(tmp_path / "store", context)
        found = fingerprint(inputs, [], buildah_path=str(tools), hashes=cache)
        cache.save()
        return found.digest

    first = build()
    assert build() == first
    (context / "a.txt").write_text("two")
    os.utime(context / "a.txt", ns=(OLD, OLD))
    second = build()
    assert second != first
    (context / "a.txt").write_text("one")
    os.utime(context / "a.txt", ns=(OLD + 1, OLD + 1))
    assert build() == first
