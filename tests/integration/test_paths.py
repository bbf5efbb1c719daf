"""Paths with a colon: buildah's and skopeo's ``oci:PATH:NAME`` take everything after the first
colon as the image name, so idpwrap has to keep colons out of what it hands them
(docs/development.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testing.cli import make_cli
from testing.images import local_image, tag_digest

pytestmark = pytest.mark.integration


def test_store_path_with_a_colon_builds_and_pushes(
    tmp_path: Path, hello_context: Path, registry
) -> None:
    cli = make_cli(tmp_path / "cli", tmp_path / "team:store")
    build = cli.run("build", "-q", "--context", str(hello_context), "--tag", "colon:v1")
    assert build.returncode == 0, build.describe()
    image = local_image(cli.store, "colon:v1")
    assert list((cli.store / ".idpwrap.tmp").iterdir()) == []

    push = cli.run(
        "push",
        "--registry",
        registry.url,
        *registry.tls_options(),
        "--progress",
        "none",
        "colon:v1",
        "giteaadmin/colon-store:v1",
        credentials=registry.credentials,
    )
    assert push.returncode == 0, push.describe()
    assert registry.client().manifest_digest("giteaadmin/colon-store", "v1") == image.digest


def test_tmpdir_with_a_colon_pushes(prebuilt, prebuilt_cli, registry, tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp:dir"
    tmpdir.mkdir()
    push = prebuilt_cli.run(
        "push",
        "--registry",
        registry.url,
        *registry.tls_options(),
        "--progress",
        "none",
        "hello:v1",
        "giteaadmin/colon-tmpdir:v1",
        credentials=registry.credentials,
        env={"TMPDIR": str(tmpdir)},
    )
    assert push.returncode == 0, push.describe()
    digest = tag_digest(prebuilt.store, "hello:v1")
    assert registry.client().manifest_digest("giteaadmin/colon-tmpdir", "v1") == digest
    assert list(tmpdir.iterdir()) == []


def test_colon_in_store_and_tmpdir_builds_and_writes_nowhere_else(
    tmp_path: Path, hello_context: Path
) -> None:
    cli = make_cli(tmp_path / "cli", tmp_path / "team:store")
    tmpdir = tmp_path / "scratch:space"
    tmpdir.mkdir()
    build = cli.run(
        "build", "-q", "--context", str(hello_context), "--tag", "colon:v2",
        env={"TMPDIR": str(tmpdir)},
    )  # fmt: skip
    stray = [path.name for path in (tmp_path / "team", tmp_path / "scratch") if path.exists()]
    assert stray == [], "an OCI layout was written outside the store"
    assert build.returncode == 0, build.describe()
    local_image(cli.store, "colon:v2")
    assert list(tmpdir.iterdir()) == []
