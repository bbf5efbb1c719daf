"""A real rootless build and push, as an ordinary user this test creates (CI runs as root).

The user gets a home in a fresh directory under /tmp (pytest's own is private to root), a copy
of the idpwrap package and its dependencies, and an interpreter it may run (the checkout and its
venv may live under /root or a 0700 directory: testing/otheruser.py). First
without subordinate IDs (the build must stop with the command that fixes it), then with them:
buildah runs rootless in a user namespace with the driver idpwrap chose, and the image goes to
the session's TLS registry.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from idpwrap.tools import rootless
from testing.cli import Result
from testing.images import local_image, make_context
from testing.otheruser import readable_install, usable_python
from testing.paths import DEFAULT_PATH, ROOT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="creating a user needs root (CI runs as root)"),
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("useradd", "userdel", "usermod", "setpriv")),
        reason="needs useradd, usermod, userdel and setpriv",
    ),
]


@dataclass
class User:
    name: str
    uid: int
    gid: int
    base: Path  # a 0755 directory of ours, for what the user must read
    home: Path
    python: str

    @property
    def store(self) -> Path:
        return self.home / "store"

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            "PATH": DEFAULT_PATH,
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.home / "tmp"),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "PYTHONPATH": str(self.base / "lib"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "IDPWRAP_STORE": str(self.store),
            "IDPWRAP_NO_KEYRING": "1",
        }
        env.update(extra or {})
        return env

    def command(self, argv: list[str]) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", *argv]

    def idpwrap(self, *args: str, env: dict[str, str] | None = None) -> Result:
        argv = self.command([self.python, "-m", "idpwrap", *args])
        import time

        started = time.monotonic()
        done = subprocess.run(
            argv, capture_output=True, text=True, env=self.environment(env), cwd=self.home,
            stdin=subprocess.DEVNULL, timeout=180, check=False,
        )  # fmt: skip
        return Result(argv, done.returncode, done.stdout, done.stderr, time.monotonic() - started)

    def ranges(self, path: str) -> list[tuple[int, int]]:
        return rootless.subordinate_ranges(Path(path).read_text(), self.name, self.uid)

    def drop_subordinate_ids(self) -> None:
        for option, path in (("--del-subuids", rootless.SUBUID_FILE),
                             ("--del-subgids", rootless.SUBGID_FILE)):  # fmt: skip
            for first, count in self.ranges(path):
                run(["usermod", option, f"{first}-{first + count - 1}", self.name])

    def add_subordinate_ids(self) -> None:
        command = rootless.fix_command(
            self.name,
            Path(rootless.SUBUID_FILE).read_text(),
            Path(rootless.SUBGID_FILE).read_text(),
        )
        run(command.split())


def run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def user() -> Iterator[User]:
    for file in (rootless.SUBUID_FILE, rootless.SUBGID_FILE):
        Path(file).touch(exist_ok=True)
    name = "idpwt" + os.urandom(4).hex()
    base = Path(tempfile.mkdtemp(prefix="idpwrap-rootless-", dir="/tmp"))
    base.chmod(0o755)
    home = base / "home"
    created = False
    try:
        run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh", name])
        created = True
        entry = pwd.getpwnam(name)
        install = readable_install(base)  # base/lib, what PYTHONPATH names
        (home / "tmp").mkdir(parents=True)
        for path in (home, home / "tmp"):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        python = usable_python(entry.pw_uid, entry.pw_gid, install)
        if python is None:
            pytest.skip("no Python 3.11+ interpreter that an ordinary user may run")
        yield User(name, entry.pw_uid, entry.pw_gid, base, home, python)
    finally:
        if created:
            account = User(name, pwd.getpwnam(name).pw_uid, 0, base, home, "")
            account.drop_subordinate_ids()
            subprocess.run(["userdel", name], capture_output=True, check=False)
            runroot = Path(os.environ.get("TMPDIR") or "/tmp") / f"idpwrap-run-{account.uid}"
            shutil.rmtree(home / "tmp" / f"idpwrap-run-{account.uid}", ignore_errors=True)
            shutil.rmtree(runroot, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def user_context(user: User) -> Path:
    context = make_context(
        user.home / "hello",
        (ROOT / "examples" / "hello" / "Containerfile").read_text(),
    )
    for path in (context, *context.iterdir()):
        os.chown(path, user.uid, user.gid)
    return context


def test_without_subordinate_ids_the_build_says_how_to_fix_it(user, user_context):
    user.drop_subordinate_ids()
    result = user.idpwrap("build", "--context", str(user_context), "-t", "hello:v1")
    assert result.returncode == 9, result.describe()
    (line,) = result.error_lines()
    assert f"user {user.name} has no subordinate IDs in /etc/subuid and /etc/subgid" in line
    assert "as root: usermod --add-subuids " in line
    assert line.endswith(f" {user.name}")
    assert "Traceback" not in result.stderr
    assert (
        not (user.store / "index.json").exists()
        or "hello:v1" not in (user.store / "index.json").read_text()
    )
    report = user.idpwrap("doctor", "--json", "--registry", "http://127.0.0.1:9")
    assert report.returncode == 1, report.describe()
    checks = {check["name"]: check for check in json.loads(report.stdout)["checks"]}
    assert checks["rootless"]["status"] == "error"
    assert checks["rootless"]["fix"].startswith("as root: usermod --add-subuids ")


def test_rootless_build_and_push(user, user_context, registry, tmp_path):
    user.add_subordinate_ids()
    assert user.ranges(rootless.SUBUID_FILE) and user.ranges(rootless.SUBGID_FILE)

    built = user.idpwrap("build", "-v", "--context", str(user_context), "-t", "hello:v1")
    assert built.returncode == 0, built.describe()
    assert "Image saved to local store: hello:v1" in built.stdout
    assert re.search(r"STEP \d/\d: RUN", built.stderr)  # RUN steps ran in the user namespace
    storage = user.home / ".local" / "share" / "idpwrap" / "buildah"
    assert "buildah storage: " + str(storage) in built.stderr
    assert storage.stat().st_uid == user.uid
    image = local_image(user.store, "hello:v1")
    assert all(p.stat().st_uid == user.uid for p in user.store.rglob("*") if not p.is_symlink())
    # buildah's files in the user namespace belong to the user's subordinate IDs, not root
    owners = {p.lstat().st_uid for p in storage.rglob("*")}
    assert 0 not in owners, sorted(owners)

    again = user.idpwrap("build", "--context", str(user_context), "-t", "hello:v1")
    assert again.returncode == 0, again.describe()
    assert "nothing changed since the build of" in again.stderr

    ca_file = user.base / "ca.crt"
    shutil.copyfile(registry.ca_file, ca_file)
    ca_file.chmod(0o644)
    pushed = user.idpwrap(
        "push", "--registry", registry.url, "--ca-file", str(ca_file), "--progress", "plain",
        "--no-up-to-date-check",  # the session registry may hold this reproducible image already
        "hello:v1",
        env={"GITEA_USERNAME": registry.username, "GITEA_TOKEN": registry.password},
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.describe()
    repository = f"{registry.username.lower()}/hello"
    assert f"Pushed {registry.host}/{repository}:v1@{image.digest}" in pushed.stdout
    assert registry.client().manifest_digest(repository, "v1") == image.digest

    # podman login's auth file in the user's config, and no XDG_RUNTIME_DIR (su, cron, CI):
    # podman's runtime auth file is then under root's /run/containers, which the user cannot
    # enter; that is no auth file, not an error.
    auth = user.home / ".config" / "containers" / "auth.json"
    auth.parent.mkdir(parents=True)
    token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    auth.write_text(json.dumps({"auths": {registry.host: {"auth": token}}}))
    for path in (auth.parent.parent, auth.parent, auth):
        os.chown(path, user.uid, user.gid)
    auth.chmod(0o600)
    pushed = user.idpwrap(
        "push", "--registry", registry.url, "--ca-file", str(ca_file), "--progress", "none",
        "hello:v1", "hello-again:v1",
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.describe()
    assert registry.client().manifest_digest("hello-again", "v1") == image.digest

    report = user.idpwrap(
        "doctor", "--json", "--registry", registry.url, env={"IDPWRAP_CA_FILE": str(ca_file)}
    )
    checks = {check["name"]: check for check in json.loads(report.stdout)["checks"]}
    for name in ("buildah", "skopeo", "rootless", "storage", "store", "registry", "credentials"):
        assert checks[name]["status"] == "ok", checks[name]
    assert "builds run rootless" in checks["rootless"]["message"]
