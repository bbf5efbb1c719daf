"""Checking credentials against a registry, as ``idpwrap login`` does before storing them.

``GET /v2/`` without credentials; a ``401`` names how to authenticate in ``WWW-Authenticate``:
``Basic`` (htpasswd): ``GET /v2/`` again with HTTP Basic; ``Bearer realm=...,service=...``
(Gitea, distribution's token auth): ``GET realm?service=...&scope=...`` with HTTP Basic, which
answers ``{"token": ...}`` (or ``access_token``), then ``GET /v2/`` with that token.

TLS as for a push: one ``TlsTrust`` (``TlsTrust.context``). Credentials are sent only with
``add_unredirected_header``, so a redirect to another host never carries them.
"""

from __future__ import annotations

import json
import re
import ssl
import urllib.parse
from collections import namedtuple
from collections.abc import Callable, Mapping

from idpwrap import log
from idpwrap.errors import (
    AuthFailed,
    IdpwrapError,
    RegistryError,
    RegistryUnreachable,
    TlsNotTrusted,
)
from idpwrap.refs import Registry
from idpwrap.tls import TlsTrust

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TIMEOUT_SECONDS = 30.0
# One auth-param or a scheme name in a WWW-Authenticate header (RFC 7235).
CHALLENGE_ITEM = re.compile(
    r'\s*,?\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)(?:\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*))?'
)


class Challenge:
    __slots__ = ("params", "scheme")

    def __init__(self, scheme: str, params: dict[str, str]) -> None:
        self.scheme = scheme.lower()
        self.params = params

    def __repr__(self) -> str:
        return f"Challenge({self.scheme!r}, {self.params!r})"


def parse_challenges(header: str) -> list[Challenge]:
    """``Bearer realm="...",service="...",scope="*"`` -> [Challenge("bearer", {...})]."""
    challenges: list[Challenge] = []
    position = 0
    while position < len(header):
        match = CHALLENGE_ITEM.match(header, position)
        if not match or match.end() == position:
            break
        position = match.end()
        name, value = match.group(1), match.group(2)
        if value is None:
            challenges.append(Challenge(name, {}))
        elif challenges:
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            challenges[-1].params[name.lower()] = value
    return challenges


class _Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class Client:
    """Plain requests against one registry (GET and HEAD; a body for an upload), turning
    network and TLS failures into our errors."""

    def __init__(
        self,
        registry: Registry,
        context: ssl.SSLContext | None,
        timeout: float = TIMEOUT_SECONDS,
        full_context: Callable[[], ssl.SSLContext] | None = None,
    ) -> None:
        """``full_context``: when ``context`` reads the system's CAs lazily, the context with
        the whole bundle, tried once if a handshake is not trusted the lazy way."""
        self.registry = registry
        self.timeout = timeout
        self.full_context = full_context
        self.opener = self._opener(context)

    @staticmethod
    def _opener(context: ssl.SSLContext | None) -> Any:
        import urllib.request  # here: a push's requests use only keptclient.KeptClient

        return urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))

    def get(
        self,
        url: str,
        authorization: str | None = None,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> _Response:
        try:
            return self._get(url, authorization, method=method, headers=headers, data=data)
        except TlsNotTrusted:
            if self.full_context is None:
                raise
            # The lazily read system CAs may lack one the whole bundle has: it decides.
            self.opener = self._opener(self.full_context())
            self.full_context = None
            return self._get(url, authorization, method=method, headers=headers, data=data)

    def _get(
        self,
        url: str,
        authorization: str | None,
        *,
        method: str,
        headers: Mapping[str, str] | None,
        data: bytes | None,
    ) -> _Response:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            url, data=data, method=method, headers={"User-Agent": "idpwrap", **(headers or {})}
        )
        if authorization:
            request.add_unredirected_header("Authorization", authorization)
        log.debug("%s %s%s", method, url, " (with credentials)" if authorization else "")
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                return _Response(response.status, response.headers, response.read(1 << 20))
        except urllib.error.HTTPError as error:
            with error:
                return _Response(error.code, error.headers, error.read(1 << 16))
        except urllib.error.URLError as error:
            raise self._explain(url, error.reason) from None
        except (OSError, ValueError) as error:
            raise self._explain(url, error) from None

    def _explain(self, url: str, reason: object) -> IdpwrapError:
        host = urllib.parse.urlsplit(url).netloc
        text = str(reason)
        if isinstance(reason, ssl.SSLCertVerificationError):
            return TlsNotTrusted(
                f"the TLS certificate of {host} is not trusted ({reason.verify_message}): pass"
                " --ca-file with its CA certificate, or --insecure to skip verification"
            )
        if isinstance(reason, ssl.SSLError) and "WRONG_VERSION_NUMBER" in text.upper():
            return TlsNotTrusted(f"{host} speaks plain HTTP: use http://{host}")
        if isinstance(reason, ssl.SSLError):
            return TlsNotTrusted(f"TLS with {host} failed ({text})")
        if "RemoteDisconnected" in type(reason).__name__ or "BadStatusLine" in text:
            return RegistryUnreachable(
                f"{host} closed the connection without an HTTP answer: if it speaks HTTPS, use"
                f" https://{host}"
            )
        strerror = getattr(reason, "strerror", None) or text
        return RegistryUnreachable(
            f"cannot reach {host} ({strerror}): check that it is running and the address is right"
        )


def basic_authorization(username: str, secret: str) -> str:
    import binascii

    pair = binascii.b2a_base64(f"{username}:{secret}".encode(), newline=False).decode()
    return f"Basic {pair}"


class Verified(namedtuple("Verified", "how challenge token client")):
    """How the registry took the credentials, its challenge, and the token it issued. (Not
    ``typing.NamedTuple``: this module is on a push's path, which does not import ``typing``.)"""

    __slots__ = ()
    how: str  # "basic", "bearer" or "none"
    challenge: Challenge | None
    token: str
    client: Client


def verify_credentials(
    registry: Registry,
    username: str,
    secret: str,
    trust: TlsTrust,
) -> str:
    """Check ``username`` and ``secret`` with the registry; return how ("basic", "bearer", or
    "none" when the registry asks for no credentials). AuthFailed if it refuses them."""
    return check_credentials(registry, username, secret, trust).how


def client_for(registry: Registry, trust: TlsTrust, timeout: float = TIMEOUT_SECONDS) -> Client:
    """A client of ``registry`` with the system's CAs looked up lazily (parsing the whole
    bundle first costs 20 to 40 ms here), the whole bundle tried if that is not trusted."""
    if registry.plain_http:
        return Client(registry, None, timeout)
    lazy = trust.context(registry.host, lazy_roots=True)
    return Client(registry, lazy, timeout, lambda: trust.context(registry.host))


def check_credentials(
    registry: Registry,
    username: str,
    secret: str,
    trust: TlsTrust,
) -> Verified:
    """As ``verify_credentials``, keeping the challenge and the token for a closer look."""
    client = client_for(registry, trust)
    ping = client.get(f"{registry.url}/v2/")
    if ping.status == 200:
        return Verified("none", None, "", client)
    if ping.status != 401:
        raise RegistryError(
            f"{registry.host} answered GET /v2/ with HTTP {ping.status}: is it a container"
            " registry?"
        )
    challenges = parse_challenges(ping.headers.get("WWW-Authenticate", ""))
    schemes = {challenge.scheme: challenge for challenge in challenges}
    if "bearer" in schemes:
        token = _bearer(client, schemes["bearer"], username, secret)
        return Verified("bearer", schemes["bearer"], token, client)
    if "basic" in schemes:
        answer = client.get(f"{registry.url}/v2/", basic_authorization(username, secret))
        if answer.status == 200:
            return Verified("basic", schemes["basic"], "", client)
        if answer.status in (401, 403):
            raise AuthFailed(
                f"{registry.host} refused the credentials for {username}: check the username"
                " and password or token"
            )
        raise RegistryError(
            f"{registry.host} answered GET /v2/ with HTTP {answer.status} to credentials"
        )
    raise RegistryError(
        f"{registry.host} asks for an authentication idpwrap does not know"
        f" ({', '.join(schemes) or 'no WWW-Authenticate header'}): expected Basic or Bearer"
    )


def _bearer(client: Client, challenge: Challenge, username: str, secret: str) -> str:
    registry = client.registry
    token = request_token(client, challenge, username, secret)
    check = client.get(f"{registry.url}/v2/", f"Bearer {token}")
    if check.status == 200:
        return token
    if check.status in (401, 403):
        raise AuthFailed(
            f"{registry.host} issued a token for {username} but refused it on GET /v2/: check"
            " the account is allowed to use the registry"
        )
    raise RegistryError(f"{registry.host} answered GET /v2/ with HTTP {check.status} to a token")


def request_token(
    client: Client, challenge: Challenge, username: str | None, secret: str | None
) -> str:
    """The token a Bearer ``challenge`` asks for: ``GET realm?service=...&scope=...``, with
    HTTP Basic when there are credentials, anonymously otherwise (a pull token)."""
    registry = client.registry
    realm = challenge.params.get("realm", "")
    parsed = urllib.parse.urlsplit(realm)
    if parsed.scheme not in ("https", "http") or not parsed.netloc:
        raise RegistryError(f"{registry.host} names no usable token realm ({realm!r})")
    if parsed.scheme == "http" and not registry.plain_http:
        raise RegistryError(
            f"{registry.host} wants the credentials sent to {realm} over plain HTTP: refused"
        )
    query = [("account", username)] if username else []
    if challenge.params.get("service"):
        query.append(("service", challenge.params["service"]))
    if challenge.params.get("scope"):
        query.append(("scope", challenge.params["scope"]))
    separator = "&" if parsed.query else "?"
    url = f"{realm}{separator}{urllib.parse.urlencode(query)}"
    authorization = basic_authorization(username, secret or "") if username else None
    answer = client.get(url, authorization)
    if answer.status in (401, 403):
        raise AuthFailed(
            f"{registry.host} refused the credentials for {username} (its token service"
            f" {parsed.netloc} answered HTTP {answer.status}): check the username and password"
            " or token"
        )
    if answer.status != 200:
        raise RegistryError(f"the token service {realm} answered HTTP {answer.status}")
    try:
        body = json.loads(answer.body)
        token = body.get("token") or body.get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise RegistryError(f"the token service {realm} answered without a token")
    return token
