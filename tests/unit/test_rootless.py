"""rootless.py: the storage driver and place, and what a rootless build needs first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from idpwrap.errors import EXIT_SETUP, SetupError
from idpwrap.tools import rootless
from idpwrap.tools.rootless import (
    Storage,
    choose_driver,
    filesystem_type,
    fix_command,
    kernel_version,
    rootless_problems,
    runroot_for,
    subid_from_nss,
    subordinate_ranges,
)

SUBUID = "alice:100000:65536\nbob:165536:65536\n"


def drivers(**overrides):
    facts = {
        "rootless": True,
        "kernel": (6, 1),
        "fs_type": "ext4",
        "fuse_program": "/usr/bin/fuse-overlayfs",
        "fuse_usable": True,
        "environ": {},
    }
    facts.update(overrides)
    return choose_driver(**facts)


@pytest.mark.parametrize(
    ("release", "expected"),
    [("6.1.0-18-amd64", (6, 1)), ("5.13.0", (5, 13)), ("4.19.0-26", (4, 19)), ("6", (6, 0))],
)
def test_kernel_version(release, expected):
    assert kernel_version(release) == expected


def test_native_overlay_rootless_on_a_new_kernel():
    driver, program, why = drivers()
    assert (driver, program) == ("overlay", None)
    assert "5.13" in why


def test_native_overlay_as_root_whatever_the_kernel():
    assert drivers(rootless=False, kernel=(4, 19))[:2] == ("overlay", None)


def test_fuse_overlayfs_on_an_old_kernel():
    driver, program, why = drivers(kernel=(5, 10))
    assert (driver, program) == ("overlay", "/usr/bin/fuse-overlayfs")
    assert "fuse-overlayfs" in why


def test_fuse_overlayfs_when_the_filesystem_is_overlay():
    # e.g. inside a container: the kernel's overlay cannot stack on overlayfs
    assert drivers(rootless=False, fs_type="overlay")[:2] == ("overlay", "/usr/bin/fuse-overlayfs")


def test_vfs_when_nothing_else_works():
    driver, program, why = drivers(kernel=(5, 4), fuse_program=None)
    assert (driver, program) == ("vfs", None)
    assert "apt-get install fuse-overlayfs" in why
    assert drivers(kernel=(5, 4), fuse_usable=False)[0] == "vfs"


def test_storage_driver_variable_wins():
    assert drivers(environ={"STORAGE_DRIVER": "vfs"})[:2] == ("vfs", None)


def test_storage_argv():
    storage = Storage(Path("/d/root"), Path("/run/r"), "overlay", "/usr/bin/fuse-overlayfs", "")
    assert storage.argv() == [
        "--root", "/d/root", "--runroot", "/run/r", "--storage-driver", "overlay",
        "--storage-opt", "overlay.mount_program=/usr/bin/fuse-overlayfs",
    ]  # fmt: skip
    assert "--storage-opt" not in storage._replace(mount_program=None).argv()


def test_filesystem_type_from_mountinfo(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "mm").mkdir()
    mountinfo = (
        "22 1 0:21 / / rw,relatime - ext4 /dev/vda1 rw\n"
        f"23 22 0:22 / {tmp_path}/m rw - overlay overlay rw,lowerdir=/a\n"
        f"24 22 0:23 / {tmp_path}/mm rw - tmpfs tmpfs rw\n"
    )
    # the nearest existing directory decides: the storage root may not exist yet
    assert filesystem_type(tmp_path / "m" / "not" / "yet", mountinfo) == "overlay"
    assert filesystem_type(tmp_path / "mm", mountinfo) == "tmpfs"
    assert filesystem_type(tmp_path, mountinfo) == "ext4"


def test_runroot_is_per_storage_root(tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    first = runroot_for(Path("/a/storage"), env, 1000)
    assert first.parent == runtime
    assert first != runroot_for(Path("/b/storage"), env, 1000)
    assert first == runroot_for(Path("/a/storage"), env, 1000)


def test_runroot_without_runtime_dir():
    assert runroot_for(Path("/a"), {}, 0).parent == Path("/run")
    user = runroot_for(Path("/a"), {"TMPDIR": "/scratch"}, 1000)
    assert user.parent == Path("/scratch/idpwrap-run-1000")


def test_a_shared_directory_of_someone_else_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "idpwrap-run-1000"
    link.symlink_to(target)
    with pytest.raises(SetupError, match="is not a directory owned by you"):
        rootless.ensure_private_directory(link, os.geteuid())
    with pytest.raises(SetupError, match="is not a directory owned by you"):
        rootless.ensure_private_directory(tmp_path, os.geteuid() + 1)


def test_default_storage_is_under_the_data_home(tmp_path):
    storage = rootless.default_storage({"XDG_DATA_HOME": str(tmp_path), "PATH": "/nowhere"})
    assert storage.root == tmp_path / "idpwrap" / "buildah"
    assert storage.driver in ("overlay", "vfs")
    assert storage.mount_program is None  # no fuse-overlayfs on that PATH


# -- subordinate IDs ---------------------------------------------------------------------------


def test_subordinate_ranges_by_name_or_uid():
    text = "alice:100000:65536\n1001:300000:1000\n# comment\nbroken\nalice:x:1\n"
    assert subordinate_ranges(text, "alice", 1000) == [(100000, 65536)]
    assert subordinate_ranges(text, "carol", 1001) == [(300000, 1000)]
    assert subordinate_ranges(text, "dave", 1002) == []


def test_fix_command_picks_a_free_range():
    assert fix_command("carol", SUBUID, "") == (
        "usermod --add-subuids 231072-296607 --add-subgids 231072-296607 carol"
    )
    assert fix_command("carol", "", "") == (
        "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 carol"
    )


def test_subid_from_nss():
    assert subid_from_nss("passwd: files\nsubid: sss\n")
    assert not subid_from_nss("passwd: files\nsubid: files\n")
    assert not subid_from_nss("passwd: files\n# subid: sss\n")


def problems(**overrides):
    facts = {"user": "carol", "uid": 1002, "subuid_text": SUBUID, "subgid_text": SUBUID}
    facts.update(overrides)
    return rootless_problems(**facts)


def test_ready_user_has_no_problems():
    assert problems(user="alice", uid=1000) == []


def test_missing_subordinate_ids_are_fatal_with_the_fix():
    (problem,) = problems()
    assert problem.fatal
    assert problem.message == (
        "user carol has no subordinate IDs in /etc/subuid and /etc/subgid, which a rootless"
        " build needs"
    )
    assert problem.fix == (
        "as root: usermod --add-subuids 231072-296607 --add-subgids 231072-296607 carol"
    )


def test_missing_only_in_subgid():
    (problem,) = problems(user="alice", uid=1000, subgid_text="bob:165536:65536\n")
    assert "in /etc/subgid," in problem.message


def test_too_few_ids_is_a_warning():
    (problem,) = problems(subuid_text="carol:100000:1000\n", subgid_text="carol:100000:65536\n")
    assert not problem.fatal
    assert "fewer than 65536" in problem.message


def test_ids_from_nss_are_trusted():
    assert problems(nsswitch_text="subid: sss\n") == []


def test_user_namespaces_and_uidmap():
    found = problems(
        user="alice",
        uid=1000,
        max_user_namespaces="0\n",
        unprivileged_userns_clone="0\n",
        newuidmap=None,
    )
    assert [p.fix for p in found] == [
        "as root: sysctl -w user.max_user_namespaces=28633",
        "as root: sysctl -w kernel.unprivileged_userns_clone=1",
        "as root: apt-get install uidmap",
    ]
    assert all(p.fatal for p in found)


def test_check_ready_raises_the_first_fatal_problem(monkeypatch):
    monkeypatch.setattr(rootless, "is_rootless", lambda: True)
    monkeypatch.setattr(rootless, "current_problems", lambda environ=None: problems())
    with pytest.raises(SetupError) as caught:
        rootless.check_ready()
    assert caught.value.exit_code == EXIT_SETUP
    assert str(caught.value).endswith("--add-subgids 231072-296607 carol")
    assert "\n" not in str(caught.value)


def test_check_ready_as_root_checks_nothing(monkeypatch):
    monkeypatch.setattr(rootless, "is_rootless", lambda: False)
    monkeypatch.setattr(rootless, "current_problems", lambda environ=None: problems())
    rootless.check_ready()
