"""The fixtures themselves: the throwaway registries listen on the loopback interface only."""

from __future__ import annotations

import pytest

from testing.processes import listening_addresses

pytestmark = pytest.mark.integration


def test_registries_listen_on_loopback_only(registry, http_registry) -> None:
    for running in (registry, http_registry):
        # 127.0.0.1 is 0100007F in /proc/net/tcp's little-endian hex.
        assert listening_addresses(running.port) == {"0100007F"}, running.host
