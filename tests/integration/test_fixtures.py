"""The fixtures themselves: the throwaway registries listen on the loopback interface only."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) with a socket listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            next(handle)
            for line in handle:
                fields = line.split()
                address, port_hex = fields[1].rsplit(":", 1)
                if int(port_hex, 16) == port and fields[3] == "0A":  # LISTEN
                    found.add(address)
    return found


def test_registries_listen_on_loopback_only(registry, http_registry) -> None:
    for running in (registry, http_registry):
        # 127.0.0.1 is 0100007F in /proc/net/tcp's little-endian hex.
        assert listening_addresses(running.port) == {"0100007F"}, running.host
