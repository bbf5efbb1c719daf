"""The config file's YAML: its settings and ``registries`` sections with the line each is on.

The one parser of the format; ``config.settings`` decides what the settings mean. Errors name
the file and the line (ConfigError, the usage exit code), and an unknown key its closest match.
"""

from __future__ import annotations

from idpwrap.config.keys import KEYS, REGISTRY_KEYS, convert
from idpwrap.errors import ConfigError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


def parse(
    text: str, path: Path
) -> tuple[dict[str, tuple[object, int]], dict[str, tuple[str, dict[str, tuple[object, int]]]]]:
    """The file's settings with their lines; ConfigError for YAML errors and unknown keys."""
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return {}, {}
        if not isinstance(root, yaml.MappingNode):
            raise ConfigError(
                f"{path}:{root.start_mark.line + 1}: the config file must be a mapping of"
                f" settings (registry: ..., owner: ...), not a {_kind(root)}"
            )
        values: dict[str, tuple[object, int]] = {}
        registries: dict[str, tuple[str, dict[str, tuple[object, int]]]] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in root.value:
            key, line = _key(key_node, path, (*KEYS, "registries"))
            if key in lines:
                raise ConfigError(
                    f"{path}:{line}: '{key}' is set twice (first on line {lines[key]})"
                )
            lines[key] = line
            if key == "registries":
                registries = _registries(loader, value_node, path)
                continue
            value = loader.construct_object(value_node, deep=True)
            if value is None:
                continue  # `owner:` with nothing after it: as if unset
            values[key] = (convert(key, value, f"{path}:{line}", path.parent), line)
        return values, registries
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        context = getattr(error, "context", None)
        detail = f"{context} {problem}" if context else problem
        raise ConfigError(
            f"{where}: not valid YAML ({' '.join(detail.split())}): fix the file or move it aside"
        ) from error
    finally:
        loader.dispose()


def _kind(node: object) -> str:
    return {"ScalarNode": "single value", "SequenceNode": "list"}.get(
        type(node).__name__, "mapping"
    )


def _key(node: Any, path: Path, known: tuple[str, ...]) -> tuple[str, int]:
    line = node.start_mark.line + 1
    key = node.value if type(node).__name__ == "ScalarNode" else None
    if key not in known:
        import difflib

        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"{path}:{line}: unknown key {key!r}: {hint}known keys are {', '.join(known)}"
        )
    return key, line


def _registries(
    loader: Any, node: Any, path: Path
) -> dict[str, tuple[str, dict[str, tuple[object, int]]]]:
    from idpwrap.refs import parse_registry

    if type(node).__name__ != "MappingNode":
        if loader.construct_object(node) is None:
            return {}
        raise ConfigError(
            f"{path}:{node.start_mark.line + 1}: 'registries' must map registry hosts to their"
            " settings, e.g. registries: {gitea.cnoe.localtest.me:8443: {insecure: true}}"
        )
    registries: dict[str, tuple[str, dict[str, tuple[object, int]]]] = {}
    for host_node, section_node in node.value:
        line = host_node.start_mark.line + 1
        written = str(loader.construct_object(host_node))
        try:
            host = parse_registry(written).host
        except UsageError as error:
            raise ConfigError(f"{path}:{line}: in 'registries': {error}") from error
        section: dict[str, tuple[object, int]] = {}
        if type(section_node).__name__ == "MappingNode":
            for key_node, value_node in section_node.value:
                key, key_line = _key(key_node, path, REGISTRY_KEYS)
                value = loader.construct_object(value_node, deep=True)
                if value is not None:
                    where = f"{path}:{key_line}"
                    section[key] = (convert(key, value, where, path.parent), key_line)
        elif loader.construct_object(section_node) is not None:
            raise ConfigError(
                f"{path}:{line}: registry {written!r} needs a mapping of settings"
                f" ({', '.join(REGISTRY_KEYS)})"
            )
        registries[host] = (written, section)
    return registries
