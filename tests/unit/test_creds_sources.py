"""The credential sources after the environment: keyring, auth files, credential helpers,
idpbuilder; the order of them all; the registry challenge parser; refusals explained.

The keyring is the real ``keyring`` API over an in-memory backend set with ``set_keyring``;
credential helpers and idpbuilder are real executables written into a private PATH.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import KeyringError, PasswordDeleteError

from idpwrap import log
from idpwrap.creds import authfiles, idpbuilder, keyrings
from idpwrap.creds.sources import Credentials, auth_file_content, resolve
from idpwrap.errors import EXIT_AUTH, EXIT_USAGE, AuthFailed, CredentialsError
from idpwrap.push.failures import classify_failure
from idpwrap.refs import Registry
from idpwrap.registry.api import parse_challenges
from testing.paths import python_script_header

HOST = "gitea.example:8443"
SECRET = "s3cr3t-from-a-source"
ROOT = Path(__file__).resolve().parents[2]


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.entries.get((service, username))

    def set_password(self, service, username, password):
        self.entries[(service, username)] = password

    def delete_password(self, service, username):
        if (service, username) not in self.entries:
            raise PasswordDeleteError(username)
        del self.entries[(service, username)]


class LockedKeyring(MemoryKeyring):
    def get_password(self, service, username):
        raise KeyringError("collection is locked")


@pytest.fixture
def memory_keyring():
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def base_environ(home: Path, bin_dir: Path | None = None) -> dict[str, str]:
    path = os.environ.get("PATH", os.defpath)
    return {
        "HOME": str(home),
        "PATH": f"{bin_dir}{os.pathsep}{path}" if bin_dir else path,
        "XDG_RUNTIME_DIR": str(home / "run"),
    }


def write_json(path: Path, content: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


def basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def write_helper(bin_dir: Path, name: str, body: str) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / f"docker-credential-{name}"
    path.write_text(python_script_header() + textwrap.dedent(body))
    path.chmod(0o700)
    return path


ANSWERING_HELPER = f"""\
    import json, sys
    host = sys.stdin.read().strip()
    if host != {HOST!r}:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({{"ServerURL": host, "Username": "helper-user", "Secret": {SECRET!r}}}))
    """


# -- auth file locations -----------------------------------------------------------------------


def test_files_in_containers_image_order(home):
    environ = base_environ(home)
    paths = [path for path, _ in authfiles.candidate_files(environ)]
    assert paths == [
        home / "run" / "containers" / "auth.json",
        home / ".config" / "containers" / "auth.json",
        home / ".docker" / "config.json",
    ]


def test_explicit_files_replace_the_runtime_and_config_home_files(home, tmp_path):
    environ = {**base_environ(home), "REGISTRY_AUTH_FILE": str(tmp_path / "env.json")}
    assert authfiles.candidate_files(environ) == [
        (tmp_path / "env.json", False),
        (home / ".docker" / "config.json", False),
    ]
    given = authfiles.candidate_files(environ, tmp_path / "given.json")
    assert given[0] == (tmp_path / "given.json", True)


def test_xdg_and_docker_config_variables(home, tmp_path):
    environ = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "DOCKER_CONFIG": str(tmp_path / "dock"),
    }
    paths = [path for path, _ in authfiles.candidate_files(environ)]
    assert paths == [
        Path("/run/containers") / str(os.getuid()) / "auth.json",
        tmp_path / "cfg" / "containers" / "auth.json",
        tmp_path / "dock" / "config.json",
    ]


@pytest.mark.parametrize(
    ("key", "host"),
    [
        ("gitea.example:8443", "gitea.example:8443"),
        ("https://gitea.example:8443", "gitea.example:8443"),
        ("https://Gitea.Example:8443/v2/", "gitea.example:8443"),
        ("http://gitea.example:8443/", "gitea.example:8443"),
        ("gitea.example:8443/giteaadmin/app", "gitea.example:8443"),
        ("https://index.docker.io/v1/", "docker.io"),
    ],
)
def test_keys_with_or_without_scheme_and_path(key, host):
    assert authfiles.normalize_host(key) == host


# -- auths entries -----------------------------------------------------------------------------


def test_auths_entry_exact_key_wins_over_a_normalized_one(home):
    path = write_json(
        home / ".docker" / "config.json",
        {
            "auths": {
                f"https://{HOST}/v2/": {"auth": basic("other", "other-secret")},
                HOST: {"auth": basic("giteaAdmin", SECRET)},
            }
        },
    )
    found = authfiles.lookup(HOST, base_environ(home))
    assert (found.username, found.secret) == ("giteaAdmin", SECRET)
    assert found.source == f"auth file {path} ({HOST})"
    assert SECRET not in repr(found)


def test_identity_token_entry(home):
    write_json(
        home / ".docker" / "config.json",
        {"auths": {HOST: {"auth": basic("giteaAdmin", ""), "identitytoken": SECRET}}},
    )
    found = authfiles.lookup(HOST, base_environ(home))
    assert found.identity_token and found.secret == SECRET and found.username == "giteaAdmin"
    content = json.loads(auth_file_content(HOST, found))
    assert content["auths"][HOST]["identitytoken"] == SECRET
    assert base64.b64decode(content["auths"][HOST]["auth"]) == b"giteaAdmin:"


def test_first_file_holding_the_registry_wins(home):
    environ = base_environ(home)
    write_json(home / "run" / "containers" / "auth.json", {"auths": {"other.example": {}}})
    write_json(
        home / ".config" / "containers" / "auth.json",
        {"auths": {HOST: {"auth": basic("podman-user", SECRET)}}},
    )
    write_json(home / ".docker" / "config.json", {"auths": {HOST: {"auth": basic("d", "x")}}})
    tried: list[str] = []
    found = authfiles.lookup(HOST, environ, tried=tried)
    assert found.username == "podman-user"
    assert ".config/containers/auth.json" in tried[-1] and "run/containers" in tried[-1]
    assert tried[0] == "DOCKER_AUTH_CONFIG (not set)"


def test_empty_entries_and_files_are_skipped(home):
    (home / ".docker").mkdir()
    (home / ".docker" / "config.json").write_text("  \n")
    write_json(home / "run" / "containers" / "auth.json", {"auths": {HOST: {}}})
    assert authfiles.lookup(HOST, base_environ(home)) is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"auths": {', "is not valid JSON (line 1)"),
        ("[1, 2]", "is not a JSON object"),
        ('{"auths": []}', "'auths' is not a JSON object"),
        ('{"auths": {"gitea.example:8443": {"auth": "bm9jb2xvbg=="}}}', "not base64 of USER"),
        ('{"auths": {"gitea.example:8443": {"auth": "%%%"}}}', "not base64 of USER"),
    ],
)
def test_corrupt_auth_file_is_an_error_naming_it(home, text, words):
    path = home / ".docker" / "config.json"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(CredentialsError) as caught:
        authfiles.lookup(HOST, base_environ(home))
    assert str(path) in str(caught.value) and words in str(caught.value)
    assert caught.value.exit_code == EXIT_USAGE


def test_missing_authfile_option_is_an_error_but_a_missing_variable_file_is_not(home, tmp_path):
    environ = {**base_environ(home), "REGISTRY_AUTH_FILE": str(tmp_path / "nope.json")}
    assert authfiles.lookup(HOST, environ) is None
    with pytest.raises(CredentialsError, match=r"--authfile .*nope\.json does not exist"):
        authfiles.lookup(HOST, environ, tmp_path / "nope.json")


# -- DOCKER_AUTH_CONFIG (GitLab CI, kaniko) and DOCKER_CONFIG ------------------------------------


def auth_config(username: str, password: str, host: str = HOST) -> str:
    return json.dumps({"auths": {host: {"auth": basic(username, password)}}})


def test_docker_auth_config_is_the_json_itself(home):
    environ = {**base_environ(home), "DOCKER_AUTH_CONFIG": auth_config("ci-user", SECRET)}
    tried: list[str] = []
    found = authfiles.lookup(HOST, environ, tried=tried)
    assert (found.username, found.secret) == ("ci-user", SECRET)
    assert found.source == f"DOCKER_AUTH_CONFIG ({HOST})"
    assert SECRET not in found.source


def test_docker_auth_config_beats_every_file_but_the_authfile_option(home, tmp_path):
    for path in (
        home / "run" / "containers" / "auth.json",
        home / ".config" / "containers" / "auth.json",
        home / ".docker" / "config.json",
    ):
        write_json(path, {"auths": {HOST: {"auth": basic("file", "f")}}})
    given = write_json(tmp_path / "given.json", {"auths": {HOST: {"auth": basic("given", "g")}}})
    env_file = write_json(tmp_path / "env.json", {"auths": {HOST: {"auth": basic("env", "e")}}})
    environ = {
        **base_environ(home),
        "REGISTRY_AUTH_FILE": str(env_file),
        "DOCKER_AUTH_CONFIG": auth_config("variable", SECRET),
    }
    assert authfiles.lookup(HOST, environ).username == "variable"
    assert authfiles.lookup(HOST, environ, given).username == "given"


def test_docker_auth_config_for_another_host_lets_the_files_answer(home):
    write_json(home / ".docker" / "config.json", {"auths": {HOST: {"auth": basic("file", "f")}}})
    environ = {**base_environ(home), "DOCKER_AUTH_CONFIG": auth_config("v", "x", "other:1")}
    tried: list[str] = []
    assert authfiles.lookup(HOST, environ).username == "file"
    assert authfiles.lookup("third:2", environ, tried=tried) is None
    assert tried[0] == "DOCKER_AUTH_CONFIG (nothing for third:2)"


def test_docker_auth_config_empty_is_unset(home):
    environ = {**base_environ(home), "DOCKER_AUTH_CONFIG": "  "}
    tried: list[str] = []
    assert authfiles.lookup(HOST, environ, tried=tried) is None
    assert tried[0] == "DOCKER_AUTH_CONFIG (not set)"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ('{"auths": {"h": {"auth": "' + SECRET, "DOCKER_AUTH_CONFIG is not valid JSON (line 1)"),
        ("/builds/tmp/DOCKER_AUTH_CONFIG-" + SECRET, "not a path"),
        (json.dumps([SECRET]), "DOCKER_AUTH_CONFIG is not a JSON object"),
        (json.dumps({"auths": {HOST: {"auth": "%%" + SECRET}}}), "DOCKER_AUTH_CONFIG: the 'auth'"),
        (json.dumps({"auths": [SECRET]}), "DOCKER_AUTH_CONFIG: 'auths' is not a JSON object"),
    ],
)
def test_a_broken_docker_auth_config_is_one_error_without_its_value(home, value, words):
    with pytest.raises(CredentialsError) as caught:
        authfiles.lookup(HOST, {**base_environ(home), "DOCKER_AUTH_CONFIG": value})
    assert words in str(caught.value)
    assert SECRET not in str(caught.value)
    assert caught.value.exit_code == EXIT_USAGE


def test_docker_auth_config_cred_helpers_and_creds_store(home, tmp_path):
    bin_dir = tmp_path / "bin"
    write_helper(bin_dir, "answering", ANSWERING_HELPER)
    helpers = json.dumps({"credHelpers": {HOST: "answering"}})
    found = authfiles.lookup(HOST, {**base_environ(home, bin_dir), "DOCKER_AUTH_CONFIG": helpers})
    assert (found.username, found.secret) == ("helper-user", SECRET)
    assert found.source == (
        "credential helper docker-credential-answering (credHelpers in DOCKER_AUTH_CONFIG)"
    )
    store = json.dumps({"credsStore": "answering"})
    found = authfiles.lookup(HOST, {**base_environ(home, bin_dir), "DOCKER_AUTH_CONFIG": store})
    assert found.source.endswith("(credsStore in DOCKER_AUTH_CONFIG)")


def test_docker_auth_config_never_reaches_a_helper(home, tmp_path):
    bin_dir = tmp_path / "bin"
    write_helper(
        bin_dir,
        "echo",
        """\
        import json, os
        print(json.dumps({"Username": str("DOCKER_AUTH_CONFIG" in os.environ), "Secret": "x"}))
        """,
    )
    value = json.dumps({"credsStore": "echo"})
    environ = {**base_environ(home, bin_dir), "DOCKER_AUTH_CONFIG": value}
    assert authfiles.lookup(HOST, environ).username == "False"


def test_docker_config_is_a_directory_holding_config_json(home, tmp_path):
    directory = tmp_path / "kaniko" / ".docker"
    path = write_json(directory / "config.json", {"auths": {HOST: {"auth": basic("k", SECRET)}}})
    write_json(home / ".docker" / "config.json", {"auths": {HOST: {"auth": basic("home", "h")}}})
    found = authfiles.lookup(HOST, {**base_environ(home), "DOCKER_CONFIG": str(directory)})
    assert (found.username, found.source) == ("k", f"auth file {path} ({HOST})")


# -- credential helpers ------------------------------------------------------------------------


def test_cred_helpers_beat_auths_which_beat_creds_store(home, tmp_path):
    bin_dir = tmp_path / "bin"
    write_helper(bin_dir, "answering", ANSWERING_HELPER)
    write_helper(bin_dir, "store", ANSWERING_HELPER.replace("helper-user", "store-user"))
    path = home / ".docker" / "config.json"
    environ = base_environ(home, bin_dir)
    auths = {"auths": {HOST: {"auth": basic("auths-user", "x")}}, "credsStore": "store"}
    write_json(path, {**auths, "credHelpers": {HOST: "answering"}})
    found = authfiles.lookup(HOST, environ)
    assert found.username == "helper-user" and found.secret == SECRET
    assert found.source == f"credential helper docker-credential-answering (credHelpers in {path})"
    write_json(path, auths)
    assert authfiles.lookup(HOST, environ).username == "auths-user"
    write_json(path, {"auths": {HOST: {}}, "credsStore": "store"})
    found = authfiles.lookup(HOST, environ)
    assert found.username == "store-user"
    assert "credsStore in" in found.source


def test_helper_without_credentials_lets_the_lookup_go_on(home, tmp_path):
    bin_dir = tmp_path / "bin"
    write_helper(bin_dir, "answering", ANSWERING_HELPER)
    write_json(home / ".docker" / "config.json", {"credsStore": "answering"})
    assert authfiles.lookup("elsewhere.example", base_environ(home, bin_dir)) is None


def test_helper_gets_the_host_on_stdin_and_none_of_our_secrets(home, tmp_path):
    bin_dir = tmp_path / "bin"
    write_helper(
        bin_dir,
        "echo",
        """\
        import json, os, sys
        host = sys.stdin.read()
        seen = [name for name in ("GITEA_TOKEN", "REGISTRY_PASSWORD") if name in os.environ]
        print(json.dumps({"Username": host + "|" + ",".join(seen), "Secret": "x"}))
        """,
    )
    write_json(home / ".docker" / "config.json", {"credsStore": "echo"})
    environ = {**base_environ(home, bin_dir), "GITEA_TOKEN": SECRET, "REGISTRY_PASSWORD": SECRET}
    assert authfiles.lookup(HOST, environ).username == f"{HOST}|"


def test_helper_token_username_is_an_identity_token(home, tmp_path):
    bin_dir = tmp_path / "bin"
    write_helper(bin_dir, "tok", 'print(\'{"Username": "<token>", "Secret": "refresh"}\')\n')
    write_json(home / ".docker" / "config.json", {"credHelpers": {HOST: "tok"}})
    found = authfiles.lookup(HOST, base_environ(home, bin_dir))
    assert found.identity_token and found.secret == "refresh"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("import sys\nsys.stderr.write('dbus: no session\\n')\nsys.exit(3)\n", "exit code 3"),
        ("print('not json')\n", "printed no JSON object"),
    ],
)
def test_failing_helper_is_one_error(home, tmp_path, body, words):
    bin_dir = tmp_path / "bin"
    write_helper(bin_dir, "bad", body)
    write_json(home / ".docker" / "config.json", {"credHelpers": {HOST: "bad"}})
    with pytest.raises(CredentialsError) as caught:
        authfiles.lookup(HOST, base_environ(home, bin_dir))
    assert "docker-credential-bad" in str(caught.value) and words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_helper_named_for_the_registry_is_an_error(home):
    write_json(home / ".docker" / "config.json", {"credHelpers": {HOST: "absent"}})
    with pytest.raises(CredentialsError, match=r"docker-credential-absent .* not on PATH"):
        authfiles.lookup(HOST, base_environ(home))


def test_missing_creds_store_is_a_verbose_warning(home, capsys):
    write_json(home / ".docker" / "config.json", {"credsStore": "desktop"})
    log.configure(verbose=True, debug=False)
    try:
        assert authfiles.lookup(HOST, base_environ(home)) is None
    finally:
        log.configure(verbose=False, debug=False)
    assert "docker-credential-desktop" in capsys.readouterr().err


# -- idpbuilder --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            [{"data": {"username": "giteaAdmin", "password": "p", "token": "t"}}],
            ("giteaAdmin", "p"),
        ),
        ([{"username": "giteaAdmin", "password": "p"}], ("giteaAdmin", "p")),
        ([{"username": "giteaAdmin", "token": "t"}], ("giteaAdmin", "t")),
        ([{"data": {"password": "p"}}], ("giteaAdmin", "p")),
        ([], None),
        ([{"data": {"username": "giteaAdmin"}}], None),
        ({"unexpected": True}, None),
    ],
)
def test_idpbuilder_shapes(output, expected):
    assert idpbuilder.parse(json.dumps(output)) == expected
    assert idpbuilder.parse("Error: no cluster") is None


@pytest.mark.parametrize(
    ("host", "served"),
    [
        ("gitea.cnoe.localtest.me:8443", True),
        ("gitea.cnoe.localtest.me", True),
        ("GITEA.cnoe.localtest.me:443", True),
        ("cnoe.localtest.me:8443", False),
        ("127.0.0.1:8443", False),
    ],
)
def test_idpbuilder_only_for_its_gitea(host, served):
    assert idpbuilder.serves(host) is served


def test_idpbuilder_run_from_path_and_its_failure(home, tmp_path, memory_keyring):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "idpbuilder"
    output = json.dumps([{"data": {"username": "giteaAdmin", "password": SECRET}}])
    script.write_text(f"#!/bin/sh\necho '{output}'\n")
    script.chmod(0o700)
    environ = base_environ(home, bin_dir)
    found = resolve("gitea.cnoe.localtest.me:8443", environ=environ)
    assert (found.username, found.secret) == ("giteaAdmin", SECRET)
    assert found.source == "idpbuilder (idpbuilder get secrets -p gitea)"
    assert resolve("other.example:8443", environ=environ) is None
    script.write_text("#!/bin/sh\necho 'cluster down' >&2\nexit 1\n")
    tried: list[str] = []
    assert resolve("gitea.cnoe.localtest.me:8443", environ=environ, tried=tried) is None
    assert tried[-1] == "idpbuilder get secrets -p gitea"


# -- the keyring -------------------------------------------------------------------------------


def test_keyring_store_lookup_remove(memory_keyring):
    assert keyrings.lookup(HOST) is None
    keyrings.store(HOST, "giteaAdmin", SECRET)
    assert keyrings.lookup(HOST) == ("giteaAdmin", SECRET)
    assert memory_keyring.entries[(f"idpwrap:{HOST}", "idpwrap:username")] == "giteaAdmin"
    keyrings.store(HOST, "other", "second")  # a new login replaces the old one
    assert keyrings.lookup(HOST) == ("other", "second")
    assert (f"idpwrap:{HOST}", "giteaAdmin") not in memory_keyring.entries
    assert keyrings.remove(HOST) is True
    assert memory_keyring.entries == {}
    assert keyrings.remove(HOST) is False


def test_keyring_failures_become_keyring_unavailable():
    previous = keyring.get_keyring()
    try:
        keyring.set_keyring(LockedKeyring())
        with pytest.raises(keyrings.KeyringUnavailable, match="KeyringError: collection is locked"):
            keyrings.lookup(HOST)
        from keyring.backends import fail, null

        for backend in (fail.Keyring(), null.Keyring()):
            keyring.set_keyring(backend)
            with pytest.raises(keyrings.KeyringUnavailable, match="no keyring backend"):
                keyrings.usable_backend()
    finally:
        keyring.set_keyring(previous)


# -- the order of all sources ------------------------------------------------------------------


def test_environment_beats_keyring_beats_auth_files(home, memory_keyring):
    write_json(home / ".docker" / "config.json", {"auths": {HOST: {"auth": basic("file", "f")}}})
    keyrings.store(HOST, "ring", "r")
    environ = base_environ(home)
    both = {**environ, "GITEA_USERNAME": "env", "GITEA_TOKEN": "e"}
    assert resolve(HOST, environ=both).username == "env"
    found = resolve(HOST, environ=environ)
    assert (found.username, found.source) == ("ring", f"keyring (idpwrap:{HOST})")
    keyrings.remove(HOST)
    assert resolve(HOST, environ=environ).username == "file"
    assert resolve(HOST, environ=environ, username="cli", password="c").username == "cli"


def test_no_keyring_variable_skips_it(home, memory_keyring):
    keyrings.store(HOST, "ring", "r")
    tried: list[str] = []
    assert (
        resolve(HOST, environ={**base_environ(home), "IDPWRAP_NO_KEYRING": "1"}, tried=tried)
        is None
    )
    assert not any("keyring" in entry for entry in tried)


def test_an_unusable_keyring_is_one_verbose_warning(home, capsys):
    previous = keyring.get_keyring()
    keyring.set_keyring(LockedKeyring())
    log.configure(verbose=True, debug=False)
    try:
        assert resolve(HOST, environ=base_environ(home)) is None
    finally:
        log.configure(verbose=False, debug=False)
        keyring.set_keyring(previous)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "keyring" in line]
    assert len(warnings) == 1 and "keyring not usable" in warnings[0]


def test_tried_lists_every_source_by_name(home, memory_keyring):
    tried: list[str] = []
    assert resolve(HOST, environ=base_environ(home), tried=tried) is None
    text = ", ".join(tried)
    for name in ("--password-stdin", "GITEA_TOKEN", "REGISTRY_PASSWORD", f"idpwrap:{HOST}"):
        assert name in text
    assert "DOCKER_AUTH_CONFIG (not set)" in text
    assert "auth files (none found)" in text


def test_credentials_from_the_environment_do_not_import_keyring():
    code = (
        "import sys; from idpwrap.creds import sources as creds; "
        "creds.resolve('h:1', environ={'GITEA_USERNAME': 'u', 'GITEA_TOKEN': 't'}); "
        "import idpwrap.commands.push; "
        "names = ('keyring', 'subprocess', 'idpwrap.creds.authfiles'); "
        "print(sorted(name for name in names if name in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert output.strip() == "[]"


# -- the registry's challenge, and refusals explained ----------------------------------------


def test_parse_giteas_challenge():
    header = (
        'Bearer realm="https://gitea.cnoe.localtest.me:8443/v2/token",'
        'service="container_registry",scope="*"'
    )
    (challenge,) = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://gitea.cnoe.localtest.me:8443/v2/token",
        "service": "container_registry",
        "scope": "*",
    }


def test_parse_several_challenges():
    challenges = parse_challenges(
        'Basic realm="idpwrap-test", Bearer realm="https://x/t",error=insufficient_scope'
    )
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[0].params == {"realm": "idpwrap-test"}
    assert challenges[1].params == {"realm": "https://x/t", "error": "insufficient_scope"}


def fatal(message: str) -> str:
    return f'time="2024-01-01T00:00:00Z" level=fatal msg="{message}"\n'


REGISTRY = Registry(HOST)
SOURCE = "keyring (idpwrap:gitea.example:8443)"


def test_token_endpoint_refusal_names_the_source():
    stderr = fatal(
        "trying to reuse blob sha256:ab at destination: unable to retrieve auth token: invalid"
        " username/password: unauthorized: invalid credentials"
    )
    error = classify_failure(
        stderr, 1, REGISTRY, SOURCE, username="giteaAdmin", repository="giteaadmin/app"
    )
    assert isinstance(error, AuthFailed) and error.exit_code == EXIT_AUTH
    assert f"refused the credentials from {SOURCE}" in str(error)


def test_push_into_another_namespace_says_who_may_not_push_where():
    stderr = fatal(
        "checking whether a blob exists in h/bob/app: errors:\\ndenied: requested access to the"
        " resource is denied\\n"
    )
    error = classify_failure(
        stderr, 1, REGISTRY, SOURCE, username="giteaAdmin", repository="bob/app"
    )
    assert str(error).startswith("denied: giteaAdmin may not push to bob/app")
    assert "--owner giteaadmin" in str(error)


def test_token_without_write_scope_says_so():
    stderr = fatal(
        "writing blob: initiating layer upload: errors:\\ndenied: requested access to the resource"
        " is denied\\nunauthorized: authentication required\\n"
    )
    error = classify_failure(
        stderr, 1, REGISTRY, SOURCE, username="giteaAdmin", repository="giteaadmin/app"
    )
    assert "accepted the credentials from" in str(error) and "write:package" in str(error)


def test_anonymous_refusal_lists_the_sources_tried():
    stderr = fatal("denied: requested access to the resource is denied")
    error = classify_failure(
        stderr, 1, REGISTRY, "", tried=["the keyring (idpwrap:h)", "auth files (x)"]
    )
    message = str(error)
    assert message.startswith("no credentials were found for ")
    assert "(tried the keyring (idpwrap:h), auth files (x))" in message


def test_credentials_repr_and_equality_keep_the_identity_flag():
    plain = Credentials("u", SECRET, "s")
    token = Credentials("u", SECRET, "s", identity_token=True)
    assert plain != token and SECRET not in repr(token)
