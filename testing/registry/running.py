"""A docker-registry started for the tests (testing.registry.distribution) with a watchdog, so
that it cannot outlive pytest, and with what a client needs to use it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from testing.processes import Watchdog
from testing.registry import distribution
from testing.registry.client import RegistryClient

USERNAME = "giteaAdmin"


@dataclass
class RunningRegistry:
    """A docker-registry we started, with what a client needs to use it."""

    info: distribution.Registry
    watchdog: Watchdog
    started: float  # time.time() before its password existed

    @property
    def host(self) -> str:
        return self.info.host

    @property
    def port(self) -> int:
        return self.info.port

    @property
    def url(self) -> str:
        return self.info.url

    @property
    def ca_file(self) -> str:
        return self.info.ca_file

    @property
    def username(self) -> str:
        return self.info.username

    @property
    def password(self) -> str:
        return self.info.password

    @property
    def credentials(self) -> tuple[str, str]:
        return self.info.username, self.info.password

    @property
    def directory(self) -> Path:
        return Path(self.info.directory)

    def client(self) -> RegistryClient:
        return RegistryClient(self.url, self.ca_file, self.username, self.password)

    def tls_options(self) -> list[str]:
        return ["--ca-file", self.ca_file] if self.ca_file else []

    def stop(self) -> None:
        try:
            self.info.stop()
        finally:
            self.watchdog.release()


def start_registry(directory: Path, *, tls: bool = True, deletes: bool = True) -> RunningRegistry:
    started = time.time() - 2  # slack for coarse file timestamps
    info = distribution.start(directory, USERNAME, tls=tls, deletes=deletes)
    watchdog = Watchdog(info.pid)
    # distribution.start keeps its facts, the password included, in registry.json for its `stop`
    # command. We stop by pid, and the leak test wants no copy of the password under /tmp.
    (directory / "registry.json").unlink(missing_ok=True)
    return RunningRegistry(info, watchdog, started)
