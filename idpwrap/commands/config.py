"""``idpwrap config show``: the effective settings and where each came from."""

from __future__ import annotations

import json

from idpwrap.config import settings as config
from idpwrap.config.settings import Setting

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def source_text(setting: Setting, loaded: config.Config) -> str:
    prefix = f"{loaded.path}:"
    if setting.source.startswith(prefix):
        return f"config file, line {setting.source[len(prefix) :]}"
    if setting.source.startswith("IDPWRAP_"):
        return f"environment ({setting.source})"
    if setting.source.startswith("--"):
        return f"command line ({setting.source})"
    return setting.source


def value_text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def describe(registry: str | None, store: str | None) -> dict[str, object]:
    loaded = config.load()
    settings = config.effective_settings(loaded, registry, store)
    return {
        "config_file": str(loaded.path),
        "exists": loaded.exists,
        "settings": {
            key: {"value": setting.value, "source": source_text(setting, loaded)}
            for key, setting in settings.items()
        },
        "registries": {
            host: {
                "written": written,
                **{key: {"value": value, "line": line} for key, (value, line) in section.items()},
            }
            for host, (written, section) in loaded.registries.items()
        },
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action", choices=("show", "path"),
        help="show: the effective settings and their sources; path: the config file's path",
    )  # fmt: skip
    parser.add_argument(
        "--registry", metavar="URL",
        help="show the settings a push to this registry would use (its section of the file)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def execute(args: argparse.Namespace) -> int:
    if args.action == "path":
        print(config.config_path())
        return 0
    described = describe(args.registry, args.store)
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    state = "" if described["exists"] else " (none: built-in defaults)"
    print(f"config file: {described['config_file']}{state}")
    settings = described["settings"]
    assert isinstance(settings, dict)
    width = max(len(value_text(item["value"])) for item in settings.values())
    names = max(9, *(len(key) for key in settings))
    for key, item in settings.items():
        print(f"{key:<{names}} {value_text(item['value']):<{width}}  {item['source']}")
    registries = described["registries"]
    assert isinstance(registries, dict)
    if registries:
        print("registries:")
        for host, section in registries.items():
            values = [
                f"{key}={value_text(item['value'])} (line {item['line']})"
                for key, item in section.items()
                if key != "written"
            ]
            print(f"  {host:<30} {'  '.join(values) or '-'}")
    return 0
