"""Which manifest digest a tag serves: ``HEAD /v2/<repository>/manifests/<tag>``.

Asked with what a push uses: its credentials, its TLS trust (``TlsTrust.context``; none for an
``http://`` registry) and the same authentication skopeo does. The HEAD goes out first without
credentials; its 401 carries the challenge, with the scope of this repository where the
registry names one (distribution's token auth does, Gitea says ``scope="*"``): Basic is
answered with the credentials, Bearer with a token from ``api.request_token``. The token is
kept, so asking again (the read-back after a push) is one request.

A lookup never raises: it answers a ``Lookup`` (the digest, "no such tag", or why it could not
tell), so that a push can fall back to doing what it did before the lookup existed.
"""

from __future__ import annotations

import os
from collections import namedtuple
from collections.abc import Mapping

from idpwrap import log
from idpwrap.errors import IdpwrapError, TlsNotTrusted
from idpwrap.registry import api

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    import ssl
    from typing import BinaryIO

    from idpwrap.creds.credentials import Credentials
    from idpwrap.refs import Registry
    from idpwrap.tls import TlsTrust

# Manifests and indexes, OCI and Docker: what a push of idpwrap's images can leave under a tag.
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
DEFAULT_TIMEOUT_SECONDS = 5.0
FOUND, MISSING, FAILED = "found", "missing", "failed"


class Lookup(namedtuple("Lookup", "state digest reason", defaults=("", ""))):
    """``found`` with the digest, ``missing`` (the registry has no such tag), or ``failed``
    with the reason (a refusal, a timeout, an answer that is not a registry's). A namedtuple
    rather than ``typing.NamedTuple``: ``typing`` is not otherwise imported by a push."""

    __slots__ = ()
    state: str
    digest: str
    reason: str


def digest_of(status: int, headers: object) -> Lookup:
    """A HEAD's answer read: 200 with a ``Docker-Content-Digest`` is the digest; 404 is no
    such tag; anything else says why it is not an answer."""
    get = getattr(headers, "get", None)
    if status == 200:
        digest = str(get("Docker-Content-Digest", "") if get else "").strip()
        algorithm, _, hexdigits = digest.partition(":")
        if algorithm == "sha256" and len(hexdigits) == 64 and _is_hex(hexdigits):
            return Lookup(FOUND, digest)
        return Lookup(
            FAILED, reason=f"HTTP 200 without a usable Docker-Content-Digest ({digest!r})"
        )
    if status == 404:
        return Lookup(MISSING)
    return Lookup(FAILED, reason=f"HTTP {status}")


def _is_hex(text: str) -> bool:
    return all(character in "0123456789abcdef" for character in text)


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
    ) -> api._Response:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {"Host": parts.netloc, "User-Agent": "idpwrap", **(headers or {})}
        if authorization:
            sent["Authorization"] = authorization
        log.debug("%s %s%s", method, url, " (with credentials)" if authorization else "")
        key = (parts.scheme, parts.netloc)
        for attempt in (1, 2):
            reused = key in self.connections
            try:
                if not reused:
                    self.connections[key] = self._connect(parts.scheme, parts.netloc)
                status, found, body, keep = _exchange(*self.connections[key], method, target, sent)
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
                return self.redirects.get(url, authorization, method=method, headers=headers)
            return api._Response(status, found, body)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _connect(self, scheme: str, netloc: str) -> tuple[socket.socket, BinaryIO]:
        import socket

        host, port = _host_and_port(netloc, 443 if scheme == "https" else 80)
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


def _host_and_port(netloc: str, default: int) -> tuple[str, int]:
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
) -> tuple[int, Headers, bytes, bool]:
    """One request and its answer: (status, headers, body, whether the connection stays)."""
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"a line break in the {name} header")
        lines.append(f"{name}: {value}")
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
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


def proxy_variable(registry: Registry) -> str | None:
    """The proxy variable (as Go's net/http reads them) that would send requests to
    ``registry`` through a proxy, or None: NO_PROXY's names, suffixes and ``*`` exempt it."""
    scheme = "HTTP" if registry.plain_http else "HTTPS"
    names = (f"{scheme}_PROXY", f"{scheme.lower()}_proxy", "ALL_PROXY", "all_proxy")
    found = next((name for name in names if os.environ.get(name)), None)
    if found is None:
        return None
    host = _host_and_port(registry.host, 0)[0].lower()
    exempt = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
    for entry in (part.strip().lower() for part in exempt.split(",")):
        if entry == "*":
            return None
        name = _without_port(entry).strip("[]").lstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return None
    return found


def _without_port(entry: str) -> str:
    """``name:port`` or ``[v6]:port`` -> the name; a bare IPv6 address stays whole."""
    head, colon, port = entry.rpartition(":")
    if colon and port.isdigit() and (head.count(":") == 0 or head.endswith("]")):
        return head
    return entry


class TagReader:
    """Asks one registry repository which digest its tags serve, keeping the authorization."""

    def __init__(
        self,
        registry: Registry,
        repository: str,
        credentials: Credentials | None,
        trust: TlsTrust,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.registry = registry
        self.repository = repository
        self.credentials = credentials
        self.trust = trust
        self.timeout = timeout
        self.client: KeptClient | None = None
        self.authorization: str | None = None

    def digest(self, tag: str) -> Lookup:
        """The digest ``tag`` serves now; never raises."""
        proxy = proxy_variable(self.registry)
        if proxy:
            # skopeo goes through the proxy; this client speaks to the registry directly, which
            # may be unreachable or another one: not asked, so the push copies as before.
            return Lookup(FAILED, reason=f"{proxy} is set and the check does not use a proxy")
        try:
            return self._digest(tag)
        except IdpwrapError as error:
            return Lookup(FAILED, reason=str(error))
        except (OSError, ValueError) as error:  # a CA file that cannot be read, a bad header
            return Lookup(FAILED, reason=str(error) or type(error).__name__)

    def _digest(self, tag: str) -> Lookup:
        if self.client is None:
            self.client = KeptClient(self.registry, self._context(lazy_roots=True), self.timeout)
            try:
                return self._ask(tag)
            except TlsNotTrusted:
                # The lazily read system CAs may lack one the whole bundle has (the registry's
                # or its token service's): the full context decides, as it always did.
                self.client.close()
                self.authorization = None
                self.client = KeptClient(self.registry, self._context(False), self.timeout)
        return self._ask(tag)

    def _ask(self, tag: str) -> Lookup:
        answer = self._head(tag)
        if answer.status == 401:
            self.authorization = self._authorize(answer.headers.get("WWW-Authenticate", ""))
            if self.authorization is None:
                return Lookup(FAILED, reason="HTTP 401 and no way to authenticate")
            answer = self._head(tag)
        return digest_of(answer.status, answer.headers)

    def _context(self, lazy_roots: bool) -> ssl.SSLContext | None:
        if self.registry.plain_http:
            return None
        return self.trust.context(self.registry.host, lazy_roots=lazy_roots)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def _head(self, tag: str) -> api._Response:
        assert self.client is not None
        return self.client.get(
            f"{self.registry.url}/v2/{self.repository}/manifests/{tag}",
            self.authorization,
            method="HEAD",
            headers={"Accept": MANIFEST_TYPES},
        )

    def _authorize(self, header: str) -> str | None:
        """The Authorization answering the challenge in ``header``, as skopeo answers it."""
        assert self.client is not None
        schemes = {challenge.scheme: challenge for challenge in api.parse_challenges(header)}
        credentials = self.credentials
        if credentials is not None and credentials.identity_token:
            log.debug("tag lookup: an identity token is exchanged by skopeo only")
            return None
        username = credentials.username if credentials else None
        secret = credentials.secret if credentials else None
        if "bearer" in schemes:
            challenge = schemes["bearer"]
            if not challenge.params.get("scope"):
                challenge.params["scope"] = f"repository:{self.repository}:pull"
            return f"Bearer {api.request_token(self.client, challenge, username, secret)}"
        if "basic" in schemes and username:
            return api.basic_authorization(username, secret or "")
        return None


def tag_digest(
    registry: Registry,
    repository: str,
    tag: str,
    credentials: Credentials | None,
    trust: TlsTrust,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> Lookup:
    """One lookup: the digest ``HOST/REPOSITORY:TAG`` serves now."""
    return TagReader(registry, repository, credentials, trust, timeout).digest(tag)
