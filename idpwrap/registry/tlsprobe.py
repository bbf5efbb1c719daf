"""Whether an ``http://`` registry answers TLS.

skopeo talks to a registry named ``http://`` with ``--dest-tls-verify=false``, which in
containers/image means "try HTTPS without verifying the certificate, then plain HTTP": a
registry that answers TLS is then used over TLS that nobody verified, silently. A TLS
handshake (no certificate check, nothing sent after it) tells us so before the push.
"""

from __future__ import annotations

import socket

PROBE_SECONDS = 3.0


def split_host(host: str) -> tuple[str, int]:
    """``host[:port]`` (``[v6]:port`` too) -> (host, port); 80 without a port, as for http."""
    if host.startswith("["):
        address, _, rest = host[1:].partition("]")
        return address, int(rest[1:]) if rest.startswith(":") else 80
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        return name, int(port)
    return host, 80


def answers_tls(host: str, timeout: float = PROBE_SECONDS) -> bool:
    """True when ``host[:port]`` completes a TLS handshake; False for plain HTTP, a refused or
    slow connection, or anything else (the push then reports what it finds)."""
    import ssl

    name, port = split_host(host)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((name, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=name):
                return True
    except (OSError, ValueError):
        return False
