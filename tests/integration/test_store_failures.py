"""The store when things go wrong: a corrupt index.json, a store that cannot be written (another
user's, a read-only mount), a disk that fills up during save or load. Each gives one clear
line and its exit code, and the store (or the archive) is left exactly as it was."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testing.cli import Cli, Result, make_cli
from testing.otheruser import make_readable_install, usable_python
from testing.storecheck import check_valid, leftovers, sha256_of, snapshot

pytestmark = pytest.mark.integration

EXIT_STORE = 8
NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts, setpriv")


def one_error(result: Result) -> str:
    assert "Traceback" not in result.stderr, result.describe()
    (line,) = result.error_lines()
    return line


@contextlib.contextmanager
def mounted(target: Path, *options: str) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", *options, str(target)], check=True, capture_output=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)


@pytest.fixture
def hello_archive(prebuilt, prebuilt_cli: Cli, tmp_path: Path) -> Path:
    path = tmp_path / "hello.tar"
    result = prebuilt_cli.run("save", "hello:v1", "-o", str(path))
    assert result.returncode == 0, result.describe()
    return path


# -- a corrupt index.json -----------------------------------------------------------------

COMMANDS = {
    "images": ["images"],
    "images --json": ["images", "--json"],
    "inspect": ["inspect", "hello:v1"],
    "tag": ["tag", "hello:v1", "copy:v1"],
    "rmi": ["rmi", "hello:v1"],
    "prune": ["prune"],
    "save": ["save", "hello:v1", "-o", "{tmp}/out.tar"],
    "load": ["load", "-i", "{archive}"],
    "build": ["build", "-q", "--context", "{context}", "--tag", "new:v1"],
    "push": ["push", "--registry", "https://127.0.0.1:9", "--progress", "none", "hello:v1"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_corrupt_index_is_named_never_emptied(
    command: str, prebuilt_copy: Cli, hello_archive: Path, hello_context: Path, tmp_path: Path
) -> None:
    cli = prebuilt_copy
    index = cli.store / "index.json"
    index.write_bytes(index.read_bytes()[:57])  # cut short, as by a disk that lied
    before = snapshot(cli.store)
    values = {"tmp": str(tmp_path), "archive": str(hello_archive), "context": str(hello_context)}
    result = cli.run(*[part.format(**values) for part in COMMANDS[command]])
    assert result.returncode == EXIT_STORE, result.describe()
    line = one_error(result)
    assert str(index) in line and "corrupt" in line, line
    assert "restore it from a backup" in line and "idpwrap load" in line, line
    assert snapshot(cli.store) == before
    assert not (tmp_path / "out.tar").exists()


# -- a store that cannot be written ---------------------------------------------------------


@pytest.fixture
def shared_store(prebuilt) -> Iterator[Path]:
    """A copy of the prebuilt store that other users can read (0755 all the way), owned by
    root: for a user who may read it but not write it."""
    base = Path(tempfile.mkdtemp(prefix="idpwrap-readonly-"))
    base.chmod(0o755)
    store = base / "store"
    shutil.copytree(prebuilt.store, store, symlinks=True)
    (base / "nobody").mkdir()
    os.chown(base / "nobody", NOBODY, NOBODY)
    try:
        yield store
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def as_nobody() -> Iterator[Callable[..., Result]]:
    """Runs idpwrap as nobody from a world-readable copy: the checkout and its venv may be
    where nobody cannot enter (/root, a 0700 directory)."""
    install = make_readable_install()
    try:
        python = usable_python(NOBODY, NOBODY, install)
        if python is None:
            pytest.skip("no Python 3.11+ interpreter that nobody may run")

        def run_as_nobody(store: Path, *args: str) -> Result:
            home = store.parent / "nobody"
            argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--",
                    *install.argv(python, *args)]  # fmt: skip
            env = {"PATH": os.environ["PATH"], "HOME": str(home), "TMPDIR": str(home),
                   "IDPWRAP_STORE": str(store), "LANG": "C.UTF-8",
                   **install.environment()}  # fmt: skip
            completed = subprocess.run(
                argv, capture_output=True, text=True, env=env, cwd=home, timeout=120, check=False
            )
            return Result(argv, completed.returncode, completed.stdout, completed.stderr, 0.0)

        yield run_as_nobody
    finally:
        shutil.rmtree(install.lib.parent, ignore_errors=True)


@as_root
def test_another_users_store_reads_but_is_not_written(
    shared_store: Path, hello_archive: Path, hello_context: Path, as_nobody
) -> None:
    run_as_nobody = as_nobody
    before = snapshot(shared_store)
    listed = run_as_nobody(shared_store, "images", "--json")
    assert listed.returncode == 0, listed.describe()
    assert '"hello:v1"' in listed.stdout and '"three:v1"' in listed.stdout
    inspected = run_as_nobody(shared_store, "inspect", "three:v1")
    assert inspected.returncode == 0, inspected.describe()
    saved_to = shared_store.parent / "nobody" / "saved.tar"
    saved = run_as_nobody(shared_store, "save", "hello:v1", "-o", str(saved_to))
    assert saved.returncode == 0, saved.describe()
    assert saved_to.stat().st_uid == NOBODY

    archive = shared_store.parent / "nobody" / "hello.tar"
    shutil.copy(hello_archive, archive)
    os.chown(archive, NOBODY, NOBODY)
    for args in (["tag", "hello:v1", "mine:v1"], ["rmi", "three:v1"], ["prune"],
                 ["load", "-i", str(archive), "-t", "mine:v2"]):  # fmt: skip
        result = run_as_nobody(shared_store, *args)
        assert result.returncode == EXIT_STORE, result.describe()
        line = one_error(result)
        assert f"store {shared_store} is not writable" in line and "--store" in line, line
    context = shutil.copytree(hello_context, shared_store.parent / "nobody" / "context")
    built = run_as_nobody(shared_store, "build", "-q", "--context", str(context), "-t", "x")
    assert built.returncode != 0, built.describe()
    one_error(built)  # rootless buildah may be refused first; either way, one line
    assert snapshot(shared_store) == before


@as_root
def test_a_read_only_mount(prebuilt, hello_archive: Path, hello_context: Path, tmp_path: Path):
    source = tmp_path / "source"
    shutil.copytree(prebuilt.store, source, symlinks=True)
    before = snapshot(source)
    with mounted(tmp_path / "ro", "--bind", str(source)) as target:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        cli = make_cli(tmp_path / "cli", target)
        listed = cli.run("images")
        assert listed.returncode == 0 and "three" in listed.stdout, listed.describe()
        for args in (["tag", "hello:v1", "mine:v1"], ["rmi", "three:v1"], ["prune"],
                     ["load", "-i", str(hello_archive), "-t", "mine:v2"],
                     ["build", "-q", "--context", str(hello_context), "-t", "new:v1"]):  # fmt: skip
            result = cli.run(*args)
            assert result.returncode == EXIT_STORE, result.describe()
            line = one_error(result)
            assert "is not writable (Read-only file system)" in line, line
    assert snapshot(source) == before


# -- a full disk ---------------------------------------------------------------------------


@as_root
def test_a_disk_that_fills_up_during_save(prebuilt, prebuilt_cli: Cli, tmp_path: Path) -> None:
    with mounted(tmp_path / "small", "-t", "tmpfs", "-o", "size=2m", "tmpfs") as small:
        archive = small / "images.tar"
        first = prebuilt_cli.run("save", "hello:v1", "-o", str(archive))
        assert first.returncode == 0, first.describe()
        kept = sha256_of(archive)

        bigger = prebuilt_cli.run("save", "hello:v1", "three:v1", "-o", str(archive))
        assert bigger.returncode == EXIT_STORE, bigger.describe()
        line = one_error(bigger)
        assert "no space left" in line and str(archive) in line and "as it was" in line, line
        assert sha256_of(archive) == kept
        assert os.listdir(small) == ["images.tar"]

        fresh = prebuilt_cli.run("save", "three:v1", "-o", str(small / "other.tar"))
        assert fresh.returncode == EXIT_STORE, fresh.describe()
        assert "nothing was written" in one_error(fresh)
        assert os.listdir(small) == ["images.tar"]
        check = subprocess.run(
            ["skopeo", "inspect", f"oci-archive:{archive}:hello:v1"], capture_output=True
        )
        assert check.returncode == 0, check.stderr
    check_valid(prebuilt.store, every_blob=False)


@as_root
def test_a_disk_that_fills_up_during_load(prebuilt, prebuilt_cli: Cli, tmp_path: Path) -> None:
    archive = tmp_path / "three.tar"
    assert prebuilt_cli.run("save", "three:v1", "-o", str(archive)).returncode == 0
    small_archive = tmp_path / "hello.tar"
    assert prebuilt_cli.run("save", "hello:v1", "-o", str(small_archive)).returncode == 0
    with mounted(tmp_path / "small", "-t", "tmpfs", "-o", "size=4m", "tmpfs") as small:
        cli = make_cli(tmp_path / "cli", small / "store")
        assert cli.run("load", "-i", str(small_archive)).returncode == 0
        before = snapshot(cli.store)
        result = cli.run("load", "-i", str(archive), "-t", "big:v1")
        assert result.returncode == EXIT_STORE, result.describe()
        line = one_error(result)
        assert "no space left" in line and "intact" in line, line
        assert snapshot(cli.store) == before
        assert leftovers(cli.store) == []
        assert check_valid(cli.store) == ["hello:v1"]
