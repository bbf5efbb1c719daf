"""Fixtures: throwaway registries on 127.0.0.1, build contexts, stores, and the CLI runner.

Expensive things are made once per session: the registries (TLS with a throwaway CA and
htpasswd; plain HTTP) and a store holding ``hello:v1`` and ``three:v1`` built with real buildah.
Tests that change a store get their own (empty, or a copy of the prebuilt one). What the fixtures
are made of lives in the ``testing`` package.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.cli import Cli, make_cli
from testing.gitea.running import GiteaRegistry, start_gitea
from testing.images import (
    THREE_LAYER_CONTAINERFILE,
    THREE_LAYERS,
    Prebuilt,
    local_image,
    make_context,
)
from testing.paths import BUSYBOX, ROOT
from testing.registry.running import RunningRegistry, start_registry
from testing.relay import ThrottledRelay


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
