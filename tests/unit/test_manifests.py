"""The tag lookup's reading of a registry's answers, and what a push makes of it."""

from __future__ import annotations

import pytest

from idpwrap.creds.credentials import Credentials
from idpwrap.errors import EXIT_TAG_MOVED, TagMoved
from idpwrap.push.request import PushResult, digestfile_text
from idpwrap.refs import Registry
from idpwrap.registry import api, manifests
from idpwrap.tls import TlsTrust

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (200, {"Docker-Content-Digest": DIGEST}, manifests.Lookup("found", DIGEST)),
        (200, {"Docker-Content-Digest": f" {DIGEST} "}, manifests.Lookup("found", DIGEST)),
        (404, {}, manifests.Lookup("missing")),
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
