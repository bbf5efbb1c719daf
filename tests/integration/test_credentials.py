"""Pushes with credentials from every source, in order, against a Gitea-shaped token registry.

The registry is docker-registry with ``auth: token``; our token server (scripts/localregistry.py)
answers ``GET /v2/token`` like Gitea and grants push only in the user's own lowercase namespace.
Each source is set up as its real owner leaves it: the keyring through a real file-backed keyring
backend, auth files as podman and docker write them, a real ``docker-credential-test`` and a real
``idpbuilder`` on PATH. Secrets are never printed by the checks (a failed assertion would copy
them into the test log).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testing.cli import Cli, Result
from testing.credentials import (
    OTHER_USERNAME,
    USERNAME,
    CredentialWorld,
    GiteaRegistry,
    auth_json,
    basic,
    make_world,
    start_gitea_registry,
    store_in_keyring,
    unshare_command,
    write_credential_helper,
    write_idpbuilder,
    write_json,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gitea(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GiteaRegistry]:
    running = start_gitea_registry(tmp_path_factory.mktemp("gitea-registry"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def world(prebuilt_cli: Cli, tmp_path: Path) -> CredentialWorld:
    return make_world(prebuilt_cli, tmp_path / "world")


def push(
    world: CredentialWorld,
    gitea: GiteaRegistry,
    repository: str,
    *extra: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    command: list[str] | None = None,
    registry: str | None = None,
) -> Result:
    return world.cli.run(
        "push",
        "--verbose",
        "--registry",
        registry or gitea.url,
        *gitea.tls_options(),
        *extra,
        "hello:v1",
        f"giteaadmin/{repository}:v1",
        env=world.env(**(env or {})),
        stdin=stdin,
        command=command,
    )


def assert_pushed(result: Result, secret: str, host: str, repository: str, digest: str) -> None:
    leaked = secret in result.stdout or secret in result.stderr
    assert not leaked, "the secret is in idpwrap's output"
    assert result.returncode == 0, result.describe()
    assert f"Pushed {host}/giteaadmin/{repository}:v1@{digest}" in result.stdout


def source_line(result: Result) -> str:
    lines = [
        line for line in result.stderr.splitlines() if line.startswith("idpwrap: credentials: ")
    ]
    assert lines, result.describe()
    return lines[-1]


# -- each source on its own --------------------------------------------------------------------


def setup_env_gitea_token(world, gitea, tmp_path):
    return {"GITEA_USERNAME": USERNAME, "GITEA_TOKEN": gitea.password}, [], None, "GITEA_TOKEN"


def setup_env_gitea_password(world, gitea, tmp_path):
    env = {"GITEA_USERNAME": USERNAME, "GITEA_PASSWORD": gitea.password}
    return env, [], None, "environment (GITEA_USERNAME, GITEA_PASSWORD)"


def setup_env_registry(world, gitea, tmp_path):
    env = {"REGISTRY_USERNAME": USERNAME, "REGISTRY_PASSWORD": gitea.password}
    return env, [], None, "environment (REGISTRY_USERNAME, REGISTRY_PASSWORD)"


def setup_password_stdin(world, gitea, tmp_path):
    args = ["--username", USERNAME, "--password-stdin"]
    return {}, args, gitea.password + "\n", "command line (--username, --password-stdin)"


def setup_keyring(world, gitea, tmp_path):
    store_in_keyring(world.keyring_file, gitea.host, USERNAME, gitea.password)
    return {}, [], None, f"keyring (idpwrap:{gitea.host})"


def setup_podman_runtime_auth(world, gitea, tmp_path):
    runtime = tmp_path / "run-user"
    path = write_json(
        runtime / "containers" / "auth.json", auth_json(gitea.host, USERNAME, gitea.password)
    )
    return {"XDG_RUNTIME_DIR": str(runtime)}, [], None, f"auth file {path} ({gitea.host})"


def setup_registry_auth_file(world, gitea, tmp_path):
    path = write_json(tmp_path / "ci-auth.json", auth_json(gitea.host, USERNAME, gitea.password))
    return {"REGISTRY_AUTH_FILE": str(path)}, [], None, f"auth file {path} ({gitea.host})"


def setup_authfile_option(world, gitea, tmp_path):
    path = write_json(
        tmp_path / "given.json", auth_json(f"https://{gitea.host}", USERNAME, gitea.password)
    )
    return {}, ["--authfile", str(path)], None, f"auth file {path} (https://{gitea.host})"


def setup_config_home_auth(world, gitea, tmp_path):
    path = write_json(
        world.home / ".config" / "containers" / "auth.json",
        auth_json(f"{gitea.host}/giteaadmin", USERNAME, gitea.password),
    )
    return {}, [], None, f"auth file {path} ({gitea.host}/giteaadmin)"


def setup_docker_config_auth(world, gitea, tmp_path):
    key = f"https://{gitea.host}/v2/"
    path = write_json(
        world.home / ".docker" / "config.json", auth_json(key, USERNAME, gitea.password)
    )
    return {}, [], None, f"auth file {path} ({key})"


def setup_docker_config_env(world, gitea, tmp_path):
    directory = tmp_path / "docker-config"
    path = write_json(directory / "config.json", auth_json(gitea.host, USERNAME, gitea.password))
    return {"DOCKER_CONFIG": str(directory)}, [], None, f"auth file {path} ({gitea.host})"


def setup_docker_auth_config(world, gitea, tmp_path):
    """GitLab CI's and kaniko's way: the config.json's content in the variable, no file."""
    value = json.dumps(auth_json(gitea.host, USERNAME, gitea.password))
    return {"DOCKER_AUTH_CONFIG": value}, [], None, f"DOCKER_AUTH_CONFIG ({gitea.host})"


def setup_docker_auth_config_helper(world, gitea, tmp_path):
    write_credential_helper(world.bin_dir, "test", {gitea.host: (USERNAME, gitea.password)})
    value = json.dumps({"credHelpers": {gitea.host: "test"}})
    expected = "credential helper docker-credential-test (credHelpers in DOCKER_AUTH_CONFIG)"
    return {"DOCKER_AUTH_CONFIG": value}, [], None, expected


def setup_identity_token(world, gitea, tmp_path):
    """An OAuth2 refresh token: skopeo trades it at the token endpoint (POST) for a token."""
    entry = {"auth": basic(USERNAME, ""), "identitytoken": gitea.refresh_token}
    path = write_json(world.home / ".docker" / "config.json", {"auths": {gitea.host: entry}})
    return {}, [], None, f"auth file {path} ({gitea.host})"


def setup_cred_helpers(world, gitea, tmp_path):
    write_credential_helper(world.bin_dir, "test", {gitea.host: (USERNAME, gitea.password)})
    path = write_json(
        world.home / ".docker" / "config.json",
        {"auths": {gitea.host: {}}, "credHelpers": {gitea.host: "test"}},
    )
    return {}, [], None, f"credential helper docker-credential-test (credHelpers in {path})"


def setup_creds_store(world, gitea, tmp_path):
    write_credential_helper(world.bin_dir, "test", {gitea.host: (USERNAME, gitea.password)})
    path = write_json(
        world.home / ".docker" / "config.json",
        {"auths": {gitea.host: {}}, "credsStore": "test"},
    )
    return {}, [], None, f"credential helper docker-credential-test (credsStore in {path})"


SOURCES = {
    "env-gitea-token": setup_env_gitea_token,
    "env-gitea-password": setup_env_gitea_password,
    "env-registry": setup_env_registry,
    "password-stdin": setup_password_stdin,
    "keyring": setup_keyring,
    "podman-runtime-auth": setup_podman_runtime_auth,
    "registry-auth-file": setup_registry_auth_file,
    "authfile-option": setup_authfile_option,
    "config-home-auth": setup_config_home_auth,
    "docker-config": setup_docker_config_auth,
    "docker-config-env": setup_docker_config_env,
    "docker-auth-config": setup_docker_auth_config,
    "docker-auth-config-helper": setup_docker_auth_config_helper,
    "identity-token": setup_identity_token,
    "cred-helpers": setup_cred_helpers,
    "creds-store": setup_creds_store,
}


@pytest.mark.parametrize("name", list(SOURCES))
def test_push_with_credentials_from(name, prebuilt, world, gitea, tmp_path) -> None:
    env, args, stdin, expected = SOURCES[name](world, gitea, tmp_path)
    repository = f"creds-{name}"
    result = push(world, gitea, repository, *args, env=env, stdin=stdin)
    assert_pushed(result, gitea.password, gitea.host, repository, prebuilt.hello.digest)
    assert gitea.refresh_token not in result.stdout + result.stderr
    assert expected in source_line(result)


@pytest.mark.parametrize(
    "output",
    [
        [{"name": "gitea-credential", "namespace": "gitea", "data": {"username": USERNAME}}],
        [{"name": "gitea-credential", "namespace": "gitea", "username": USERNAME}],
        [{"name": "gitea-credential", "namespace": "gitea", "username": USERNAME}],
    ],
    ids=["data-password", "top-level-password", "top-level-token"],
)
def test_push_with_credentials_from_idpbuilder(output, request, prebuilt, world, gitea, tmp_path):
    command = unshare_command(tmp_path / "hosts")
    if command is None:
        pytest.skip("needs root and unshare to name 127.0.0.1 gitea.cnoe.localtest.me")
    shape = request.node.callspec.id
    fields = output[0]["data"] if shape == "data-password" else output[0]
    fields["token" if shape == "top-level-token" else "password"] = gitea.password
    write_idpbuilder(world.bin_dir, output)
    host = f"gitea.cnoe.localtest.me:{gitea.port}"
    repository = f"creds-idpbuilder-{shape}"
    result = push(world, gitea, repository, command=command, registry=f"https://{host}")
    assert_pushed(result, gitea.password, host, repository, prebuilt.hello.digest)
    assert "idpbuilder (idpbuilder get secrets -p gitea)" in source_line(result)


# -- the order ---------------------------------------------------------------------------------


def wrong() -> str:
    return "wrong-" + secrets.token_urlsafe(12)


Setup = Callable[[CredentialWorld, GiteaRegistry, Path, str], tuple[dict, list, str | None]]


def put_command_line(world, gitea, tmp_path, password):
    return {}, ["--username", USERNAME, "--password-stdin"], password + "\n"


def put_env(world, gitea, tmp_path, password):
    return {"GITEA_USERNAME": USERNAME, "GITEA_TOKEN": password}, [], None


def put_keyring(world, gitea, tmp_path, password):
    store_in_keyring(world.keyring_file, gitea.host, USERNAME, password)
    return {}, [], None


def put_registry_auth_file(world, gitea, tmp_path, password):
    path = write_json(tmp_path / "first-auth.json", auth_json(gitea.host, USERNAME, password))
    return {"REGISTRY_AUTH_FILE": str(path)}, [], None


def put_docker_config(world, gitea, tmp_path, password):
    write_json(world.home / ".docker" / "config.json", auth_json(gitea.host, USERNAME, password))
    return {}, [], None


def put_docker_auth_config(world, gitea, tmp_path, password):
    return {"DOCKER_AUTH_CONFIG": json.dumps(auth_json(gitea.host, USERNAME, password))}, [], None


def put_cred_helper_and_auths(world, gitea, tmp_path, password):
    """credHelpers beats the same file's auths entry, which holds a wrong password."""
    write_credential_helper(world.bin_dir, "test", {gitea.host: (USERNAME, password)})
    write_json(
        world.home / ".docker" / "config.json",
        {**auth_json(gitea.host, USERNAME, wrong()), "credHelpers": {gitea.host: "test"}},
    )
    return {}, [], None


ORDER = [
    ("command-line", put_command_line, "env", put_env, "command line"),
    ("env", put_env, "keyring", put_keyring, "environment (GITEA_USERNAME, GITEA_TOKEN)"),
    ("keyring", put_keyring, "auth-file", put_registry_auth_file, "keyring (idpwrap:"),
    ("keyring", put_keyring, "docker-auth-config", put_docker_auth_config, "keyring (idpwrap:"),
    (
        "docker-auth-config",
        put_docker_auth_config,
        "auth-file",
        put_registry_auth_file,
        "DOCKER_AUTH_CONFIG (",
    ),
    ("runtime-auth-file", put_registry_auth_file, "docker", put_docker_config, "first-auth.json"),
    ("cred-helper", put_cred_helper_and_auths, "-", None, "docker-credential-test (credHelpers"),
]


@pytest.mark.parametrize(
    ("winner", "put_winner", "loser", "put_loser", "expected"),
    ORDER,
    ids=[f"{row[0]}-beats-{row[2]}" for row in ORDER],
)
def test_the_first_source_wins(
    winner, put_winner, loser, put_loser, expected, prebuilt, world, gitea, tmp_path
) -> None:
    """The winner holds the right password and the loser a wrong one: the push succeeding, and
    --verbose naming the winner, show that the loser was not used."""
    env, args, stdin = {}, [], None
    if put_loser is not None:
        env, args, stdin = put_loser(world, gitea, tmp_path, wrong())
    more_env, more_args, more_stdin = put_winner(world, gitea, tmp_path, gitea.password)
    env, args, stdin = {**env, **more_env}, args + more_args, more_stdin or stdin
    repository = f"order-{winner}-over-{loser}".rstrip("-")  # a repository per row
    result = push(world, gitea, repository, *args, env=env, stdin=stdin)
    assert_pushed(result, gitea.password, gitea.host, repository, prebuilt.hello.digest)
    assert expected in source_line(result)


def test_auth_files_beat_idpbuilder(prebuilt, world, gitea, tmp_path) -> None:
    command = unshare_command(tmp_path / "hosts")
    if command is None:
        pytest.skip("needs root and unshare to name 127.0.0.1 gitea.cnoe.localtest.me")
    host = f"gitea.cnoe.localtest.me:{gitea.port}"
    calls = tmp_path / "idpbuilder-called"
    (world.bin_dir / "idpbuilder").write_text(f"#!/bin/sh\ntouch {calls}\nexit 1\n")
    (world.bin_dir / "idpbuilder").chmod(0o700)
    write_json(world.home / ".docker" / "config.json", auth_json(host, USERNAME, gitea.password))
    result = push(world, gitea, "order-auth-file-idpbuilder", command=command, registry=host)
    assert_pushed(result, gitea.password, host, "order-auth-file-idpbuilder", prebuilt.hello.digest)
    assert ".docker/config.json" in source_line(result)
    assert not calls.exists()


def test_idpbuilder_is_asked_only_for_its_gitea(prebuilt, world, gitea, tmp_path) -> None:
    """On another registry idpbuilder is not run: the push is anonymous and refused."""
    marker = tmp_path / "idpbuilder-ran"
    (world.bin_dir / "idpbuilder").write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    (world.bin_dir / "idpbuilder").chmod(0o700)
    result = push(world, gitea, "idpbuilder-elsewhere")
    assert result.returncode == 4, result.describe()
    assert not marker.exists()
    assert "idpbuilder" not in result.error_lines()[0]


# -- what goes wrong ---------------------------------------------------------------------------


def only_error_line(result: Result, code: int, secret: str | None = None) -> str:
    if secret is not None:
        leaked = secret in result.stdout or secret in result.stderr
        assert not leaked, "the secret is in idpwrap's output"
    assert result.returncode == code, result.describe()
    assert "Traceback" not in result.stderr
    lines = result.error_lines()
    assert len(lines) == 1, result.describe()
    return lines[0]


def test_wrong_password_from_the_keyring_names_the_keyring(world, gitea) -> None:
    password = wrong()
    store_in_keyring(world.keyring_file, gitea.host, USERNAME, password)
    line = only_error_line(push(world, gitea, "wrong-keyring"), 4, password)
    assert f"refused the credentials from keyring (idpwrap:{gitea.host})" in line


def test_wrong_password_from_a_helper_names_the_helper(world, gitea) -> None:
    password = wrong()
    write_credential_helper(world.bin_dir, "test", {gitea.host: (USERNAME, password)})
    write_json(world.home / ".docker" / "config.json", {"credsStore": "test"})
    line = only_error_line(push(world, gitea, "wrong-helper"), 4, password)
    assert "refused the credentials from credential helper docker-credential-test" in line


def test_push_into_another_owners_namespace_is_denied(world, gitea) -> None:
    env = {"GITEA_USERNAME": USERNAME, "GITEA_TOKEN": gitea.password}
    result = world.cli.run(
        "push", "--registry", gitea.url, *gitea.tls_options(), "hello:v1", "bob/hello:v1",
        env=world.env(**env),
    )  # fmt: skip
    line = only_error_line(result, 4, gitea.password)
    assert f"denied: {USERNAME} may not push to bob/hello" in line
    assert "--owner giteaadmin" in line


def test_the_other_owner_may_push_into_its_own_lowercase_namespace(prebuilt, world, gitea):
    env = {"GITEA_USERNAME": OTHER_USERNAME, "GITEA_TOKEN": gitea.other_password}
    result = world.cli.run(
        "push", "--registry", gitea.url, *gitea.tls_options(), "hello:v1",
        env=world.env(**env),
    )  # fmt: skip
    assert result.returncode == 0, result.describe()
    assert f"Pushed {gitea.host}/bob/hello:v1@{prebuilt.hello.digest}" in result.stdout


def test_token_without_write_scope_says_so(world, gitea) -> None:
    env = {"GITEA_USERNAME": USERNAME, "GITEA_TOKEN": gitea.read_only_token}
    line = only_error_line(push(world, gitea, "read-only", env=env), 4, gitea.read_only_token)
    assert "accepted the credentials from environment (GITEA_USERNAME, GITEA_TOKEN)" in line
    assert "write:package" in line


def test_anonymous_refusal_lists_every_source_tried(world, gitea, tmp_path) -> None:
    docker = write_json(world.home / ".docker" / "config.json", {"auths": {}})
    line = only_error_line(push(world, gitea, "anonymous"), 4)
    assert line.startswith(f"idpwrap: error: no credentials were found for {gitea.host} (tried")
    for tried in (
        "--password-stdin",
        "GITEA_TOKEN",
        "REGISTRY_PASSWORD",
        "the keyring",
        "DOCKER_AUTH_CONFIG (not set)",
        str(docker),
    ):
        assert tried in line, line


def test_corrupt_auth_file_is_one_line_naming_the_file(world, gitea) -> None:
    path = world.home / ".docker" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"auths": {"x": ')
    line = only_error_line(push(world, gitea, "corrupt"), 2)
    assert str(path) in line and "not valid JSON" in line


def test_missing_authfile_option_is_an_error(world, gitea, tmp_path) -> None:
    line = only_error_line(
        push(world, gitea, "missing", "--authfile", str(tmp_path / "no.json")), 2
    )
    assert "no.json does not exist" in line


def test_missing_credential_helper_named_for_the_registry_is_an_error(world, gitea) -> None:
    write_json(world.home / ".docker" / "config.json", {"credHelpers": {gitea.host: "absent"}})
    line = only_error_line(push(world, gitea, "no-helper"), 2)
    assert "docker-credential-absent" in line and "not on PATH" in line


def test_failing_credential_helper_is_one_line(world, gitea) -> None:
    (world.bin_dir / "docker-credential-broken").write_text(
        "#!/bin/sh\necho 'dbus: no session' >&2\nexit 3\n"
    )
    (world.bin_dir / "docker-credential-broken").chmod(0o700)
    write_json(world.home / ".docker" / "config.json", {"credsStore": "broken"})
    line = only_error_line(push(world, gitea, "broken-helper"), 2)
    assert "docker-credential-broken get failed" in line and "dbus: no session" in line


@pytest.mark.parametrize(
    "backend",
    ["keyring.backends.fail.Keyring", "testing.filekeyring.LockedKeyring"],
    ids=["no-backend", "locked"],
)
def test_unusable_keyring_is_a_verbose_warning_and_the_push_goes_on(
    backend, prebuilt, world, gitea, tmp_path
) -> None:
    path = write_json(tmp_path / "auth.json", auth_json(gitea.host, USERNAME, gitea.password))
    env = {"PYTHON_KEYRING_BACKEND": backend, "REGISTRY_AUTH_FILE": str(path)}
    repository = f"keyring-{'fail' if 'fail' in backend else 'locked'}"
    result = push(world, gitea, repository, env=env)
    assert_pushed(result, gitea.password, gitea.host, repository, prebuilt.hello.digest)
    warnings = [line for line in result.stderr.splitlines() if "keyring not usable" in line]
    assert len(warnings) == 1, result.describe()
    assert "IDPWRAP_NO_KEYRING=1" in warnings[0]


def test_no_keyring_variable_skips_the_keyring(world, gitea) -> None:
    store_in_keyring(world.keyring_file, gitea.host, USERNAME, gitea.password)
    result = push(world, gitea, "no-keyring", env={"IDPWRAP_NO_KEYRING": "1"})
    only_error_line(result, 4, gitea.password)
    assert "keyring skipped (IDPWRAP_NO_KEYRING=1)" in result.stderr
