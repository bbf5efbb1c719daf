"""--format docker: HEALTHCHECK, SHELL, STOPSIGNAL and ONBUILD survive, the store keeps the image
as a Docker v2 schema 2 manifest, a push sends that manifest unchanged (same digest), and a
build can use it as its base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testing.cli import Cli
from testing.images import local_image, make_context, read_blob_json

pytestmark = pytest.mark.integration

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
HEALTHY = """\
FROM scratch
COPY busybox /bin/busybox
HEALTHCHECK --interval=5s CMD ["/bin/busybox", "true"]
SHELL ["/bin/busybox", "sh", "-c"]
STOPSIGNAL SIGTERM
ONBUILD RUN echo from the base
"""


def build(cli: Cli, *args: str, env: dict[str, str] | None = None) -> str:
    result = cli.run("build", *args, env=env)
    assert result.returncode == 0, result.describe()
    return result.stderr


@pytest.fixture(scope="module")
def docker_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_context(tmp_path_factory.mktemp("docker") / "ctx", HEALTHY)


def settings(store: Path, tag: str) -> dict:
    image = local_image(store, tag)
    return read_blob_json(store, image.config[0])["config"]


def test_docker_format_keeps_what_oci_drops_and_is_pushed_unchanged(
    cli: Cli, docker_context: Path, registry
) -> None:
    output = build(cli, "--format", "docker", "-t", "healthy:v1", str(docker_context))
    assert "not supported for OCI image format" not in output
    assert "idpwrap-build-" not in output and "COMMIT healthy:v1" in output, output
    index = json.loads((cli.store / "index.json").read_text())
    (entry,) = [e for e in index["manifests"] if "annotations" in e]  # not the provenance
    assert entry["mediaType"] == DOCKER_MANIFEST
    config = settings(cli.store, "healthy:v1")
    assert config["Healthcheck"]["Test"] == ["CMD", "/bin/busybox", "true"]
    assert config["Shell"] == ["/bin/busybox", "sh", "-c"]
    assert config["StopSignal"] == "SIGTERM"
    assert config["OnBuild"] == ["RUN echo from the base"]
    image = local_image(cli.store, "healthy:v1")
    manifest = read_blob_json(cli.store, image.digest)
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    }, "layers stored compressed, as OCI ones are"

    inspected = cli.run("inspect", "--json", "healthy:v1")
    assert json.loads(inspected.stdout)["mediaType"] == DOCKER_MANIFEST

    pushed = cli.run(
        "push", "--registry", registry.url, *registry.tls_options(), "--progress", "plain",
        "healthy:v1", "giteaadmin/healthy:v1", credentials=registry.credentials,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.describe()
    client = registry.client()
    assert client.manifest_digest("giteaadmin/healthy", "v1") == image.digest
    response = client.manifest("giteaadmin/healthy", "v1")
    assert response.headers["Content-Type"] == DOCKER_MANIFEST
    for digest in image.blobs:
        assert client.blob("giteaadmin/healthy", digest).status == 200


def test_buildah_format_and_the_config_file_choose_the_format_too(
    cli: Cli, docker_context: Path, tmp_path: Path
) -> None:
    build(cli, "-t", "byenv:v1", str(docker_context), env={"BUILDAH_FORMAT": "docker"})
    assert "Healthcheck" in settings(cli.store, "byenv:v1")
    config = tmp_path / "config.yaml"
    config.write_text("format: docker\n")
    build(cli, "-t", "byfile:v1", str(docker_context), env={"IDPWRAP_CONFIG": str(config)})
    assert "Healthcheck" in settings(cli.store, "byfile:v1")
    # the default is OCI, which has no place for a health check (buildah warns, as it does)
    output = build(cli, "-t", "oci:v1", str(docker_context))
    assert "HEALTHCHECK is not supported for OCI image format" in output
    assert "Healthcheck" not in settings(cli.store, "oci:v1")


def test_a_docker_format_image_is_a_base_and_its_onbuild_runs(
    cli: Cli, docker_context: Path, tmp_path: Path
) -> None:
    build(cli, "--format", "docker", "-t", "healthy:v1", str(docker_context))
    app = make_context(tmp_path / "app", "FROM healthy:v1\nCOPY busybox /bb\n")
    output = build(cli, "--format", "docker", "-t", "app:v1", str(app))
    assert "FROM healthy:v1\n" in output and "idpwrap-base-" not in output, output
    assert "from the base" in output, "the base's ONBUILD trigger ran"
    base, image = local_image(cli.store, "healthy:v1"), local_image(cli.store, "app:v1")
    assert image.layers[: len(base.layers)] == base.layers
    assert settings(cli.store, "app:v1")["Healthcheck"]["Test"][0] == "CMD"


def test_gitea_takes_the_docker_manifest(cli: Cli, docker_context: Path, gitea_registry) -> None:
    """Against the Gitea mode (Gitea 1.24.3's manifest rules), with giteaAdmin's token."""
    build(cli, "--format", "docker", "-t", "healthy:v1", str(docker_context))
    image = local_image(cli.store, "healthy:v1")
    pushed = cli.run(
        "push", "--registry", gitea_registry.url, *gitea_registry.tls_options(),
        "--progress", "none", "giteaAdmin/healthy:v1",
        credentials=("giteaAdmin", gitea_registry.secret("giteaAdmin", "token")),
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.describe()
    assert f"Pushed {gitea_registry.host}/giteaadmin/healthy:v1@{image.digest}" in pushed.stdout


def test_save_and_load_keep_a_docker_format_image(
    cli: Cli, docker_context: Path, tmp_path: Path
) -> None:
    build(cli, "--format", "docker", "-t", "healthy:v1", str(docker_context))
    image = local_image(cli.store, "healthy:v1")
    archive = tmp_path / "healthy.tar"
    assert cli.run("save", "healthy:v1", "-o", str(archive)).returncode == 0
    other = tmp_path / "other-store"
    loaded = cli.run("load", "-i", str(archive), env={"IDPWRAP_STORE": str(other)})
    assert loaded.returncode == 0, loaded.describe()
    assert local_image(other, "healthy:v1").digest == image.digest
    (entry,) = [
        e for e in json.loads((other / "index.json").read_text())["manifests"] if "annotations" in e
    ]
    assert entry["mediaType"] == DOCKER_MANIFEST
