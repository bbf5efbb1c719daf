"""creds.py: where credentials come from, and the auth file handed to skopeo."""

from __future__ import annotations

import base64
import json
import os
import stat
import tempfile

import pytest

from idpwrap.creds.sources import Credentials, auth_file_content, resolve, temporary_auth_file
from idpwrap.errors import EXIT_USAGE, CredentialsError

HOST = "gitea.example:8443"
SECRET = "s3cr3t-t0ken-value"


def test_gitea_token_beats_gitea_password():
    found = resolve(
        HOST,
        environ={
            "GITEA_USERNAME": "giteaAdmin",
            "GITEA_TOKEN": SECRET,
            "GITEA_PASSWORD": "password",
        },
    )
    assert (found.username, found.secret) == ("giteaAdmin", SECRET)
    assert found.source == "environment (GITEA_USERNAME, GITEA_TOKEN)"


def test_gitea_password_when_no_token():
    found = resolve(HOST, environ={"GITEA_USERNAME": "giteaAdmin", "GITEA_PASSWORD": SECRET})
    assert found.secret == SECRET
    assert found.source == "environment (GITEA_USERNAME, GITEA_PASSWORD)"


def test_empty_token_falls_back_to_the_password():
    found = resolve(
        HOST,
        environ={"GITEA_USERNAME": "u", "GITEA_TOKEN": "", "GITEA_PASSWORD": SECRET},
    )
    assert found.secret == SECRET


def test_gitea_variables_beat_registry_variables():
    found = resolve(
        HOST,
        environ={
            "REGISTRY_USERNAME": "other",
            "REGISTRY_PASSWORD": "other-secret",
            "GITEA_USERNAME": "giteaAdmin",
            "GITEA_TOKEN": SECRET,
        },
    )
    assert found.username == "giteaAdmin"
    assert found.source.startswith("environment (GITEA_USERNAME")


def test_registry_variables():
    found = resolve(HOST, environ={"REGISTRY_USERNAME": "bob", "REGISTRY_PASSWORD": SECRET})
    assert (found.username, found.secret) == ("bob", SECRET)
    assert found.source == "environment (REGISTRY_USERNAME, REGISTRY_PASSWORD)"


def test_nothing_set_is_anonymous():
    assert resolve(HOST, environ={}) is None


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"GITEA_USERNAME": "u"}, ["GITEA_TOKEN", "GITEA_PASSWORD"]),
        ({"REGISTRY_USERNAME": "u"}, ["REGISTRY_PASSWORD"]),
        ({"GITEA_TOKEN": SECRET}, ["GITEA_USERNAME"]),
        ({"GITEA_PASSWORD": SECRET}, ["GITEA_USERNAME"]),
        ({"REGISTRY_PASSWORD": SECRET}, ["REGISTRY_USERNAME"]),
    ],
)
def test_half_a_pair_names_the_missing_variable(environ, named):
    with pytest.raises(CredentialsError) as caught:
        resolve(HOST, environ=environ)
    message = str(caught.value)
    for variable in named:
        assert variable in message
    assert SECRET not in message
    assert caught.value.exit_code == EXIT_USAGE


def test_command_line_beats_the_environment():
    found = resolve(
        HOST,
        username="cli-user",
        password=SECRET,
        environ={"GITEA_USERNAME": "env-user", "GITEA_TOKEN": "env-token"},
    )
    assert (found.username, found.secret) == ("cli-user", SECRET)
    assert found.source == "command line (--username, --password-stdin)"


def test_command_line_ignores_an_incomplete_environment():
    found = resolve(HOST, username="u", password=SECRET, environ={"GITEA_USERNAME": "x"})
    assert found.username == "u"


def test_command_line_username_without_password():
    with pytest.raises(CredentialsError) as caught:
        resolve(HOST, username="u", environ={})
    assert "--password-stdin" in str(caught.value)


def test_command_line_password_without_username():
    with pytest.raises(CredentialsError) as caught:
        resolve(HOST, password=SECRET, environ={})
    assert "--username" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_resolve_reads_os_environ_by_default(monkeypatch):
    for name in ("GITEA_USERNAME", "GITEA_TOKEN", "GITEA_PASSWORD", "REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REGISTRY_USERNAME", "bob")
    monkeypatch.setenv("REGISTRY_PASSWORD", SECRET)
    assert resolve(HOST).username == "bob"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"environ": {"GITEA_USERNAME": "u", "GITEA_TOKEN": SECRET}},
        {"environ": {"REGISTRY_USERNAME": "u", "REGISTRY_PASSWORD": SECRET}},
        {"username": "u", "password": SECRET, "environ": {}},
    ],
)
def test_the_secret_is_never_in_the_source_or_repr(kwargs, capsys):
    found = resolve(HOST, **kwargs)
    assert found.secret == SECRET
    assert SECRET not in found.source
    assert SECRET not in repr(found)
    assert SECRET not in str(found)
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err


# -- the auth file ------------------------------------------------------------------------


def test_auth_file_content():
    content = json.loads(auth_file_content(HOST, Credentials("giteaAdmin", SECRET, "test")))
    token = content["auths"][HOST]["auth"]
    assert base64.b64decode(token).decode() == f"giteaAdmin:{SECRET}"
    assert json.loads(auth_file_content(HOST, None)) == {"auths": {}}


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Where temporary files go, so that the test can see that none is left."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_temporary_auth_file(private_tmp):
    tmp_path = private_tmp
    credentials = Credentials("giteaAdmin", SECRET, "test")
    with temporary_auth_file(HOST, credentials) as fd:
        info = os.fstat(fd)
        assert info.st_nlink == 0  # no name on disk
        assert stat.S_ISREG(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert list(tmp_path.iterdir()) == []  # the private directory is gone too
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0  # rewound for the reader
        with open(f"/dev/fd/{fd}", "rb") as reader:  # as skopeo opens --authfile /dev/fd/N
            content = json.loads(reader.read())
        token = base64.b64decode(content["auths"][HOST]["auth"]).decode()
        assert token == f"giteaAdmin:{SECRET}"
    with pytest.raises(OSError):
        os.fstat(fd)
    assert list(tmp_path.iterdir()) == []


def test_temporary_auth_file_anonymous_is_empty_auths():
    with temporary_auth_file(HOST, None) as fd:
        data = b""
        while chunk := os.read(fd, 4096):
            data += chunk
    assert json.loads(data) == {"auths": {}}


def test_temporary_auth_file_closed_after_an_error(private_tmp):
    with pytest.raises(RuntimeError), temporary_auth_file(HOST, None) as fd:
        raise RuntimeError("skopeo failed")
    with pytest.raises(OSError):
        os.fstat(fd)
    assert list(private_tmp.iterdir()) == []


def test_one_auth_file_for_the_cache_and_the_from_registries():
    others = {"from.example:5000": Credentials("reader", "other-secret", "test"), "anon": None}
    content = json.loads(auth_file_content(HOST, Credentials("giteaAdmin", SECRET, "t"), others))
    assert set(content["auths"]) == {HOST, "from.example:5000"}
    token = content["auths"]["from.example:5000"]["auth"]
    assert base64.b64decode(token).decode() == "reader:other-secret"
