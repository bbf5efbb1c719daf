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

from idpwrap import log
from idpwrap.errors import IdpwrapError, TlsNotTrusted
from idpwrap.registry import api
from idpwrap.registry.keptclient import DEFAULT_TIMEOUT_SECONDS, KeptClient, host_and_port

TYPE_CHECKING = False
if TYPE_CHECKING:
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
FOUND, MISSING, FAILED = "found", "missing", "failed"


class Lookup(namedtuple("Lookup", "state digest reason media_type", defaults=("", "", ""))):
    """``found`` with the digest (and the manifest's media type, as the answer's Content-Type
    names it), ``missing`` (the registry has no such tag), or ``failed`` with the reason (a
    refusal, a timeout, an answer that is not a registry's). A namedtuple rather than
    ``typing.NamedTuple``: ``typing`` is not otherwise imported by a push."""

    __slots__ = ()
    state: str
    digest: str
    reason: str
    media_type: str


def digest_of(status: int, headers: object) -> Lookup:
    """A HEAD's answer read: 200 with a ``Docker-Content-Digest`` is the digest; 404 is no
    such tag; anything else says why it is not an answer."""
    get = getattr(headers, "get", None)
    if status == 200:
        digest = str(get("Docker-Content-Digest", "") if get else "").strip()
        algorithm, _, hexdigits = digest.partition(":")
        if algorithm == "sha256" and len(hexdigits) == 64 and _is_hex(hexdigits):
            media_type = str(get("Content-Type", "") if get else "").partition(";")[0].strip()
            return Lookup(FOUND, digest, media_type=media_type)
        return Lookup(
            FAILED, reason=f"HTTP 200 without a usable Docker-Content-Digest ({digest!r})"
        )
    if status == 404:
        return Lookup(MISSING)
    return Lookup(FAILED, reason=f"HTTP {status}")


def _is_hex(text: str) -> bool:
    return all(character in "0123456789abcdef" for character in text)


def proxy_variable(registry: Registry) -> str | None:
    """The proxy variable (as Go's net/http reads them) that would send requests to
    ``registry`` through a proxy, or None: NO_PROXY's names, suffixes and ``*`` exempt it."""
    scheme = "HTTP" if registry.plain_http else "HTTPS"
    names = (f"{scheme}_PROXY", f"{scheme.lower()}_proxy", "ALL_PROXY", "all_proxy")
    found = next((name for name in names if os.environ.get(name)), None)
    if found is None:
        return None
    host = host_and_port(registry.host, 0)[0].lower()
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
        answer = self.request("HEAD", f"manifests/{tag}", headers={"Accept": MANIFEST_TYPES})
        if answer.status == 401 and self.authorization is None:
            return Lookup(FAILED, reason="HTTP 401 and no way to authenticate")
        return digest_of(answer.status, answer.headers)

    def _context(self, lazy_roots: bool) -> ssl.SSLContext | None:
        if self.registry.plain_http:
            return None
        return self.trust.context(self.registry.host, lazy_roots=lazy_roots)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        write: bool = False,
    ) -> api._Response:
        """``METHOD /v2/<repository>/<path>`` (or an absolute URL the registry named, e.g. an
        upload's Location) with the kept authorization; a 401 is answered once with what its
        challenge asks for (``write``: a token that may push), then the request is repeated.
        Raises only what the client raises (unreachable, TLS); a 401 it cannot answer is
        returned as it came."""
        if self.client is None:
            self.client = KeptClient(self.registry, self._context(False), self.timeout)
        if path.startswith(("https://", "http://")):
            url = path
        elif path.startswith("/"):
            url = f"{self.registry.url}{path}"
        else:
            url = f"{self.registry.url}/v2/{self.repository}/{path}"
        answer = self.client.get(url, self.authorization, method=method, headers=headers, data=data)
        if answer.status != 401:
            return answer
        # A token for what the request does: distribution's token auth grants per action.
        actions = "pull,push,delete" if method == "DELETE" else "pull,push" if write else "pull"
        authorization = self._authorize(answer.headers.get("WWW-Authenticate", ""), actions)
        if authorization is None or authorization == self.authorization:
            return answer
        self.authorization = authorization
        return self.client.get(url, authorization, method=method, headers=headers, data=data)

    def _authorize(self, header: str, actions: str = "pull") -> str | None:
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
            scope = challenge.params.get("scope")
            if not scope or (actions != "pull" and scope != "*" and not scope.endswith(actions)):
                # distribution names the scope of the refused request; Gitea says "*"
                challenge.params["scope"] = f"repository:{self.repository}:{actions}"
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
