"""FROM an image in a registry (issue 18): buildah pulls it with the credentials and TLS trust
a push would use (the environment's GITEA_* or REGISTRY_*, --ca-file), through the one 0600
auth file with no name (/dev/fd/N), never a secret in any process's argv or environment."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testing.cli import make_cli
from testing.images import local_image, make_context
from testing.processes import processes
from tests.integration.test_credential_leaks import Sweeper

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def pushed_base(tmp_path: Path, registry, name: str) -> str:
    """runner A builds base:v1 and pushes it with idpwrap push; its reference in the registry."""
    context = make_context(tmp_path / "base", "FROM scratch\nCOPY busybox /bin/busybox\n")
    runner = make_cli(tmp_path / "runner-a", tmp_path / "runner-a" / "store")
    built = runner.run("build", str(context), "-t", "base:v1", timeout=300)
    assert built.returncode == 0, built.describe()
    reference = f"{registry.host}/giteaadmin/{name}:v1"
    pushed = runner.run(
        "push", "base:v1", reference, *registry.tls_options(), credentials=registry.credentials
    )
    assert pushed.returncode == 0, pushed.describe()
    return reference


class BuildSweeper(Sweeper):
    """The leak sweep of the push tests, also noting which programs it saw."""

    def __init__(self, root_pid: int, secret: bytes) -> None:
        super().__init__(root_pid, secret)
        self.seen: set[str] = set()

    def sweep(self) -> None:
        super().sweep()
        for info in processes():
            if info.argv and self.secret not in info.cmdline:
                self.seen.add(Path(info.argv[0]).name)


@pytest.mark.parametrize("variables", ["GITEA", "REGISTRY"])
def test_a_from_image_in_a_tls_registry_with_credentials(tmp_path, registry, variables):
    reference = pushed_base(tmp_path, registry, f"from-base-{variables.lower()}")
    context = make_context(
        tmp_path / "app", f"FROM {reference}\nCOPY app.txt /app.txt\n", {"app.txt": b"app\n"}
    )
    runner = make_cli(tmp_path / "runner-b", tmp_path / "runner-b" / "store")
    user, secret = registry.credentials
    if variables == "GITEA":
        env = {"GITEA_USERNAME": user, "GITEA_TOKEN": secret}
    else:
        env = {"REGISTRY_USERNAME": user, "REGISTRY_PASSWORD": secret}
    process = runner.popen(
        "build", str(context), "-t", "app:v1", *registry.tls_options(), "--debug", env=env
    )
    sweeper = BuildSweeper(process.pid, secret.encode())
    deadline = time.monotonic() + 300  # bounded, whatever happens to the build
    try:
        while process.poll() is None and time.monotonic() < deadline:
            sweeper.sweep()
            time.sleep(0.005)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err[-3000:]
    assert secret not in out and secret not in err
    assert (
        f"idpwrap: FROM registry: {registry.host}, credentials: environment ({variables}_USERNAME"
        in err
    ), err
    buildah_lines = [
        line for line in err.splitlines() if "running buildah " in line and " bud " in line
    ]
    assert buildah_lines and "--authfile /dev/fd/" in buildah_lines[0], err[-3000:]
    assert "--cert-dir" in buildah_lines[0]
    # idpwrap's own environment holds what the user gave it, and so does a fork of idpwrap
    # until it execs (/proc shows the parent's environment then); no program it runs has it
    programs = [leak for leak in sweeper.leaks if "idpwrap itself" not in leak]
    assert [leak for leak in programs if "(python" not in leak] == []
    assert any("buildah" in info for info in sweeper.seen), "buildah was never swept"
    base = local_image(tmp_path / "runner-a" / "store", "base:v1")
    app = local_image(runner.store, "app:v1")
    assert app.layers[0] == base.layers[0]


def test_without_credentials_the_pull_is_refused_in_one_line(tmp_path, registry):
    reference = pushed_base(tmp_path, registry, "from-base-anonymous")
    context = make_context(tmp_path / "app", f"FROM {reference}\nCOPY app.txt /app.txt\n",
                           {"app.txt": b"app\n"})  # fmt: skip
    runner = make_cli(tmp_path / "runner-b", tmp_path / "runner-b" / "store")
    result = runner.run("build", str(context), "-t", "app:v1", *registry.tls_options(), timeout=300)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("idpwrap: error:")]
    assert len(errors) == 1, result.describe()
    assert f"Containerfile:1: FROM {reference}" in errors[0], errors
    assert "authentication required" in errors[0], errors  # 1.28 adds "unauthorized: "
    assert "give credentials for that registry as for a push" in errors[0], errors


def test_a_pulled_base_is_not_asked_for_again(tmp_path, fresh_registry):
    """--pull missing (the default) as buildah 1.28 and 1.39 both take it: the first build
    pulls the base, a later one builds on it with the registry gone."""
    reference = pushed_base(tmp_path, fresh_registry, "from-base-missing")
    context = make_context(tmp_path / "app", f"FROM {reference}\nCOPY app.txt /app.txt\n",
                           {"app.txt": b"one\n"})  # fmt: skip
    runner = make_cli(tmp_path / "runner-b", tmp_path / "runner-b" / "store")
    options = ["-t", "app:v1", *fresh_registry.tls_options()]
    first = runner.run("build", str(context), *options, credentials=fresh_registry.credentials,
                       timeout=300)  # fmt: skip
    assert first.returncode == 0, first.describe()
    assert "Trying to pull" in first.stderr
    fresh_registry.stop()
    (context / "app.txt").write_bytes(b"two\n")
    second = runner.run("build", str(context), *options, credentials=fresh_registry.credentials,
                        timeout=300)  # fmt: skip
    assert second.returncode == 0, second.describe()
    assert "Trying to pull" not in second.stderr
