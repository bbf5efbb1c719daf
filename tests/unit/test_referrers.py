"""The referrers tag schema's index merge, and an attach against a registry made of a dict:
what is uploaded, which path is taken (referrers API or tag), nothing twice."""

from __future__ import annotations

import hashlib
import json

import pytest

from idpwrap.errors import RegistryError
from idpwrap.refs import Registry
from idpwrap.registry import api
from idpwrap.registry import referrers as remote

SUBJECT = "sha256:" + "a" * 64
IN_TOTO = "application/vnd.in-toto+json"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def artifact(statement: bytes = b'{"_type":"x"}') -> remote.Artifact:
    manifest = {
        "schemaVersion": 2, "mediaType": remote.OCI_MANIFEST, "artifactType": IN_TOTO,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest(b"{}"),
                   "size": 2},
        "layers": [{"mediaType": IN_TOTO, "digest": digest(statement), "size": len(statement)}],
        "subject": {"mediaType": remote.OCI_MANIFEST, "digest": SUBJECT, "size": 10},
        "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v1"},
    }  # fmt: skip
    data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return remote.Artifact(data, {digest(b"{}"): b"{}", digest(statement): statement})


def test_a_missing_index_is_begun_with_the_descriptor():
    entry = {"mediaType": remote.OCI_MANIFEST, "digest": "sha256:" + "b" * 64, "size": 3}
    assert remote.merged(None, entry) == {
        "schemaVersion": 2, "mediaType": remote.OCI_INDEX, "manifests": [entry],
    }  # fmt: skip


def test_other_entries_are_kept_in_order_and_a_listed_digest_is_not_added_again():
    theirs = {"mediaType": remote.OCI_MANIFEST, "digest": "sha256:" + "c" * 64, "size": 5,
              "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"}  # fmt: skip
    ours = {"mediaType": remote.OCI_MANIFEST, "digest": "sha256:" + "d" * 64, "size": 7}
    index = {"schemaVersion": 2, "mediaType": remote.OCI_INDEX, "manifests": [theirs],
             "annotations": {"kept": "yes"}}  # fmt: skip
    added = remote.merged(index, ours)
    assert added == {**index, "manifests": [theirs, ours]}
    assert remote.merged(added, dict(ours)) is None


def test_the_descriptor_carries_artifact_type_and_annotations():
    made = artifact()
    described = made.descriptor()
    assert described == {
        "mediaType": remote.OCI_MANIFEST, "digest": digest(made.manifest),
        "size": len(made.manifest), "artifactType": IN_TOTO,
        "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v1"},
    }  # fmt: skip


def test_the_tag_is_the_digest_with_a_dash():
    assert remote.referrers_tag(SUBJECT) == "sha256-" + "a" * 64


class FakeRegistry:
    """A TagReader's ``request`` over dicts: blobs, manifests by digest and tag, uploads."""

    def __init__(self, referrers_api: bool = False) -> None:
        self.registry = Registry("registry.example:5000")
        self.repository = "team/app"
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, bytes] = {}
        self.referrers_api = referrers_api
        self.asked: list[tuple[str, str]] = []

    def answer(self, status: int, body: bytes = b"", **headers: str) -> api._Response:
        return api._Response(status, {k.replace("_", "-"): v for k, v in headers.items()}, body)

    def request(self, method, path, *, headers=None, data=None, write=False):
        self.asked.append((method, path.split("?")[0].rsplit("/", 2)[-2]))
        if method == "HEAD" and path.startswith("blobs/"):
            return self.answer(200 if path[6:] in self.blobs else 404)
        if method == "POST":
            return self.answer(202, Location="/v2/team/app/blobs/uploads/u1?state=x")
        if method == "PUT" and "/blobs/uploads/" in path:
            assert path.startswith("https://registry.example:5000/v2/team/app/blobs/uploads/u1?")
            named = path.split("digest=", 1)[1].replace("%3A", ":")
            assert named == digest(data)
            self.blobs[named] = data
            return self.answer(201)
        if method == "PUT" and path.startswith("manifests/"):
            self.manifests[path[10:]] = data
            subject = {"OCI_Subject": SUBJECT} if self.referrers_api else {}
            return self.answer(201, Docker_Content_Digest=digest(data), **subject)
        if method == "GET" and path.startswith("manifests/"):
            found = self.manifests.get(path[10:])
            return self.answer(200, found) if found else self.answer(404)
        if method == "GET" and path.startswith("referrers/"):
            return self.answer(404, b"404 page not found\n")
        raise AssertionError((method, path))


def test_the_tag_schema_when_the_registry_has_no_referrers_api():
    fake = FakeRegistry()
    made = artifact()
    done = remote.attach(fake, SUBJECT, made)
    assert done == remote.Attached(SUBJECT, made.digest, remote.TAG_SCHEMA,
                                   "sha256-" + "a" * 64, True)  # fmt: skip
    assert set(fake.blobs) == set(made.blobs)
    assert fake.manifests[made.digest] == made.manifest  # the store's bytes, unchanged
    index = json.loads(fake.manifests["sha256-" + "a" * 64])
    assert index["manifests"] == [made.descriptor()]
    again = remote.attach(fake, SUBJECT, made)
    assert again.added is False
    assert json.loads(fake.manifests["sha256-" + "a" * 64])["manifests"] == [made.descriptor()]
    assert fake.asked.count(("POST", "uploads")) == 2  # the config and the statement, once each


def test_a_registry_with_the_referrers_api_gets_no_tag():
    fake = FakeRegistry(referrers_api=True)
    done = remote.attach(fake, SUBJECT, artifact())
    assert done.how == remote.API and not done.tag
    assert list(fake.manifests) == [artifact().digest]


def test_a_tag_holding_an_image_is_not_replaced():
    fake = FakeRegistry()
    fake.manifests["sha256-" + "a" * 64] = json.dumps(
        {"schemaVersion": 2, "mediaType": remote.OCI_MANIFEST, "layers": []}
    ).encode()
    with pytest.raises(RegistryError, match="holds something other than an OCI index"):
        remote.attach(fake, SUBJECT, artifact())


def test_a_refused_upload_says_the_status_and_what_to_do():
    fake = FakeRegistry()
    fake.request_before = fake.request

    def refusing(method, path, **kwargs):
        if method == "POST":
            return fake.answer(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
        return fake.request_before(method, path, **kwargs)

    fake.request = refusing
    with pytest.raises(RegistryError) as refused:
        remote.attach(fake, SUBJECT, artifact())
    assert str(refused.value) == (
        "the registry answered POST blobs/uploads/ with HTTP 401 UNAUTHORIZED: the credentials"
        " may not write there (a token with write access is needed)"
    )
