"""Fixtures: throwaway registries on 127.0.0.1, build contexts, stores, and the CLI runner.

Expensive things are made once per session: the registries (TLS with a throwaway CA and
htpasswd; plain HTTP) and a store holding ``hello:v1`` and ``three:v1`` built with real buildah.
Tests that change a store get their own (empty, or a copy of the prebuilt one).
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .helpers import (
    BUSYBOX,
    ROOT,
    SCRIPTS,
    Cli,
    LocalImage,
    RegistryClient,
    ThrottledRelay,
    Watchdog,
    local_image,
    make_cli,
    make_context,
)

if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import gitearegistry
import localregistry

USERNAME = "giteaAdmin"
# Layer payloads of known sizes; pseudo-random so that gzip cannot shrink them, seeded so that
# buildah's layer cache serves them again in the next session instead of growing.
THREE_LAYERS = (("a.bin", 6, 61), ("b.bin", 3, 31), ("c.bin", 1, 11))  # name, MiB, seed

THREE_LAYER_CONTAINERFILE = """\
FROM scratch
COPY busybox /bin/busybox
COPY a.bin /data/a.bin
COPY b.bin /data/b.bin
COPY c.bin /data/c.bin
CMD ["/bin/busybox", "ls", "-l", "/data"]
"""


@dataclass
class RunningRegistry:
    """A docker-registry we started, with what a client needs to use it."""

    info: localregistry.Registry
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


def start_registry(directory: Path, *, tls: bool = True) -> RunningRegistry:
    started = time.time() - 2  # slack for coarse file timestamps
    info = localregistry.start(directory, USERNAME, tls=tls)
    watchdog = Watchdog(info.pid)
    # localregistry keeps its facts, the password included, in registry.json for its `stop`
    # command. We stop by pid, and the leak test wants no copy of the password under /tmp.
    (directory / "registry.json").unlink(missing_ok=True)
    return RunningRegistry(info, watchdog, started)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """docker-registry on 127.0.0.1 with TLS (throwaway CA) and htpasswd (user giteaAdmin)."""
    running = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def fresh_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """Like ``registry``, with empty storage, for tests that must see every blob uploaded."""
    running = start_registry(tmp_path_factory.mktemp("fresh-registry"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def http_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """docker-registry on 127.0.0.1 over plain HTTP, with htpasswd."""
    running = start_registry(tmp_path_factory.mktemp("http-registry"), tls=False)
    try:
        yield running
    finally:
        running.stop()


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
            gitearegistry.stop(self.facts)
        finally:
            for watchdog in self.watchdogs:
                watchdog.release()


def start_gitea(
    directory: Path, body_limit: int = gitearegistry.DEFAULT_BODY_LIMIT
) -> GiteaRegistry:
    facts = gitearegistry.start(directory, body_limit)
    return GiteaRegistry(facts, [Watchdog(pid) for pid in facts["pids"]])


@pytest.fixture(scope="session")
def gitea_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GiteaRegistry]:
    """Gitea 1.24.3 as idpbuilder runs it (users giteaAdmin, developer, outsider; org platform)."""
    running = start_gitea(tmp_path_factory.mktemp("gitea"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def small_gitea_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GiteaRegistry]:
    """The Gitea mode behind an ingress whose proxy-body-size is 1 MiB."""
    running = start_gitea(tmp_path_factory.mktemp("gitea-small"), body_limit=1024 * 1024)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def relay_to() -> Iterator[object]:
    """``relay_to(registry, rate)``: a throttling TCP relay to a registry, closed afterwards."""
    relays: list[ThrottledRelay] = []

    def make(target: RunningRegistry, rate: float) -> ThrottledRelay:
        relay = ThrottledRelay(target.port, rate)
        relays.append(relay)
        return relay

    yield make
    for relay in relays:
        relay.close()


# -- build contexts ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def hello_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/hello with busybox copied in, as scripts/demo does."""
    directory = tmp_path_factory.mktemp("hello-context")
    shutil.copytree(ROOT / "examples" / "hello", directory, dirs_exist_ok=True)
    shutil.copy2(BUSYBOX, directory / "busybox")
    return directory


@pytest.fixture(scope="session")
def three_layer_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """busybox plus layers of 6, 3 and 1 MiB of incompressible data."""
    files = {
        name: random.Random(seed).randbytes(mib * 1024 * 1024) for name, mib, seed in THREE_LAYERS
    }
    return make_context(tmp_path_factory.mktemp("three-context"), THREE_LAYER_CONTAINERFILE, files)


# -- stores and the CLI ------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An empty store directory (idpwrap creates the layout in it)."""
    path = tmp_path / "store"
    path.mkdir()
    return path


@pytest.fixture
def cli(tmp_path: Path, store: Path) -> Cli:
    """idpwrap on ``store``, as a real subprocess with a clean environment."""
    return make_cli(tmp_path / "cli", store)


@dataclass
class Prebuilt:
    """A store made once per session: ``hello:v1`` (examples/hello) and ``three:v1``."""

    store: Path
    hello: LocalImage
    three: LocalImage


@pytest.fixture(scope="session")
def prebuilt(
    tmp_path_factory: pytest.TempPathFactory, hello_context: Path, three_layer_context: Path
) -> Prebuilt:
    base = tmp_path_factory.mktemp("prebuilt")
    store = base / "store"
    builder = make_cli(base / "cli", store)
    for context, tag in ((hello_context, "hello:v1"), (three_layer_context, "three:v1")):
        result = builder.run("build", "-q", "--context", str(context), "--tag", tag)
        assert result.returncode == 0, result.describe()
    return Prebuilt(store, local_image(store, "hello:v1"), local_image(store, "three:v1"))


@pytest.fixture
def prebuilt_cli(tmp_path: Path, prebuilt: Prebuilt) -> Cli:
    """idpwrap on the session's prebuilt store; for tests that only read it (push, images)."""
    return make_cli(tmp_path / "cli", prebuilt.store)


@pytest.fixture
def prebuilt_copy(tmp_path: Path, prebuilt: Prebuilt) -> Cli:
    """idpwrap on a private copy of the prebuilt store, for tests that change it."""
    store = tmp_path / "store-copy"
    shutil.copytree(prebuilt.store, store, symlinks=True)
    return make_cli(tmp_path / "cli", store)
