"""HTTP/1.1 on kept-alive sockets for a push's questions to its registry (the tag lookup
before a copy, its token, the read-back after it, a provenance attach): one TLS handshake for
all of them, each request sent at once (TCP_NODELAY), and no ``http.client`` on the push path.
"""

from __future__ import annotations

from collections.abc import Mapping

from idpwrap import log
from idpwrap.registry import api

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    import ssl
    from typing import BinaryIO

    from idpwrap.refs import Registry

DEFAULT_TIMEOUT_SECONDS = 5.0

# What one answer may bring: more header lines or a longer line than any registry sends, or a
# body longer than any token or error we read, and the answer is not read further.
MAX_HEADER_LINES = 200
MAX_LINE = 65536
MAX_BODY = 1 << 20


class Headers(dict):  # type: ignore[type-arg]
    """An answer's headers by lowercased name; a repeated header's values joined by ", " (as
    RFC 9110 allows for lists such as WWW-Authenticate's challenges)."""

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())  # type: ignore[no-any-return]

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name.lower() if isinstance(name, str) else name)


class KeptClient(api.Client):
    """``api.Client.get`` as HTTP/1.1 on kept-alive sockets, one per scheme and host: the
    lookup before a copy, its token and the read-back after it share one TLS handshake.
    Written on ``socket`` and ``ssl`` alone because ``http.client`` imports the ``email``
    package (about 10 ms of every push here, a twentieth of a small push); what it reads is
    a status line, headers, and a body by Content-Length or chunks. A redirect is followed by
    ``api.Client`` (urllib), which never carries the credentials to another host."""

    def __init__(
        self,
        registry: Registry,
        context: ssl.SSLContext | None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.registry = registry
        self.timeout = timeout
        self.context = context
        self.connections: dict[tuple[str, str], tuple[socket.socket, BinaryIO]] = {}
        self.redirects: api.Client | None = None

    def get(
        self,
        url: str,
        authorization: str | None = None,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> api._Response:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {"Host": parts.netloc, "User-Agent": "idpwrap", **(headers or {})}
        if authorization:
            sent["Authorization"] = authorization
        if data is not None or method in ("POST", "PUT", "PATCH"):
            sent["Content-Length"] = str(len(data or b""))
        log.debug("%s %s%s", method, url, " (with credentials)" if authorization else "")
        key = (parts.scheme, parts.netloc)
        for attempt in (1, 2):
            reused = key in self.connections
            try:
                if not reused:
                    self.connections[key] = self._connect(parts.scheme, parts.netloc)
                status, found, body, keep = _exchange(
                    *self.connections[key], method, target, sent, data or b""
                )
            except (OSError, ValueError) as error:
                self._drop(key)
                # A kept connection the server closed while it was idle (during the copy)
                # fails on its next request: that one request is sent once more, fresh.
                if attempt == 1 and reused and isinstance(error, ConnectionError):
                    continue
                raise self._explain(url, error) from None
            if not keep:
                self._drop(key)
            if 300 <= status < 400 and found.get("Location"):
                if self.redirects is None:
                    self.redirects = api.Client(self.registry, self.context, self.timeout)
                return self.redirects.get(
                    url, authorization, method=method, headers=headers, data=data
                )
            return api._Response(status, found, body)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _connect(self, scheme: str, netloc: str) -> tuple[socket.socket, BinaryIO]:
        import socket

        host, port = host_and_port(netloc, 443 if scheme == "https" else 80)
        if scheme not in ("https", "http"):
            raise ValueError(f"unsupported URL scheme {scheme!r}")
        connection = socket.create_connection((host, port), timeout=self.timeout)
        try:
            # Each request goes out as soon as it is written, as curl and Go send theirs: with
            # Nagle's algorithm the first request after the TLS handshake waited for the
            # server's delayed ACK of our Finished message, 40 ms of every push here.
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                from idpwrap.tls import client_context

                context = self.context if self.context is not None else client_context()
                connection = context.wrap_socket(connection, server_hostname=host)
            return connection, connection.makefile("rb")
        except BaseException:
            connection.close()
            raise

    def _drop(self, key: tuple[str, str]) -> None:
        kept = self.connections.pop(key, None)
        if kept is not None:
            kept[1].close()
            kept[0].close()

    def close(self) -> None:
        for key in list(self.connections):
            self._drop(key)


def host_and_port(netloc: str, default: int) -> tuple[str, int]:
    """``host[:port]``, ``[v6]:port`` -> (host, port); the port must be a number."""
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = netloc.rpartition(":") if ":" in netloc else (netloc, "", "")
    return host, int(port) if port else default


def _exchange(
    connection: socket.socket,
    reader: BinaryIO,
    method: str,
    target: str,
    headers: Mapping[str, str],
    data: bytes = b"",
) -> tuple[int, Headers, bytes, bool]:
    """One request and its answer: (status, headers, body, whether the connection stays)."""
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"a line break in the {name} header")
        lines.append(f"{name}: {value}")
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
    status_line = reader.readline(MAX_LINE + 1)
    if not status_line:
        raise ConnectionResetError("the registry closed the connection without an answer")
    version, _, rest = status_line.decode("latin-1").rstrip("\r\n").partition(" ")
    code = rest.partition(" ")[0]
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
    status = int(code)
    found = Headers()
    for _ in range(MAX_HEADER_LINES):
        line = reader.readline(MAX_LINE + 1)
        if line in (b"\r\n", b"\n"):
            break
        if not line or len(line) > MAX_LINE:
            raise ValueError("the answer's headers are cut off or too long")
        name, colon, value = line.decode("latin-1").partition(":")
        if colon:
            name, value = name.strip().lower(), value.strip()
            found[name] = f"{found[name]}, {value}" if name in found else value
    else:
        raise ValueError("the answer has too many headers")
    keep = version == "HTTP/1.1" and "close" not in (found.get("Connection") or "").lower()
    if method == "HEAD" or status in (204, 304) or status < 200:
        return status, found, b"", keep
    if "chunked" in (found.get("Transfer-Encoding") or "").lower():
        body, whole = _chunks(reader)
        return status, found, body, keep and whole
    length = found.get("Content-Length")
    if length is not None and length.isdigit():
        body = reader.read(min(int(length), MAX_BODY))
        if len(body) < min(int(length), MAX_BODY):
            raise ConnectionResetError("the registry closed the connection mid-answer")
        return status, found, body, keep and int(length) <= MAX_BODY
    return status, found, reader.read(MAX_BODY), False  # to the end of the connection


def _chunks(reader: BinaryIO) -> tuple[bytes, bool]:
    """A chunked body (its trailers skipped): the bytes, and whether it was read whole."""
    body = b""
    while True:
        size_line = reader.readline(MAX_LINE + 1)
        size_text = size_line.split(b";", 1)[0].strip()
        if not size_text:
            raise ConnectionResetError("the registry closed the connection mid-answer")
        size = int(size_text, 16)
        if size == 0:
            for _ in range(MAX_HEADER_LINES):
                if reader.readline(MAX_LINE + 1) in (b"\r\n", b"\n", b""):
                    return body, True
            return body, False
        if len(body) + size > MAX_BODY:
            return body + reader.read(MAX_BODY - len(body)), False
        body += reader.read(size)
        reader.readline(MAX_LINE + 1)  # the CRLF after each chunk
