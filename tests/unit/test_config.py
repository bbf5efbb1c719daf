"""config.py: the config file, its errors with file and line, and the precedence of settings."""

from __future__ import annotations

import sys
import textwrap

import pytest

from idpwrap.config.settings import Config, Setting, config_path, effective_settings
from idpwrap.errors import EXIT_USAGE, ConfigError
from idpwrap.refs import DEFAULT_REGISTRY


def write_config(tmp_path, text):
    path = tmp_path / "xdg-config" / "idpwrap" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def environ(tmp_path, **extra):
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg-config"), "HOME": str(tmp_path), **extra}


def load(tmp_path, text, **extra):
    write_config(tmp_path, text)
    return Config.load(environ(tmp_path, **extra))


FULL = """\
    # idpwrap settings
    registry: https://gitea.example.test:8443
    owner: team
    insecure: false
    ca_file: certs/ca.pem
    store: ~/images
    progress: plain
    retry: 5
    registries:
      gitea.example.test:8443:
        insecure: true
        owner: giteaadmin
      http://127.0.0.1:5000:
        ca_file: /etc/ssl/local.pem
    """


# -- where the file is ------------------------------------------------------------------------


def test_path_follows_xdg_config_home(tmp_path):
    assert config_path(environ(tmp_path)) == tmp_path / "xdg-config/idpwrap/config.yaml"


def test_path_defaults_to_home_dot_config(tmp_path):
    assert config_path({"HOME": str(tmp_path)}) == tmp_path / ".config/idpwrap/config.yaml"


def test_path_from_idpwrap_config(tmp_path):
    assert config_path({"IDPWRAP_CONFIG": str(tmp_path / "x.yaml")}) == tmp_path / "x.yaml"


def test_no_file_means_defaults_and_no_yaml_import(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "yaml", raising=False)
    config = Config.load(environ(tmp_path))
    assert not config.exists
    assert config.setting("registry") == Setting(DEFAULT_REGISTRY, "default")
    assert config.setting("retry") == Setting(3, "default")
    assert config.setting("progress") == Setting("auto", "default")
    assert config.setting("owner") == Setting(None, "default")
    assert "yaml" not in sys.modules


def test_missing_file_named_by_idpwrap_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist: create it or unset IDPWRAP_CONFIG"):
        Config.load({"IDPWRAP_CONFIG": str(tmp_path / "missing.yaml")})


# -- values and their lines -------------------------------------------------------------------


def test_every_key_with_its_line(tmp_path):
    config = load(tmp_path, FULL)
    path = tmp_path / "xdg-config/idpwrap/config.yaml"
    assert config.setting("registry") == Setting("https://gitea.example.test:8443", f"{path}:2")
    assert config.setting("owner") == Setting("team", f"{path}:3")
    assert config.setting("retry") == Setting(5, f"{path}:8")
    assert config.setting("progress") == Setting("plain", f"{path}:7")
    # paths: ~ expanded, relative ones taken from the file's directory
    store = config.setting("store").value
    assert store.endswith("/images")
    assert not store.startswith("~")
    assert config.values["ca_file"][0] == str(path.parent / "certs/ca.pem")


def test_registry_sections_are_keyed_by_host(tmp_path):
    config = load(tmp_path, FULL)
    assert set(config.registries) == {"gitea.example.test:8443", "127.0.0.1:5000"}
    assert config.setting("owner", registry_host="gitea.example.test:8443").value == "giteaadmin"
    assert config.setting("owner", registry_host="other:1").value == "team"


def test_empty_file_is_no_settings(tmp_path):
    config = load(tmp_path, "# nothing yet\n")
    assert config.exists
    assert config.setting("registry").source == "default"


def test_a_key_without_value_is_unset(tmp_path):
    assert load(tmp_path, "owner:\n").setting("owner").source == "default"


# -- errors: file and line, exit code 2 --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("registry: x.test\nregsitry: y\n", 2, "unknown key 'regsitry': did you mean 'registry'?"),
        ("owner: a\npassword: hunter2\n", 2, "unknown key 'password'"),
        ("registry: [x\nowner: y\n", 2, "not valid YAML"),
        ("owner: a\n  b: c\n", 2, "not valid YAML"),
        ("retry: -1\n", 1, "'retry' must be a whole number >= 0, not -1"),
        ("retry: many\n", 1, "'retry' must be a whole number >= 0"),
        ("insecure: maybe\n", 1, "'insecure' must be true or false"),
        ("progress: fancy\n", 1, "'progress' must be one of auto, tty, plain, json, none"),
        ("registry: ftp://x\n", 1, "only https:// and http:// are supported"),
        ("owner: [a, b]\n", 1, "'owner' must be a non-empty string"),
        ("- a\n- b\n", 1, "must be a mapping of settings"),
        ("registries:\n  h.test:\n    retry: 2\n", 3, "unknown key 'retry'"),
        ("registries: [a]\n", 1, "'registries' must map registry hosts"),
        ("registries:\n  'x/y':\n    insecure: true\n", 2, "in 'registries'"),
        ("owner: a\nowner: b\n", 2, "'owner' is set twice (first on line 1)"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path, text, line, message):
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        Config.load(environ(tmp_path))
    assert str(caught.value).startswith(f"{path}:{line}: "), str(caught.value)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == EXIT_USAGE


def test_secret_values_are_not_repeated_in_errors(tmp_path):
    path = write_config(tmp_path, "token: s3cr3t-value\n")
    with pytest.raises(ConfigError) as caught:
        Config.load(environ(tmp_path))
    assert "s3cr3t-value" not in str(caught.value)
    assert str(path) in str(caught.value)


def test_unreadable_file(tmp_path):
    path = write_config(tmp_path, "owner: a\n")
    path.write_bytes(b"owner: \xff\xfe\n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        Config.load(environ(tmp_path))


# -- precedence: flags > environment > file (registry section, then top level) > defaults ------


def test_flag_beats_environment_beats_file(tmp_path):
    config = load(tmp_path, FULL, IDPWRAP_OWNER="from-env")
    assert config.setting("owner", "from-flag", "--owner") == Setting("from-flag", "--owner")
    assert config.setting("owner") == Setting("from-env", "IDPWRAP_OWNER")
    host = "gitea.example.test:8443"
    assert config.setting("owner", registry_host=host) == Setting("from-env", "IDPWRAP_OWNER")


def test_the_image_format_from_buildah_format_or_the_file(tmp_path):
    assert load(tmp_path, "").setting("format") == Setting("oci", "default")
    assert load(tmp_path, "format: docker\n").setting("format").value == "docker"
    assert load(tmp_path, "format: docker\n", BUILDAH_FORMAT="oci").setting("format") == (
        Setting("oci", "BUILDAH_FORMAT")
    )
    with pytest.raises(ConfigError, match="'format' must be one of oci, docker, not 'v2s2'"):
        load(tmp_path, "", BUILDAH_FORMAT="v2s2").setting("format")


def test_environment_values_are_checked(tmp_path):
    config = load(tmp_path, "", IDPWRAP_RETRY="lots")
    with pytest.raises(ConfigError, match="environment variable IDPWRAP_RETRY: 'retry' must be"):
        config.setting("retry")
    assert load(tmp_path, "", IDPWRAP_RETRY="7").setting("retry") == Setting(7, "IDPWRAP_RETRY")


def test_tls_comes_as_a_pair_from_one_level(tmp_path):
    config = load(tmp_path, FULL)
    path = tmp_path / "xdg-config/idpwrap/config.yaml"
    insecure, ca_file = config.tls("gitea.example.test:8443")
    assert insecure == Setting(True, f"{path}:11")
    assert ca_file == Setting(None, f"{path}:11")  # not the top-level ca_file
    insecure, ca_file = config.tls("127.0.0.1:5000")
    assert insecure.value is False
    assert ca_file == Setting("/etc/ssl/local.pem", f"{path}:14")
    insecure, ca_file = config.tls("elsewhere.test")
    assert insecure == Setting(False, f"{path}:4")
    assert ca_file.value == str(path.parent / "certs/ca.pem")


def test_tls_from_the_command_line_decides_alone(tmp_path):
    config = load(tmp_path, FULL)
    insecure, ca_file = config.tls("gitea.example.test:8443", {"ca_file": "/mine.pem"})
    assert insecure == Setting(False, "command line")
    assert ca_file == Setting("/mine.pem", "command line")
    insecure, _ = config.tls("127.0.0.1:5000", {"insecure": True})
    assert insecure == Setting(True, "command line")
    insecure, ca_file = config.tls("gitea.example.test:8443", {"cert_dir": "/certs"})
    assert (insecure.value, ca_file.value) == (False, None)


def test_tls_from_the_environment(tmp_path):
    config = load(tmp_path, FULL, IDPWRAP_INSECURE="yes")
    insecure, ca_file = config.tls("127.0.0.1:5000")
    assert insecure == Setting(True, "IDPWRAP_INSECURE")
    assert ca_file == Setting(None, "IDPWRAP_INSECURE")


def test_effective_settings(tmp_path):
    config = load(tmp_path, FULL, XDG_DATA_HOME=str(tmp_path / "data"))
    settings = effective_settings(config)
    assert settings["registry"].value == "https://gitea.example.test:8443"
    assert settings["owner"].value == "giteaadmin"  # the registry's own section
    assert settings["insecure"].value is True
    settings = effective_settings(config, registry="http://127.0.0.1:5000", store="/s")
    assert settings["registry"] == Setting("http://127.0.0.1:5000", "--registry")
    assert settings["owner"].value == "team"
    assert settings["ca_file"].value == "/etc/ssl/local.pem"
    assert settings["store"] == Setting("/s", "--store")


def test_default_store_follows_xdg_data_home(tmp_path):
    config = Config.load(environ(tmp_path, XDG_DATA_HOME=str(tmp_path / "data")))
    assert config.setting("store") == Setting(str(tmp_path / "data/idpwrap/images"), "default")


# -- a push's settings -------------------------------------------------------------------------


def push_settings(**flags):
    from idpwrap.config.settings import for_push

    values = {"source_host": None, "registry": None, "owner": None, "insecure": None,
              "ca_file": None, "cert_dir": None, "retry": None, "progress": None}  # fmt: skip
    values.update(flags)
    return for_push(**values)


def test_push_defaults_without_a_file(monkeypatch):
    for name in ("IDPWRAP_REGISTRY", "IDPWRAP_PROGRESS"):
        monkeypatch.delenv(name, raising=False)
    settings = push_settings()
    assert settings["registry"] == Setting(DEFAULT_REGISTRY, "default")
    assert settings["retry"] == Setting(3, "default")
    assert settings["insecure"] == Setting(False, "default")


def test_push_settings_from_the_file_and_the_flags(tmp_path, monkeypatch):
    monkeypatch.delenv("IDPWRAP_REGISTRY", raising=False)
    monkeypatch.delenv("IDPWRAP_PROGRESS", raising=False)
    path = write_config(tmp_path, FULL)
    (path.parent / "certs").mkdir()
    (path.parent / "certs" / "ca.pem").write_text("pem")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    settings = push_settings()
    assert settings["registry"].value == "https://gitea.example.test:8443"
    assert settings["owner"].value == "giteaadmin"
    assert settings["insecure"].value is True
    assert settings["retry"] == Setting(5, f"{path}:8")
    settings = push_settings(retry=0, progress="json", owner="me", ca_file="/x.pem")
    assert settings["retry"] == Setting(0, "--retry")
    assert settings["progress"] == Setting("json", "--progress")
    assert settings["owner"] == Setting("me", "--owner")
    assert (settings["insecure"].value, settings["ca_file"].value) == (False, "/x.pem")
    # SOURCE names its registry: no registry setting, and that registry's section applies
    settings = push_settings(source_host="gitea.example.test:8443")
    assert settings["registry"] == Setting(None, "SOURCE")
    assert settings["insecure"] == Setting(True, f"{path}:11")
    with pytest.raises(ConfigError, match=f"{path}:14: ca_file /etc/ssl/local.pem does not"):
        push_settings(source_host="127.0.0.1:5000")


def test_push_ca_file_from_the_file_must_exist(tmp_path, monkeypatch):
    monkeypatch.delenv("IDPWRAP_REGISTRY", raising=False)
    path = write_config(tmp_path, "ca_file: missing.pem\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    with pytest.raises(ConfigError) as caught:
        push_settings()
    assert str(caught.value) == f"{path}:1: ca_file {path.parent / 'missing.pem'} does not exist"
