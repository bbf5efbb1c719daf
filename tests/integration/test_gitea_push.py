"""idpwrap against the Gitea mode: owners, orgs, permissions, scopes, tags, the ingress limit.

All pushes share the session's prebuilt store (``hello:v1``); nothing here builds.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from testing.cli import Cli
from testing.images import store_digests, tag_digest

pytestmark = pytest.mark.integration

EXIT_AUTH, EXIT_NOT_FOUND, EXIT_NETWORK = 4, 3, 5


def push(cli: Cli, gitea, user: str, kind: str, *args: str):
    """``idpwrap push`` with ``user``'s secret of ``kind`` in GITEA_USERNAME/GITEA_TOKEN."""
    return cli.run(
        "push", "--registry", gitea.url, *gitea.tls_options(), "--progress", "none", *args,
        credentials=(user, gitea.secret(user, kind)),
    )  # fmt: skip


def only_error(result) -> str:
    lines = result.error_lines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("kind", ["password", "token"])
def test_plan_push_as_gitea_admin(prebuilt_copy: Cli, prebuilt, gitea_registry, kind) -> None:
    """The plan's push and check: giteaAdmin/hello:TAG lands under giteaadmin, as listed."""
    tag = f"plan-{kind}"
    assert prebuilt_copy.run("tag", "hello:v1", f"hello:{tag}").returncode == 0
    result = push(prebuilt_copy, gitea_registry, "giteaAdmin", kind, f"giteaAdmin/hello:{tag}")
    assert result.returncode == 0, result.describe()
    digest = prebuilt.hello.digest
    assert f"Pushed {gitea_registry.host}/giteaadmin/hello:{tag}@{digest}" in result.stdout
    client = gitea_registry.client()
    assert tag in client.tags("giteaadmin/hello")
    manifest = client.manifest("giteaadmin/hello", tag)
    assert "sha256:" + hashlib.sha256(manifest.body).hexdigest() == digest


def test_org_pushes_by_admin_and_member(prebuilt_cli: Cli, prebuilt, gitea_registry) -> None:
    gitea, digest = gitea_registry, prebuilt.hello.digest
    by_owner = push(prebuilt_cli, gitea, "giteaAdmin", "token", "--owner", "platform", "hello:v1")
    assert by_owner.returncode == 0, by_owner.describe()
    assert f"{gitea.host}/platform/hello:v1@{digest}" in by_owner.stdout
    explicit = push(
        prebuilt_cli, gitea, "giteaAdmin", "password", "hello:v1", f"{gitea.host}/platform/app:v2"
    )
    assert explicit.returncode == 0, explicit.describe()
    member = push(
        prebuilt_cli,
        gitea,
        "developer",
        "token",
        "--owner",
        "platform",
        "hello:v1",
        "platform/dev:v1",
    )
    assert member.returncode == 0, member.describe()
    client = gitea.client("developer")
    assert client.tags("platform/app") == ["v2"]
    assert client.tags("platform/dev") == ["v1"]


def test_outsider_into_org_is_told_it_may_not_write(prebuilt_cli: Cli, gitea_registry) -> None:
    # platform/hello:v1 may already serve hello (another test): the registry is only read
    # then, so the copy is asked for to meet the refusal.
    result = push(
        prebuilt_cli, gitea_registry, "outsider", "password", "--owner", "platform",
        "--no-up-to-date-check", "hello:v1",
    )  # fmt: skip
    assert result.returncode == EXIT_AUTH
    message = only_error(result)
    assert "accepted the credentials" in message
    assert "Gitea user outsider" in message
    assert "may not write to platform" in message
    assert "check the username" not in message


def test_unknown_owner_says_so(prebuilt_cli: Cli, gitea_registry) -> None:
    result = push(
        prebuilt_cli, gitea_registry, "giteaAdmin", "token", "--owner", "nosuchorg", "hello:v1"
    )
    assert result.returncode == EXIT_NOT_FOUND
    message = only_error(result)
    assert "no user or organization 'nosuchorg'" in message
    assert "create the organization nosuchorg" in message and "--owner" in message


def test_a_push_with_only_docker_auth_config(prebuilt_cli: Cli, prebuilt, gitea_registry) -> None:
    """GitLab CI's and kaniko's way: the config.json's content in DOCKER_AUTH_CONFIG."""
    gitea = gitea_registry
    password = gitea.secret("giteaAdmin", "token")
    auth = base64.b64encode(f"giteaAdmin:{password}".encode()).decode()
    value = json.dumps({"auths": {gitea.host: {"auth": auth}}})
    result = prebuilt_cli.run(
        "push", "-v", "--registry", gitea.url, *gitea.tls_options(), "--progress", "none",
        "hello:v1", "giteaadmin/ci-auth-config:v1", env={"DOCKER_AUTH_CONFIG": value},
    )  # fmt: skip
    assert result.returncode == 0, result.describe()
    assert f"{gitea.host}/giteaadmin/ci-auth-config:v1@{prebuilt.hello.digest}" in result.stdout
    assert f"idpwrap: credentials: DOCKER_AUTH_CONFIG ({gitea.host})" in result.stderr
    output = result.stdout + result.stderr
    assert password not in output and auth not in output, "the secret is in the output"


def test_an_anonymous_push_to_an_unknown_owner_says_first_that_no_credentials_were_found(
    prebuilt_cli: Cli, gitea_registry
) -> None:
    """The CI job of issue 20: DOCKER_AUTH_CONFIG for another registry only, an owner Gitea
    does not know. The missing credentials come first, what was tried, then the owner."""
    gitea = gitea_registry
    other = json.dumps({"auths": {"elsewhere.example": {"auth": "dTpw"}}})
    result = prebuilt_cli.run(
        "push", "--registry", gitea.url, *gitea.tls_options(), "--progress", "none",
        "hello:v1", "racea/hello:v1", env={"DOCKER_AUTH_CONFIG": other},
    )  # fmt: skip
    assert result.returncode == EXIT_NOT_FOUND, result.describe()
    message = only_error(result)
    assert message.startswith(f"idpwrap: error: no credentials were found for {gitea.host} (tried")
    assert f"DOCKER_AUTH_CONFIG (nothing for {gitea.host})" in message
    assert "GITEA_USERNAME" in message and "auth files" in message
    assert "no user or organization 'racea'" in message
    assert message.index("no credentials") < message.index("no user or organization")


def test_an_anonymous_push_to_a_known_owner_says_no_credentials_were_found(
    prebuilt_cli: Cli, gitea_registry
) -> None:
    gitea = gitea_registry
    result = prebuilt_cli.run(
        "push", "--registry", gitea.url, *gitea.tls_options(), "--progress", "none",
        "hello:v1", "giteaadmin/anonymous:v1",
    )  # fmt: skip
    assert result.returncode == EXIT_AUTH, result.describe()
    message = only_error(result)
    assert message.startswith(f"idpwrap: error: no credentials were found for {gitea.host} (tried")
    assert "DOCKER_AUTH_CONFIG (not set)" in message


def test_read_token_names_the_write_scope(prebuilt_cli: Cli, gitea_registry) -> None:
    result = push(prebuilt_cli, gitea_registry, "developer", "read_token", "hello:v1")
    assert result.returncode == EXIT_AUTH
    message = only_error(result)
    assert "scope is read:package" in message and "write:package" in message


def test_wrong_token_still_means_check_the_credentials(prebuilt_cli: Cli, gitea_registry) -> None:
    result = prebuilt_cli.run(
        "push", "--registry", gitea_registry.url, *gitea_registry.tls_options(), "hello:v1",
        credentials=("giteaAdmin", "0" * 40),
    )  # fmt: skip
    assert result.returncode == EXIT_AUTH
    assert "refused the credentials" in only_error(result)


def test_tag_with_capitals_is_checked_lowercased(
    prebuilt_copy: Cli, prebuilt, gitea_registry
) -> None:
    assert prebuilt_copy.run("tag", "hello:v1", "hello:V1.0-RC1").returncode == 0
    result = push(prebuilt_copy, gitea_registry, "giteaAdmin", "token", "hello:V1.0-RC1")
    assert result.returncode == 0, result.describe()
    assert "Gitea stores tags lowercased: 'V1.0-RC1' is kept as 'v1.0-rc1'" in result.stderr
    host, digest = gitea_registry.host, prebuilt.hello.digest
    assert f"Pushed {host}/giteaadmin/hello:v1.0-rc1@{digest}" in result.stdout
    assert "v1.0-rc1" in gitea_registry.client().tags("giteaadmin/hello")


def test_layer_over_the_ingress_limit(prebuilt_cli: Cli, prebuilt, small_gitea_registry) -> None:
    """hello's largest layer is just over 1 MiB, the fixture's proxy-body-size."""
    before = store_digests(prebuilt.store)
    result = push(prebuilt_cli, small_gitea_registry, "giteaAdmin", "token", "hello:v1")
    assert result.returncode == EXIT_NETWORK
    message = only_error(result)
    largest = max(size for _, size in prebuilt.hello.layers)
    assert largest > 1024 * 1024
    assert f"({largest} bytes)" in message
    assert "413 Request Entity Too Large" in message
    assert "proxy-body-size" in message
    assert "nginx.ingress.kubernetes.io/proxy-body-size" in message
    assert "trying once more" not in result.stderr  # a refusal, not a flaky network
    assert store_digests(prebuilt.store) == before
    assert tag_digest(prebuilt.store, "hello:v1") == prebuilt.hello.digest


@pytest.fixture
def empty_gitea(tmp_path_factory):
    """A Gitea mode with nothing in it, so that a push uploads every blob (none is mounted)."""
    from testing.gitea.running import start_gitea

    running = start_gitea(tmp_path_factory.mktemp("gitea-empty"))
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.parametrize("damage", ["missing", "altered"])
def test_damaged_store_blob_is_one_line(prebuilt_copy: Cli, prebuilt, empty_gitea, damage) -> None:
    """Not Gitea's fault, but met on the same path: skopeo's raw text about a temporary layout
    becomes the image, the blob, the store and the way out."""
    store = prebuilt_copy.store
    blob, _ = max(prebuilt.hello.layers, key=lambda layer: layer[1])
    path = store / "blobs" / "sha256" / blob.removeprefix("sha256:")
    if damage == "missing":
        path.unlink()
    else:
        path.chmod(0o644)
        data = bytearray(path.read_bytes())
        data[100] ^= 0xFF
        path.write_bytes(bytes(data))
    result = push(prebuilt_copy, empty_gitea, "giteaAdmin", "token", "hello:v1")
    assert result.returncode == 8
    message = only_error(result)
    assert f"blob {blob} of hello:v1 in the store {store}" in message
    assert ("is missing" if damage == "missing" else "is damaged") in message
    assert "idpwrap rmi hello:v1" in message and "idpwrap load" in message
    assert "/tmp/idpwrap-push-" not in message and "layout" not in message
