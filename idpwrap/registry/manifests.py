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

from collections import namedtuple
from collections.abc import Mapping

from idpwrap import log
from idpwrap.errors import IdpwrapError, TlsNotTrusted
from idpwrap.registry import api

TYPE_CHECKING = False
if TYPE_CHECKING:
    import http.client
    import ssl

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


class KeptClient(api.Client):
    """``api.Client.get`` over kept-alive connections (``http.client``), one per scheme and
    host: the lookup before a copy, its token and the read-back after it share one TLS
    handshake, and a push imports neither ``urllib.request`` nor its handlers (about 10 ms).
    A redirect is followed by ``api.Client`` (urllib), which never carries the credentials to
    another host."""

    def __init__(
        self,
        registry: Registry,
        context: ssl.SSLContext | None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.registry = registry
        self.timeout = timeout
        self.context = context
        self.connections: dict[tuple[str, str], http.client.HTTPConnection] = {}
        self.redirects: api.Client | None = None

    def get(
        self,
        url: str,
        authorization: str | None = None,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
    ) -> api._Response:
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {"User-Agent": "idpwrap", **(headers or {})}
        if authorization:
            sent["Authorization"] = authorization
        log.debug("%s %s%s", method, url, " (with credentials)" if authorization else "")
        key = (parts.scheme, parts.netloc)
        for attempt in (1, 2):
            connection = self.connections.get(key)
            reused = connection is not None
            if connection is None:
                connection = self._connect(parts.scheme, parts.netloc)
                self.connections[key] = connection
            try:
                connection.request(method, target, headers=sent)
                response = connection.getresponse()
                body = response.read(1 << 20)
                if response.read(1):  # a longer body than any answer we read: not kept
                    self._drop(key)
            except (http.client.HTTPException, OSError, ValueError) as error:
                self._drop(key)
                # A kept connection the server closed while it was idle (during the copy)
                # fails on its next request: that one request is sent once more, fresh.
                stale = isinstance(error, (ConnectionError, http.client.RemoteDisconnected))
                if attempt == 1 and reused and stale:
                    continue
                raise self._explain(url, error) from None
            if response.will_close:
                self._drop(key)
            if 300 <= response.status < 400 and response.getheader("Location"):
                if self.redirects is None:
                    self.redirects = api.Client(self.registry, self.context, self.timeout)
                return self.redirects.get(url, authorization, method=method, headers=headers)
            return api._Response(response.status, response.msg, body)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _connect(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        import http.client

        if scheme == "https":
            return http.client.HTTPSConnection(netloc, timeout=self.timeout, context=self.context)
        if scheme == "http":
            return http.client.HTTPConnection(netloc, timeout=self.timeout)
        raise ValueError(f"unsupported URL scheme {scheme!r}")

    def _drop(self, key: tuple[str, str]) -> None:
        connection = self.connections.pop(key, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        for key in list(self.connections):
            self._drop(key)


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
                answer = self._head(tag)
            except TlsNotTrusted:
                # The lazily read system CAs may lack one the whole bundle has: the full
                # context decides, as it always did.
                self.client.close()
                self.client = KeptClient(self.registry, self._context(False), self.timeout)
                answer = self._head(tag)
        else:
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
