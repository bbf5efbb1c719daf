"""The Gitea mode (testing.gitea.registry) started for the tests, with a watchdog per process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from testing.gitea import registry as gitea
from testing.processes import Watchdog
from testing.registry.client import RegistryClient


@dataclass
class GiteaRegistry:
    """The Gitea mode (``localregistry.py start --gitea``): its facts from registry.json."""

    facts: dict
    watchdogs: list[Watchdog]

    @property
    def host(self) -> str:
        return self.facts["host"]

    @property
    def url(self) -> str:
        return self.facts["url"]

    @property
    def ca_file(self) -> str:
        return self.facts["ca_file"]

    @property
    def port(self) -> int:
        return self.facts["port"]

    @property
    def directory(self) -> Path:
        return Path(self.facts["directory"])

    def secret(self, user: str, kind: str = "password") -> str:
        """``kind``: password, token (write:package) or read_token (read:package)."""
        return self.facts["users"][user][kind]

    def client(self, user: str = "giteaAdmin", kind: str = "password") -> RegistryClient:
        return RegistryClient(self.url, self.ca_file, user, self.secret(user, kind))

    def tls_options(self) -> list[str]:
        return ["--ca-file", self.ca_file]

    def stop(self) -> None:
        try:
            gitea.stop(self.facts)
        finally:
            for watchdog in self.watchdogs:
                watchdog.release()


def start_gitea(
    directory: Path, body_limit: int = gitea.DEFAULT_BODY_LIMIT, refuse_manifest_head: bool = False
) -> GiteaRegistry:
    facts = gitea.start(directory, body_limit, refuse_manifest_head)
    return GiteaRegistry(facts, [Watchdog(pid) for pid in facts["pids"]])
