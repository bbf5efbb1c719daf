"""doctor.py and `idpwrap doctor`: each check's verdict and fix, and the exit code."""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
from collections import namedtuple

import pytest

from idpwrap.cli import main
from idpwrap.doctor import checks as doctor
from idpwrap.doctor import registry as registrycheck
from idpwrap.doctor.checks import ERROR, OK, WARNING, Check
from idpwrap.refs import LocalRef
from idpwrap.store.api import Store
from idpwrap.tls import TlsTrust
from idpwrap.tools import rootless


def fake_tool(tmp_path, monkeypatch, name, output):
    directory = tmp_path / "bin"
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(0o755)
    monkeypatch.setenv("PATH", str(directory))
    return path


def test_tool_version(tmp_path, monkeypatch):
    path = fake_tool(tmp_path, monkeypatch, "buildah", "buildah version 1.28.2 (image-spec 1.1)")
    assert doctor.tool("buildah") == Check("buildah", OK, f"buildah 1.28.2 ({path})")


def test_old_tool_is_a_warning(tmp_path, monkeypatch):
    fake_tool(tmp_path, monkeypatch, "skopeo", "skopeo version 1.4.1")
    check = doctor.tool("skopeo")
    assert check.status == WARNING and "older than 1.9" in check.message


def test_missing_tool_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert doctor.tool("skopeo") == Check(
        "skopeo", ERROR, "skopeo is not installed", "apt-get install skopeo"
    )


def test_broken_tool_is_an_error(tmp_path, monkeypatch):
    fake_tool(tmp_path, monkeypatch, "buildah", "error while loading shared libraries")
    check = doctor.tool("buildah")
    assert check.status == ERROR and "shared libraries" in check.message


def test_rootless_as_root(monkeypatch):
    monkeypatch.setattr(rootless, "is_rootless", lambda: False)
    (check,) = doctor.rootless_readiness()
    assert check.status == OK and "as root" in check.message


def test_rootless_problems_become_checks(monkeypatch):
    monkeypatch.setattr(rootless, "is_rootless", lambda: True)
    problems = [
        rootless.Problem("no subordinate IDs", "as root: usermod ...", True),
        rootless.Problem("few IDs", "as root: usermod ...", False),
    ]
    monkeypatch.setattr(rootless, "current_problems", lambda environ=None: problems)
    checks = doctor.rootless_readiness()
    assert [(c.status, c.message, c.fix) for c in checks] == [
        (ERROR, "no subordinate IDs", "as root: usermod ..."),
        (WARNING, "few IDs", "as root: usermod ..."),
    ]


def test_storage_that_buildah_refuses(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    fake_tool(tmp_path, monkeypatch, "buildah", "x")
    check = doctor.storage(lambda argv: (125, "Error: kernel does not support overlay fs"))
    assert check.status == ERROR
    assert check.message.endswith(
        "buildah cannot use it: Error: kernel does not support overlay fs"
    )


def test_vfs_storage_is_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("STORAGE_DRIVER", "vfs")
    fake_tool(tmp_path, monkeypatch, "buildah", "x")
    seen = []
    check = doctor.storage(lambda argv: (seen.append(argv), (0, "{}"))[1])
    assert check.status == WARNING and "fuse-overlayfs" in check.fix
    assert seen[0][1:] == [*rootless.default_storage().argv(), "info"]


# -- the store ---------------------------------------------------------------------------------


def test_store_not_created_yet(tmp_path):
    store, disk = doctor.store_health(tmp_path / "nothing" / "here")
    assert store.status == OK and "the first build creates it" in store.message
    assert disk.name == "disk"


def test_store_with_orphans_and_with_missing_blobs(tmp_path, layouts, monkeypatch):
    store = Store(tmp_path / "store")
    store.ensure()
    layout = layouts.make([b"layer one", b"layer two"])
    store.add_layout(layout.path, [LocalRef("app", "v1")])
    assert doctor.store_health(store.root)[0].status == OK
    (store.blob_dir / ("0" * 64)).write_bytes(b"orphan")
    check = doctor.store_health(store.root)[0]
    assert check.status == OK, "a few unused blobs are information, not a warning"
    assert check.message.endswith(
        "1 tags; 1 blobs (6 B) left by interrupted commands: 'idpwrap prune' frees them"
    )
    rebuilt = layouts.make([b"layer one", b"layer two, rebuilt"])
    store.add_layout(rebuilt.path, [LocalRef("app", "v1")])  # the tag moves
    check = doctor.store_health(store.root)[0]
    assert check.status == OK
    assert "3 blobs" in check.message and "of layers no tag uses any more" in check.message
    monkeypatch.setattr(doctor, "UNUSED_WORTH_FREEING", 100)
    check = doctor.store_health(store.root)[0]
    assert check.status == WARNING and check.fix == "idpwrap prune"
    store.blob_path(layout.layer_digests[0]).unlink()
    check = doctor.store_health(store.root)[0]
    assert check.status == ERROR and "1 blobs that tags need are missing" in check.message


def test_corrupt_index(tmp_path):
    store = Store(tmp_path / "store")
    store.ensure()
    store.index_path.write_text("{")
    check = doctor.store_health(store.root)[0]
    assert check.status == ERROR and "is corrupt" in check.message


StatVfs = namedtuple("StatVfs", "f_bavail f_frsize")


@pytest.mark.parametrize(
    ("free", "status"), [(50 << 20, ERROR), (500 << 20, WARNING), (5 << 30, OK)]
)
def test_disk(tmp_path, monkeypatch, free, status):
    monkeypatch.setattr(os, "statvfs", lambda path: StatVfs(free // 4096, 4096))
    assert doctor.disk(tmp_path).status == status


# -- the registry ------------------------------------------------------------------------------


CHALLENGE = 'Bearer realm="http://x/v2/token",service="container_registry",scope="*"'


class Handler(http.server.BaseHTTPRequestHandler):
    status = 401
    challenge = CHALLENGE

    def do_GET(self):
        self.send_response(self.status)
        if self.challenge:
            self.send_header("WWW-Authenticate", self.challenge)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    Handler.status, Handler.challenge = 401, CHALLENGE


def test_registry_asking_for_a_token(server):
    check = registrycheck.registry_probe(server, TlsTrust(), "default")
    assert check == Check(
        "registry", OK, f"{server} (default): reachable, plain HTTP, asks for Bearer credentials"
    )


def test_not_a_registry(server):
    Handler.status, Handler.challenge = 404, ""
    check = registrycheck.registry_probe(server, TlsTrust(), "default")
    assert check.status == ERROR and "answered 404" in check.message


def test_unreachable_registry():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    check = registrycheck.registry_probe(f"https://127.0.0.1:{port}", TlsTrust(), "from --registry")
    assert check.status == ERROR and "cannot be reached" in check.message
    assert "--registry" in check.fix


def test_plain_http_registry_named_https(server):
    url = server.replace("http://", "https://")
    check = registrycheck.registry_probe(url, TlsTrust(), "default")
    assert check.status == ERROR and "speaks plain HTTP" in check.message
    assert check.fix == f"use {server}"


# -- the command -------------------------------------------------------------------------------


def stub_checks(monkeypatch, checks):
    monkeypatch.setattr(doctor, "run_all", lambda registry=None, store=None, *_: checks)


def test_command_text_and_exit_code(monkeypatch, capsys):
    stub_checks(
        monkeypatch,
        [Check("buildah", OK, "buildah 1.28.2"), Check("registry", ERROR, "down", "start it")],
    )
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "ok       buildah      buildah 1.28.2"
    assert out[1] == "error    registry     down -> fix: start it"
    assert out[2] == "1 error, 0 warnings: a build or push would fail"


def test_warnings_alone_exit_0(monkeypatch, capsys):
    stub_checks(monkeypatch, [Check("storage", WARNING, "vfs", "install fuse-overlayfs")])
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["warnings"] == 1
    assert report["checks"] == [
        {"name": "storage", "status": "warning", "message": "vfs", "fix": "install fuse-overlayfs"}
    ]


def test_a_check_that_crashes_is_an_error_not_a_traceback():
    def broken():
        raise RuntimeError("boom")

    assert doctor.guard(broken, "store") == [
        Check("store", ERROR, "the check failed: RuntimeError: boom")
    ]


def test_credentials_are_named_never_shown(monkeypatch, tmp_path, server):
    monkeypatch.setenv("IDPWRAP_NO_KEYRING", "1")
    monkeypatch.setenv("GITEA_USERNAME", "giteaAdmin")
    monkeypatch.setenv("GITEA_TOKEN", "tok-3f9a-secret")
    monkeypatch.setenv("HOME", str(tmp_path))
    Handler.status, Handler.challenge = 200, ""  # a registry that asks for no credentials
    checks = registrycheck.registry_and_credentials(server)
    assert checks[0].status == OK, checks[0]
    assert checks[1] == Check(
        "credentials",
        OK,
        f"environment (GITEA_USERNAME, GITEA_TOKEN) (user giteaAdmin): {server[7:]} asks for none",
    )
    assert "tok-3f9a-secret" not in repr(checks)


def test_credentials_are_tried_for_real(monkeypatch, tmp_path, server):
    """The token service cannot be reached (port 1 of the loopback): an error, not "ok"."""
    Handler.challenge = 'Bearer realm="http://127.0.0.1:1/v2/token",service="container_registry"'
    monkeypatch.setenv("IDPWRAP_NO_KEYRING", "1")
    monkeypatch.setenv("GITEA_USERNAME", "giteaAdmin")
    monkeypatch.setenv("GITEA_TOKEN", "tok-3f9a-secret")
    monkeypatch.setenv("HOME", str(tmp_path))
    checks = registrycheck.registry_and_credentials(server)
    assert checks[1].status == ERROR, checks[1]
    assert "tok-3f9a-secret" not in repr(checks)
