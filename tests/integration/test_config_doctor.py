"""The config file in real pushes and builds, `idpwrap config show`, and `idpwrap doctor`
against real registries."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from testing.cli import Cli, json_events

pytestmark = pytest.mark.integration


def write_config(cli: Cli, text: str) -> Path:
    path = cli.home / ".config" / "idpwrap" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_push_takes_registry_owner_tls_and_progress_from_the_file(prebuilt, prebuilt_cli, registry):
    cli = prebuilt_cli
    config = write_config(
        cli,
        f"""\
        registry: {registry.url}
        owner: Team-One
        progress: json
        retry: 1
        registries:
          {registry.host}:
            ca_file: ca.pem
        """,
    )
    shutil.copyfile(registry.ca_file, config.parent / "ca.pem")  # relative to the file
    result = cli.run("push", "-v", "hello:v1", credentials=registry.credentials)
    assert result.returncode == 0, result.describe()
    assert f"Pushed {registry.host}/team-one/hello:v1@{prebuilt.hello.digest}" in result.stdout
    assert json_events(result.stderr)[-1]["event"] == "pushed"  # progress: json
    assert f"registry: {registry.url} (from {config}:1)" in result.stderr
    assert registry.client().manifest_digest("team-one/hello", "v1") == prebuilt.hello.digest

    # flags beat the environment, which beats the file
    result = cli.run(
        "push", "--owner", "flag-owner", "--progress", "none", "hello:v1",
        credentials=registry.credentials, env={"IDPWRAP_OWNER": "env-owner"},
    )  # fmt: skip
    assert result.returncode == 0, result.describe()
    assert f"{registry.host}/flag-owner/hello:v1@" in result.stdout
    assert result.stderr == ""  # progress none, from the flag
    result = cli.run(
        "push", "hello:v1", credentials=registry.credentials, env={"IDPWRAP_OWNER": "env-owner"}
    )
    assert f"{registry.host}/env-owner/hello:v1@" in result.stdout, result.describe()


def test_a_registry_section_can_turn_verification_off(prebuilt, prebuilt_cli, registry):
    write_config(
        prebuilt_cli,
        f"""\
        registry: {registry.url}
        registries:
          {registry.url}/:
            insecure: true
        """,
    )
    result = prebuilt_cli.run("push", "--progress", "none", "hello:v1",
                              credentials=registry.credentials)  # fmt: skip
    assert result.returncode == 0, result.describe()
    assert f"TLS verification is off for {registry.host}" in result.stderr
    # --ca-file on the command line decides TLS alone: verification is on again
    result = prebuilt_cli.run(
        "push", "--progress", "none", *registry.tls_options(), "hello:v1",
        credentials=registry.credentials,
    )  # fmt: skip
    assert result.returncode == 0, result.describe()
    assert "TLS verification is off" not in result.stderr


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("registry: https://x.test\nregsitry: y\n", 2, "unknown key 'regsitry'"),
        ("owner: [unclosed\n", 2, "not valid YAML"),
        ("retry: lots\n", 1, "'retry' must be a whole number >= 0"),
    ],
)
def test_a_bad_file_stops_every_command_with_its_line(cli, tmp_path, text, line, message):
    config = write_config(cli, text)
    context = tmp_path / "ctx"
    context.mkdir()
    for argv in (["push", "hello:v1"], ["build", "--context", str(context), "-t", "a:b"],
                 ["config", "show"]):  # fmt: skip
        result = cli.run(*argv)
        assert result.returncode == 2, result.describe()
        (error,) = result.error_lines()
        assert error.startswith(f"idpwrap: error: {config}:{line}: "), error
        assert message in error
        assert "Traceback" not in result.stderr


def test_config_show(cli, registry):
    config = write_config(
        cli,
        f"""\
        registry: {registry.url}
        owner: team
        registries:
          {registry.host}:
            insecure: true
        """,
    )
    result = cli.run("config", "show", env={"IDPWRAP_PROGRESS": "plain"})
    assert result.returncode == 0, result.describe()
    lines = result.stdout.splitlines()
    assert lines[0] == f"config file: {config}"
    rows = {line.split()[0]: line for line in lines[1:8]}
    assert rows["registry"].endswith("config file, line 1")
    assert rows["insecure"].split()[1:] == ["true", "config", "file,", "line", "5"]
    assert rows["progress"].split()[1:] == ["plain", "environment", "(IDPWRAP_PROGRESS)"]
    assert rows["retry"].split()[1:] == ["3", "default"]
    assert rows["store"].split()[1:] == [str(cli.store), "environment", "(IDPWRAP_STORE)"]
    described = json.loads(cli.run("config", "show", "--json").stdout)
    assert described["settings"]["owner"] == {"value": "team", "source": "config file, line 2"}
    assert described["registries"][registry.host]["insecure"] == {"value": True, "line": 5}


# -- doctor ------------------------------------------------------------------------------------


def doctor(cli: Cli, *args: str, **kwargs) -> tuple[int, dict]:
    result = cli.run("doctor", "--json", *args, **kwargs)
    return result.returncode, json.loads(result.stdout)


def by_name(report: dict) -> dict[str, dict]:
    return {check["name"]: check for check in report["checks"]}


def test_doctor_all_good(prebuilt_cli, registry):
    write_config(prebuilt_cli, f"registry: {registry.url}\nca_file: {registry.ca_file}\n")
    code, report = doctor(prebuilt_cli, credentials=registry.credentials)
    checks = by_name(report)
    assert code == 0, report
    assert report["errors"] == 0
    for name in ("config", "buildah", "skopeo", "rootless", "storage", "store", "disk"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["buildah"]["message"].startswith("buildah 1.")
    assert checks["registry"]["status"] == "ok"
    assert "reachable, TLS trusted, asks for Basic credentials" in checks["registry"]["message"]
    credentials = checks["credentials"]
    assert credentials["message"].startswith("environment (GITEA_USERNAME, GITEA_TOKEN)")
    assert registry.password not in json.dumps(report)


def test_doctor_finds_what_would_fail_a_push(cli, registry, http_registry):
    # a registry whose CA is not trusted
    code, report = doctor(cli, "--registry", registry.url)
    check = by_name(report)["registry"]
    assert code == 1
    assert check["status"] == "error" and "TLS not trusted" in check["message"]
    assert "--ca-file" in check["fix"]
    # a plain HTTP registry named with https://
    https_url = http_registry.url.replace("http://", "https://")
    code, report = doctor(cli, "--registry", https_url)
    assert code == 1
    assert by_name(report)["registry"]["fix"] == f"use {http_registry.url}"
    # a plain HTTP registry named as such: fine; no credentials is only a warning
    code, report = doctor(cli, "--registry", http_registry.url, env={"IDPWRAP_NO_KEYRING": "1"})
    assert by_name(report)["registry"]["status"] == "ok", report
    assert by_name(report)["credentials"]["status"] == "warning"
    assert code == 0
    # text output: a line per check and a verdict
    result = cli.run("doctor", "--registry", registry.url)
    assert result.returncode == 1
    assert any(
        line.startswith("error    registry") and "-> fix: " in line
        for line in result.stdout.splitlines()
    ), result.stdout
    assert result.stdout.splitlines()[-1].endswith("a build or push would fail")
