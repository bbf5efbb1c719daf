"""The config file, ``$XDG_CONFIG_HOME/idpwrap/config.yaml``, and where each setting comes from.

Precedence, highest first: the command line, the environment (``IDPWRAP_*``), the config file
(a ``registries: {HOST: ...}`` section before the top-level keys), the built-in defaults.
``insecure`` and ``ca_file`` decide together how a registry's TLS is trusted, so they come as a
pair from the first level that sets either: ``--ca-file`` on the command line is not undone by
``insecure: true`` in the file. ``trust_of`` makes the one ``TlsTrust`` a command uses of them
(and of ``--cert-dir``, a flag only); "not given" (None) stays in here.

The file is read on every push, so ``yaml`` (about 30 ms of imports) is imported only when the
file exists. Errors name the file and the line, and exit with the usage code.
"""

from __future__ import annotations

import os
from collections import namedtuple
from collections.abc import Mapping

from idpwrap.config.keys import (
    KEYS,
    REGISTRY_KEYS,
    TLS_KEYS,
    convert,
)
from idpwrap.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from idpwrap.tls import TlsTrust

CONFIG_ENV = "IDPWRAP_CONFIG"
DEFAULT_RETRY = 3
DEFAULT_TAG_LOOKUP_TIMEOUT = 5


class Setting(namedtuple("Setting", "value source")):
    """An effective value and where it came from: ``--flag``, ``IDPWRAP_X``, ``FILE:LINE``
    or ``default``."""

    __slots__ = ()
    value: Any
    source: str


def config_file(environ: Mapping[str, str] | None = None) -> str:
    """``$IDPWRAP_CONFIG``, else ``$XDG_CONFIG_HOME/idpwrap/config.yaml`` (``~/.config``).

    A string: every push looks for the file, and pathlib costs an import it should not pay."""
    environ = os.environ if environ is None else environ
    explicit = environ.get(CONFIG_ENV)
    if explicit:
        return os.path.expanduser(explicit)
    config_home = environ.get("XDG_CONFIG_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".config"
    )
    return os.path.join(config_home, "idpwrap", "config.yaml")


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    from pathlib import Path

    return Path(config_file(environ))


def default_store(environ: Mapping[str, str]) -> str:
    data_home = environ.get("XDG_DATA_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(data_home, "idpwrap", "images")


class Config:
    """The values of the config file, each with its line; empty when there is no file."""

    def __init__(
        self,
        path: Path | str,
        values: dict[str, tuple[object, int]] | None = None,
        registries: dict[str, tuple[str, dict[str, tuple[object, int]]]] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.path = path
        self.exists = values is not None
        self.values = values or {}
        # registry host -> (the key as written, {key: (value, line)})
        self.registries = registries or {}
        self.environ = os.environ if environ is None else environ

    # -- reading -------------------------------------------------------------------------------

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Config:
        environ = os.environ if environ is None else environ
        path = config_file(environ)
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except FileNotFoundError:
            if environ.get(CONFIG_ENV):
                raise ConfigError(
                    f"config file {path} (from {CONFIG_ENV}) does not exist: create it or unset"
                    f" {CONFIG_ENV}"
                ) from None
            return cls(path, environ=environ)
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise ConfigError(f"cannot read config file {path}: {reason}") from error
        from pathlib import Path

        from idpwrap.config.file import parse

        values, registries = parse(text, Path(path))
        return cls(Path(path), values, registries, environ)

    def where(self, line: int) -> str:
        return f"{self.path}:{line}"

    # -- effective settings --------------------------------------------------------------------

    def setting(
        self,
        key: str,
        flag: object = None,
        flag_name: str | None = None,
        registry_host: str | None = None,
    ) -> Setting:
        """The value of ``key``: the flag, the environment, the file, the default."""
        if flag is not None:
            return Setting(flag, flag_name or f"--{key.replace('_', '-')}")
        variable = KEYS[key][0]
        text = self.environ.get(variable)
        if text:
            return Setting(convert(key, text, f"environment variable {variable}"), variable)
        if registry_host and key in REGISTRY_KEYS:
            section = self.registries.get(registry_host)
            if section and key in section[1]:
                value, line = section[1][key]
                return Setting(value, self.where(line))
        if key in self.values:
            value, line = self.values[key]
            return Setting(value, self.where(line))
        return Setting(self.default(key), "default")

    def default(self, key: str) -> object:
        if key == "registry":
            from idpwrap.refs import DEFAULT_REGISTRY

            return DEFAULT_REGISTRY
        if key == "insecure":
            return False
        if key == "store":
            return default_store(self.environ)
        if key == "progress":
            return "auto"
        if key == "retry":
            return DEFAULT_RETRY
        if key == "format":
            return "oci"
        if key == "up_to_date_check":
            return True
        if key == "provenance":
            return False
        if key == "tag_lookup_timeout":
            return DEFAULT_TAG_LOOKUP_TIMEOUT
        return None

    def tls(
        self, registry_host: str | None, flags: Mapping[str, object] | None = None
    ) -> tuple[Setting, Setting]:
        """(insecure, ca_file), taken together from the first level that sets either.

        ``flags`` holds the TLS options of the command line that were given (``insecure``,
        ``ca_file``, ``cert_dir``; None when not given): any of them decides alone.
        """
        given = {key: value for key, value in (flags or {}).items() if value is not None}
        if given:
            return (
                Setting(bool(given.get("insecure", False)), "command line"),
                Setting(given.get("ca_file"), "command line"),
            )
        levels: list[dict[str, Setting]] = [{}]
        for key in TLS_KEYS:
            variable = KEYS[key][0]
            text = self.environ.get(variable)
            if text:
                where = f"environment variable {variable}"
                levels[0][key] = Setting(convert(key, text, where), variable)
        if registry_host and registry_host in self.registries:
            section = self.registries[registry_host][1]
            levels.append(
                {key: Setting(value, self.where(line)) for key, (value, line) in section.items()}
            )
        levels.append(
            {
                key: Setting(self.values[key][0], self.where(self.values[key][1]))
                for key in TLS_KEYS
                if key in self.values
            }
        )
        for level in levels:
            chosen = {key: level[key] for key in TLS_KEYS if key in level}
            if chosen:
                source = next(iter(chosen.values())).source
                return (
                    chosen.get("insecure", Setting(False, source)),
                    chosen.get("ca_file", Setting(None, source)),
                )
        return Setting(False, "default"), Setting(None, "default")


def effective_settings(
    config: Config,
    registry: str | None = None,
    store: str | None = None,
    tls_flags: Mapping[str, object] | None = None,
) -> dict[str, Setting]:
    """Every setting as a push or build would use it, for ``idpwrap config show`` (and doctor,
    with its TLS flags: None when not given)."""
    settings = {"registry": config.setting("registry", registry, "--registry")}
    from idpwrap.refs import parse_registry

    host = parse_registry(str(settings["registry"].value)).host
    settings["owner"] = config.setting("owner", registry_host=host)
    settings["insecure"], settings["ca_file"] = config.tls(host, tls_flags)
    settings["store"] = config.setting("store", store, "--store")
    settings["progress"] = config.setting("progress")
    settings["retry"] = config.setting("retry")
    settings["timestamp"] = config.setting("timestamp")
    settings["format"] = config.setting("format")
    settings["sign_by_sigstore_private_key"] = config.setting("sign_by_sigstore_private_key")
    settings["platform"] = config.setting("platform")
    settings["provenance"] = config.setting("provenance")
    settings["up_to_date_check"] = config.setting("up_to_date_check")
    settings["tag_lookup_timeout"] = config.setting("tag_lookup_timeout")
    settings["cache"] = config.setting("cache")
    settings["cache_ttl"] = config.setting("cache_ttl")
    return settings


def insecure_flag(insecure: bool, tls_verify: bool | None) -> bool | None:
    """``--insecure`` and ``--tls-verify`` as one flag; None when neither was given, so that the
    config decides (``--tls-verify=true`` says False: the config cannot turn verification off)."""
    if insecure or tls_verify is not None:
        return insecure or not tls_verify
    return None


def trust_of(settings: Mapping[str, Setting], cert_dir: str | None) -> TlsTrust:
    """The one TLS trust of resolved ``insecure`` and ``ca_file`` settings and ``--cert-dir``."""
    from idpwrap.tls import TlsTrust

    return TlsTrust.of(
        bool(settings["insecure"].value), settings["ca_file"].value or None, cert_dir or None
    )


_LOADED: dict[str, Config] = {}


def load() -> Config:
    """The config of this process (``os.environ``), read once (again if the file changes)."""
    path = config_file()
    try:
        info = os.stat(path)
        key = f"{path} {info.st_mtime_ns} {info.st_size}"
    except OSError:
        key = str(path)
    if key not in _LOADED:
        _LOADED[key] = Config.load()
    return _LOADED[key]


def image_format(flag: str | None) -> str:
    """``--format``, else ``$BUILDAH_FORMAT``, else the file's ``format``, else oci."""
    return str(load().setting("format", flag, "--format").value)


def store_root(flag: str | None) -> str:
    """``--store``, else ``$IDPWRAP_STORE``, else the file's ``store``, else the default."""
    return str(load().setting("store", flag, "--store").value)


def for_push(
    *,
    source_host: str | None,
    registry: str | None,
    owner: str | None,
    insecure: bool | None,
    ca_file: str | None,
    cert_dir: str | None,
    retry: int | None,
    progress: str | None,
) -> dict[str, Setting]:
    """A push's settings from its flags (None: not given) and the levels below them.

    ``registry`` stays None when the flag is absent and SOURCE names its registry
    (``source_host``): that registry is used, with its own section of the file.
    """
    from idpwrap import log
    from idpwrap.refs import parse_registry

    config = load()
    settings: dict[str, Setting] = {}
    if registry is None and source_host:
        settings["registry"] = Setting(None, "SOURCE")
        host = source_host.lower()
    else:
        settings["registry"] = config.setting("registry", registry, "--registry")
        host = parse_registry(str(settings["registry"].value)).host
    settings["owner"] = config.setting("owner", owner, "--owner", registry_host=host)
    flags = {"insecure": insecure, "ca_file": ca_file, "cert_dir": cert_dir}
    settings["insecure"], settings["ca_file"] = config.tls(host, flags)
    chosen_ca = settings["ca_file"]
    if chosen_ca.value and chosen_ca.source != "command line":
        if not os.path.isfile(str(chosen_ca.value)):
            raise ConfigError(f"{chosen_ca.source}: ca_file {chosen_ca.value} does not exist")
    settings["retry"] = config.setting("retry", retry, "--retry")
    settings["progress"] = config.setting("progress", progress, "--progress")
    for key, setting in settings.items():
        if setting.source not in ("default", "command line", "SOURCE") and not (
            setting.source.startswith("--")
        ):
            log.info("%s: %s (from %s)", key, setting.value, setting.source)
    return settings
