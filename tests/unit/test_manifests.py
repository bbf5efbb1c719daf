"""The tag lookup's reading of a registry's answers, and what a push makes of it."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from idpwrap.creds.credentials import Credentials
from idpwrap.errors import EXIT_TAG_MOVED, TagMoved
from idpwrap.push.request import PushResult, digestfile_text
from idpwrap.refs import Registry
from idpwrap.registry import api, keptclient, manifests
from idpwrap.tls import TlsTrust

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (200, {"Docker-Content-Digest": DIGEST}, manifests.Lookup("found", DIGEST)),
        (200, {"Docker-Content-Digest": f" {DIGEST} "}, manifests.Lookup("found", DIGEST)),
        (404, {}, manifests.Lookup("missing")),
        (
            200,
            {"Docker-Content-Digest": DIGEST, "Content-Type": f"{INDEX}; charset=utf-8"},
            manifests.Lookup("found", DIGEST, media_type=INDEX),
        ),
    ],
)
def test_answers_that_say_something(status, headers, expected) -> None:
    assert manifests.digest_of(status, headers) == expected


@pytest.mark.parametrize(
    ("status", "headers", "reason"),
    [
        (200, {}, "without a usable Docker-Content-Digest"),
        (200, {"Docker-Content-Digest": "sha256:abc"}, "without a usable"),
        (200, {"Docker-Content-Digest": "sha512:" + "ab" * 64}, "without a usable"),
        (200, {"Docker-Content-Digest": "sha256:" + "AB" * 32}, "without a usable"),
        (401, {}, "HTTP 401"),
        (403, {}, "HTTP 403"),
        (500, {}, "HTTP 500"),
    ],
)
def test_answers_that_are_no_answer(status, headers, reason) -> None:
    found = manifests.digest_of(status, headers)
    assert found.state == manifests.FAILED and not found.digest
    assert reason in found.reason


class FakeClient:
    """api.Client's get, answering from a list and remembering what was asked."""

    def __init__(self, answers: list[tuple[int, dict]]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str, str | None]] = []
        self.registry = Registry("registry.example:5000")

    def get(self, url, authorization=None, *, method="GET", headers=None, data=None):
        self.asked.append((method, url, authorization))
        status, answer_headers = self.answers.pop(0)
        return api._Response(status, answer_headers, b'{"token": "T0KEN"}')


def reader(client: FakeClient, credentials: Credentials | None) -> manifests.TagReader:
    tag_reader = manifests.TagReader(
        client.registry, "team/app", credentials, TlsTrust(), timeout=1
    )
    tag_reader.client = client  # type: ignore[assignment]
    return tag_reader


def test_a_bearer_challenge_gets_a_pull_token_and_keeps_it() -> None:
    challenge = 'Bearer realm="https://auth.example/token",service="registry"'
    client = FakeClient(
        [
            (401, {"WWW-Authenticate": challenge}),
            (200, {}),  # the token
            (200, {"Docker-Content-Digest": DIGEST}),
            (200, {"Docker-Content-Digest": OTHER}),  # the read-back: one request
        ]
    )
    tag_reader = reader(client, Credentials("me", "s3cr3t", "test"))
    assert tag_reader.digest("v1") == manifests.Lookup("found", DIGEST)
    assert tag_reader.digest("v1") == manifests.Lookup("found", OTHER)
    methods = [(method, url.split("?")[0]) for method, url, _ in client.asked]
    assert methods == [
        ("HEAD", "https://registry.example:5000/v2/team/app/manifests/v1"),
        ("GET", "https://auth.example/token"),
        ("HEAD", "https://registry.example:5000/v2/team/app/manifests/v1"),
        ("HEAD", "https://registry.example:5000/v2/team/app/manifests/v1"),
    ]
    token_url = client.asked[1][1]
    assert "scope=repository%3Ateam%2Fapp%3Apull" in token_url and "account=me" in token_url
    assert client.asked[0][2] is None  # the first HEAD goes without credentials
    assert client.asked[2][2] == client.asked[3][2] == "Bearer T0KEN"


def test_basic_is_answered_with_the_credentials() -> None:
    client = FakeClient([(401, {"WWW-Authenticate": 'Basic realm="r"'}), (404, {})])
    found = reader(client, Credentials("me", "s3cr3t", "test")).digest("v1")
    assert found == manifests.Lookup("missing")
    assert client.asked[1][2] == api.basic_authorization("me", "s3cr3t")


@pytest.mark.parametrize(
    "credentials", [None, Credentials("<token>", "refresh", "auth file", identity_token=True)]
)
def test_no_way_to_authenticate_is_a_failure_not_an_error(credentials) -> None:
    client = FakeClient([(401, {"WWW-Authenticate": 'Basic realm="r"'})])
    found = reader(client, credentials).digest("v1")
    assert found.state == manifests.FAILED and "401" in found.reason


def test_a_refused_token_is_a_failure_without_the_secret() -> None:
    challenge = 'Bearer realm="https://auth.example/token",service="registry"'
    client = FakeClient([(401, {"WWW-Authenticate": challenge}), (401, {})])
    found = reader(client, Credentials("me", "s3cr3t", "test")).digest("v1")
    assert found.state == manifests.FAILED
    assert "refused the credentials for me" in found.reason and "s3cr3t" not in found.reason


def test_an_unreachable_registry_is_a_failure() -> None:
    found = manifests.tag_digest(
        Registry("127.0.0.1:1", plain_http=True), "team/app", "v1", None, TlsTrust(), timeout=2
    )
    assert found.state == manifests.FAILED and "cannot reach 127.0.0.1:1" in found.reason


def test_a_moved_tag_in_the_result_and_the_digest_file() -> None:
    plain = PushResult("h/team/app:v1", DIGEST, 10, False, DIGEST)
    moved = PushResult("h/team/app:v2", DIGEST, 10, False, OTHER)
    unknown = PushResult("h/team/app:v3", DIGEST, 10)  # the read-back could not tell
    assert not plain.moved and moved.moved and not unknown.moved
    assert digestfile_text([plain]) == f"{DIGEST}\n"
    assert digestfile_text([moved]) == f"{DIGEST} {OTHER}\n"
    assert digestfile_text([plain, moved]) == (
        f"h/team/app:v1 {DIGEST}\nh/team/app:v2 {DIGEST} {OTHER}\n"
    )


def test_the_moved_tag_error_names_both_digests() -> None:
    error = TagMoved.by_another_push("127.0.0.1:5000/team/app:v1", DIGEST, OTHER, more=2)
    assert error.exit_code == EXIT_TAG_MOVED == 11
    text = str(error)
    assert f"127.0.0.1:5000/team/app:v1 now serves {OTHER}, not this push's {DIGEST}" in text
    assert f"pullable as 127.0.0.1:5000/team/app@{DIGEST}" in text
    assert "(and 2 more tags)" in text


class _Registry(http.server.BaseHTTPRequestHandler):
    """Answers every HEAD of a manifest with DIGEST over HTTP/1.1, counting connections."""

    protocol_version = "HTTP/1.1"
    connections: list[int] = []  # noqa: RUF012 (the server's, shared by its handlers)

    def setup(self) -> None:
        super().setup()
        self.connections.append(1)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Docker-Content-Digest", DIGEST)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def plain_registry():
    _Registry.connections = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_the_lookup_and_the_read_back_share_one_connection(plain_registry) -> None:
    host = f"127.0.0.1:{plain_registry.server_address[1]}"
    tag_reader = manifests.TagReader(
        Registry(host, plain_http=True), "team/app", None, TlsTrust(), timeout=5
    )
    assert tag_reader.digest("v1") == manifests.Lookup("found", DIGEST)
    assert tag_reader.digest("v1") == manifests.Lookup("found", DIGEST)
    assert len(_Registry.connections) == 1
    tag_reader.close()


def test_a_kept_connection_the_registry_closed_is_opened_again(plain_registry) -> None:
    host = f"127.0.0.1:{plain_registry.server_address[1]}"
    tag_reader = manifests.TagReader(
        Registry(host, plain_http=True), "team/app", None, TlsTrust(), timeout=5
    )
    assert tag_reader.digest("v1").state == manifests.FOUND
    assert tag_reader.client is not None
    for connection, _ in tag_reader.client.connections.values():
        connection.shutdown(socket.SHUT_RDWR)  # as a registry's idle timeout leaves it
    assert tag_reader.digest("v1") == manifests.Lookup("found", DIGEST)
    assert len(_Registry.connections) == 2
    tag_reader.close()


class _Token(http.server.BaseHTTPRequestHandler):
    """A token service answering in chunks, as a Go server does without a Content-Length."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("WWW-Authenticate", 'Bearer realm="a"')
        self.send_header("WWW-Authenticate", 'Basic realm="b"')
        self.end_headers()
        for part in (b'{"tok', b'en": "T0KEN"}'):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: object) -> None:
        pass


def test_a_chunked_answer_and_repeated_headers_are_read_whole() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Token)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        client = keptclient.KeptClient(Registry(host, plain_http=True), None, 5)
        for _ in range(2):  # the second on the same connection: the first was read to its end
            answer = client.get(f"http://{host}/token?scope=x")
            assert answer.status == 200 and answer.body == b'{"token": "T0KEN"}'
            assert answer.headers.get("www-authenticate") == 'Bearer realm="a", Basic realm="b"'
        assert len(client.connections) == 1
        client.close()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("netloc", "expected"),
    [("r.example", ("r.example", 443)), ("r.example:5000", ("r.example", 5000)),
     ("[::1]:8443", ("::1", 8443)), ("[::1]", ("::1", 443))],
)  # fmt: skip
def test_host_and_port(netloc, expected) -> None:
    assert keptclient.host_and_port(netloc, 443) == expected


def test_a_handshake_the_lazily_read_cas_fail_is_tried_with_the_whole_bundle(monkeypatch):
    from idpwrap.errors import TlsNotTrusted

    made: list[str] = []

    class Client:
        def __init__(self, registry, context, timeout) -> None:
            self.context = context
            made.append(context)

        def get(self, url, authorization=None, *, method="GET", headers=None, data=None):
            if self.context == "lazy":
                raise TlsNotTrusted("the TLS certificate of registry.example is not trusted")
            return api._Response(200, {"Docker-Content-Digest": DIGEST}, b"")

        def close(self) -> None:
            pass

    monkeypatch.setattr(manifests, "KeptClient", Client)
    monkeypatch.setattr(
        TlsTrust, "context", lambda self, host, lazy_roots=False: "lazy" if lazy_roots else "all"
    )
    tag_reader = manifests.TagReader(Registry("registry.example"), "team/app", None, TlsTrust())
    assert tag_reader.digest("v1") == manifests.Lookup("found", DIGEST)
    assert made == ["lazy", "all"]


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                   "all_proxy", "NO_PROXY", "no_proxy")  # fmt: skip


@pytest.mark.parametrize(
    ("environment", "registry", "expected"),
    [
        ({}, Registry("registry.example:5000"), None),
        ({"HTTPS_PROXY": "http://proxy:3128"}, Registry("registry.example:5000"), "HTTPS_PROXY"),
        ({"https_proxy": "http://proxy:3128"}, Registry("r.example"), "https_proxy"),
        ({"HTTPS_PROXY": "http://proxy:3128"}, Registry("127.0.0.1:5000", True), None),
        ({"HTTP_PROXY": "http://proxy:3128"}, Registry("127.0.0.1:5000", True), "HTTP_PROXY"),
        ({"ALL_PROXY": "socks5://proxy"}, Registry("r.example"), "ALL_PROXY"),
        (
            {"HTTPS_PROXY": "http://proxy", "NO_PROXY": "localhost,.example"},
            Registry("gitea.cnoe.example:8443"),
            None,
        ),
        ({"HTTPS_PROXY": "http://proxy", "NO_PROXY": "r.example:443"}, Registry("r.example"), None),
        ({"HTTPS_PROXY": "http://proxy", "no_proxy": "*"}, Registry("r.example"), None),
        ({"HTTPS_PROXY": "http://p", "NO_PROXY": "fe80::1"}, Registry("[::1]:5000"), "HTTPS_PROXY"),
        ({"HTTPS_PROXY": "http://proxy", "NO_PROXY": "::1"}, Registry("[::1]:5000"), None),
        ({"HTTPS_PROXY": "http://p", "NO_PROXY": "o.example"}, Registry("r.ex"), "HTTPS_PROXY"),
    ],
)  # fmt: skip
def test_a_proxy_for_the_registry_is_recognised(
    monkeypatch, environment, registry, expected
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert manifests.proxy_variable(registry) == expected


def test_behind_a_proxy_the_lookup_is_not_made_and_the_push_copies(monkeypatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    reader = manifests.TagReader(Registry("r.example"), "o/n", None, TlsTrust())
    found = reader.digest("v1")
    assert found.state == manifests.FAILED
    assert found.reason == "HTTPS_PROXY is set and the check does not use a proxy"
    assert reader.client is None  # no connection was made


def test_a_urllib_client_whose_lazy_cas_fail_tries_the_whole_bundle_once(monkeypatch):
    """login, doctor and Gitea's closer look: api.client_for reads the system's CAs lazily and
    tries the whole bundle when a handshake is not trusted that way."""
    import ssl
    import urllib.error

    opened: list[str] = []

    class Answer:
        status, headers = 200, {}

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            pass

        def read(self, size: int) -> bytes:
            return b""

    class Opener:
        def __init__(self, context: str) -> None:
            self.context = context

        def open(self, request, timeout):
            opened.append(self.context)
            if self.context == "lazy":
                failure = ssl.SSLCertVerificationError("certificate verify failed")
                failure.verify_message = "unable to get local issuer certificate"
                raise urllib.error.URLError(failure)
            return Answer()

    monkeypatch.setattr(api.Client, "_opener", staticmethod(Opener))
    monkeypatch.setattr(
        TlsTrust, "context", lambda self, host, lazy_roots=False: "lazy" if lazy_roots else "all"
    )
    client = api.client_for(Registry("registry.example"), TlsTrust())
    assert client.get("https://registry.example/v2/").status == 200
    assert client.get("https://registry.example/v2/").status == 200
    assert opened == ["lazy", "all", "all"]
