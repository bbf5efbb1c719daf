"""``idpwrap logout``: forget what ``idpwrap login`` kept in the keyring for a registry."""

from __future__ import annotations

from idpwrap.creds.login import default_registry, logout
from idpwrap.refs import DEFAULT_REGISTRY

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "registry", metavar="REGISTRY", nargs="?",
        help=f"the registry given to login (default: $IDPWRAP_REGISTRY, else {DEFAULT_REGISTRY})",
    )  # fmt: skip


def execute(args: argparse.Namespace) -> int:
    registry = default_registry(args.registry)
    if logout(registry.host):
        print(f"Removed login credentials for {registry.host}")
    else:
        print(f"Not logged in to {registry.host}")
    return 0
