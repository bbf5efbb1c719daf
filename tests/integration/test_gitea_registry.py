"""The Gitea mode of the test registry answers as Gitea 1.24.3 behind ingress-nginx does.

Each test names the Gitea source file (tag v1.24.3) the answer is modelled on, so that the
model cannot drift from what it claims to be.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import ssl
import time
from collections.abc import Mapping

import pytest

from testing.gitea.running import GiteaRegistry
from testing.processes import listening_addresses

pytestmark = pytest.mark.integration

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


class Answer:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = {name.lower(): value for name, value in response.getheaders()}
        self.body = response.read()

    def json(self) -> dict:
        return json.loads(self.body)

    def code(self) -> str:
        return self.json()["errors"][0]["code"]


def call(
    gitea: GiteaRegistry,
    method: str,
    path: str,
    *,
    auth: str = "",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    context = ssl.create_default_context(cafile=gitea.ca_file)
    connection = http.client.HTTPSConnection("127.0.0.1", gitea.port, context=context, timeout=60)
    try:
        sent = dict(headers or {})
        if auth:
            sent["Authorization"] = auth
        connection.request(method, path, body=body, headers=sent)
        return Answer(connection.getresponse())
    finally:
        connection.close()


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def bearer(gitea: GiteaRegistry, auth: str) -> str:
    answer = call(gitea, "GET", "/v2/token?service=container_registry&scope=*", auth=auth)
    assert answer.status == 200, answer.body
    return "Bearer " + answer.json()["token"]


def admin(gitea: GiteaRegistry) -> str:
    return basic("giteaAdmin", gitea.secret("giteaAdmin"))


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload(gitea: GiteaRegistry, repo: str, data: bytes, auth: str) -> str:
    digest = digest_of(data)
    answer = call(gitea, "POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", auth=auth, body=data)
    assert answer.status == 201, (answer.status, answer.body)
    return digest


def image_manifest(gitea: GiteaRegistry, repo: str, auth: str, layer: bytes = b"layer") -> bytes:
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {}}).encode()
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": upload(gitea, repo, config, auth),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": upload(gitea, repo, layer, auth),
                    "size": len(layer),
                }
            ],
        }
    ).encode()


def put_manifest(
    gitea: GiteaRegistry, repo: str, ref: str, data: bytes, auth: str, kind=OCI_MANIFEST
):
    return call(
        gitea, "PUT", f"/v2/{repo}/manifests/{ref}", auth=auth, body=data,
        headers={"Content-Type": kind},
    )  # fmt: skip


def test_listens_on_loopback_only_and_keeps_its_facts_private(gitea_registry) -> None:
    assert listening_addresses(gitea_registry.port) == {"0100007F"}
    facts = gitea_registry.directory / "registry.json"
    assert facts.stat().st_mode & 0o777 == 0o600
    users = json.loads(facts.read_text())["users"]
    assert set(users) == {"giteaAdmin", "developer", "outsider"}
    assert all(set(user) == {"password", "token", "read_token"} for user in users.values())


def test_challenge_realm_from_host_and_forwarded_proto(gitea_registry) -> None:
    """container.go apiUnauthorizedError, modules/httplib/url.go GuessCurrentHostURL."""
    answer = call(gitea_registry, "GET", "/v2/")
    assert answer.status == 401
    realm = f"https://{gitea_registry.host}/v2/token"
    assert answer.headers["www-authenticate"] == (
        f'Bearer realm="{realm}",service="container_registry",scope="*"'
    )
    assert answer.json() == {"errors": [{"code": "UNAUTHORIZED", "message": ""}]}
    forwarded = call(
        gitea_registry,
        "GET",
        "/v2/",
        headers={"Host": "gitea.cnoe.localtest.me:8443", "X-Forwarded-Proto": "https"},
    )
    assert (
        'realm="https://gitea.cnoe.localtest.me:8443/v2/token"'
        in (forwarded.headers["www-authenticate"])
    )


def test_token_endpoint_is_get_only_with_every_credential_form(gitea_registry) -> None:
    """api.go ContainerRoutes (POST /v2/token 404), services/auth/basic.go, auth.go."""
    gitea = gitea_registry
    assert call(gitea, "POST", "/v2/token", body=b"grant_type=refresh_token").status == 404
    for auth in (
        basic("giteaAdmin", gitea.secret("giteaAdmin")),
        basic("GITEAADMIN", gitea.secret("giteaAdmin")),  # user names match case-insensitively
        basic("giteaAdmin", gitea.secret("giteaAdmin", "token")),
        basic(gitea.secret("giteaAdmin", "token"), ""),  # the token as the user name
        basic("giteaAdmin", gitea.secret("giteaAdmin", "read_token")),
    ):
        answer = call(gitea, "GET", "/v2/token?service=container_registry", auth=auth)
        assert answer.status == 200, auth
        assert list(answer.json()) == ["token"]
        header, claims, _ = answer.json()["token"].split(".")
        assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "typ": "JWT"}
        payload = json.loads(base64.urlsafe_b64decode(claims + "=="))
        assert payload["UserID"] == 1
        assert payload["exp"] - payload["nbf"] == 24 * 3600
        assert abs(payload["nbf"] - time.time()) < 300
    anonymous = call(gitea, "GET", "/v2/token")
    assert anonymous.status == 200
    assert call(gitea, "GET", "/v2/", auth="Bearer " + anonymous.json()["token"]).status == 200


def test_wrong_password_is_plain_text_without_challenge(gitea_registry) -> None:
    """api.go verifyAuth -> services/context/base.go HTTPError("authGroup.Verify")."""
    answer = call(gitea_registry, "GET", "/v2/token", auth=basic("giteaAdmin", "wrong"))
    assert answer.status == 401
    assert answer.headers["content-type"].startswith("text/plain")
    assert "www-authenticate" not in answer.headers
    assert answer.body == b"authGroup.Verify\n"


def test_basic_is_accepted_on_every_endpoint(gitea_registry) -> None:
    assert call(gitea_registry, "GET", "/v2/", auth=admin(gitea_registry)).status == 200
    missing = call(
        gitea_registry, "GET", "/v2/giteaadmin/nothing/tags/list", auth=admin(gitea_registry)
    )
    assert (missing.status, missing.code()) == (404, "NAME_UNKNOWN")


def test_permission_per_owner_at_request_time(gitea_registry) -> None:
    """api.go reqPackageAccess, services/context/package.go determineAccessMode."""
    gitea = gitea_registry
    developer = bearer(gitea, basic("developer", gitea.secret("developer", "token")))
    outsider = bearer(gitea, basic("outsider", gitea.secret("outsider")))
    read_only = bearer(gitea, basic("giteaAdmin", gitea.secret("giteaAdmin", "read_token")))
    admin_token = bearer(gitea, admin(gitea))
    post = "/v2/{}/blobs/uploads/"
    assert call(gitea, "POST", post.format("platform/app"), auth=developer).status == 202
    assert call(gitea, "POST", post.format("developer/app"), auth=developer).status == 202
    assert call(gitea, "POST", post.format("platform/app"), auth=admin_token).status == 202
    assert call(gitea, "POST", post.format("outsider/app"), auth=admin_token).status == 202
    for auth, repo in (
        (outsider, "platform/app"),
        (outsider, "giteaadmin/app"),
        (developer, "giteaadmin/app"),
        (read_only, "giteaadmin/app"),
    ):
        answer = call(gitea, "POST", post.format(repo), auth=auth)
        assert answer.status == 401, (repo, answer.status)
        assert answer.headers["www-authenticate"] == 'Basic realm="Gitea Package API"'
        assert answer.headers["content-type"].startswith("text/plain")
        assert answer.body == b"reqPackageAccess\n"


def test_unknown_owner_and_one_segment_names(gitea_registry) -> None:
    """services/context/user.go userAssignment -> ctx.NotFound: "Not found."."""
    for path in ("/v2/nosuchowner/app/blobs/uploads/", "/v2/app/blobs/uploads/"):
        answer = call(gitea_registry, "POST", path, auth=admin(gitea_registry))
        assert (answer.status, answer.body) == (404, b"Not found.\n")
        assert answer.headers["content-type"].startswith("text/plain")


def test_names_and_tags(gitea_registry) -> None:
    """container.go imageNamePattern, referencePattern; manifest.go stores tags lowercased."""
    gitea, auth = gitea_registry, admin(gitea_registry)
    for name in ("he__llo", "he--llo", "Hello", "-x"):
        answer = call(gitea, "GET", f"/v2/giteaadmin/{name}/tags/list", auth=auth)
        assert (answer.status, answer.code()) == (400, "NAME_INVALID"), name
    manifest = image_manifest(gitea, "giteaadmin/names", auth)
    bad_tag = put_manifest(gitea, "giteaadmin/names", ".bad", manifest, auth)
    assert (bad_tag.status, bad_tag.json()["errors"][0]) == (
        400, {"code": "MANIFEST_INVALID", "message": "Tag is invalid"},
    )  # fmt: skip
    assert put_manifest(gitea, "giteaadmin/names", "v1.0-RC1", manifest, auth).status == 201
    tags = call(gitea, "GET", "/v2/giteaadmin/names/tags/list", auth=auth).json()
    assert tags == {"name": "giteaadmin/names", "tags": ["v1.0-rc1"]}
    for ref in ("v1.0-rc1", "V1.0-RC1"):  # looked up lowercased too
        answer = call(gitea, "HEAD", f"/v2/giteaadmin/names/manifests/{ref}", auth=auth)
        assert answer.status == 200
        assert answer.headers["docker-content-digest"] == digest_of(manifest)


def test_uploads_monolithic_chunked_and_mount(gitea_registry) -> None:
    """container.go InitiateUploadBlob, UploadBlob, EndUploadBlob."""
    gitea, auth = gitea_registry, admin(gitea_registry)
    repo = "giteaadmin/uploads"
    wrong = call(
        gitea, "POST", f"/v2/{repo}/blobs/uploads/?digest={digest_of(b'x')}", auth=auth, body=b"y"
    )
    assert (wrong.status, wrong.code()) == (400, "DIGEST_INVALID")
    start = call(gitea, "POST", f"/v2/{repo}/blobs/uploads/", auth=auth)
    assert start.status == 202 and start.headers["docker-upload-uuid"]
    location = start.headers["location"]
    assert location == f"/v2/{repo}/blobs/uploads/{start.headers['docker-upload-uuid']}"
    first = call(gitea, "PATCH", location, auth=auth, body=b"hello ")
    assert (first.status, first.headers["range"]) == (202, "0-5")
    stream = call(gitea, "PATCH", location, auth=auth, body=b"again")
    assert (stream.status, stream.code()) == (400, "BLOB_UPLOAD_INVALID")
    assert stream.json()["errors"][0]["message"] == (
        "Stream uploads after first write are not allowed"
    )
    gap = call(gitea, "PATCH", location, auth=auth, body=b"x", headers={"Content-Range": "9-9"})
    assert (gap.status, gap.code()) == (416, "BLOB_UPLOAD_INVALID")
    more = call(
        gitea, "PATCH", location, auth=auth, body=b"world", headers={"Content-Range": "6-10"}
    )
    assert (more.status, more.headers["range"]) == (202, "0-10")
    done = call(gitea, "PUT", f"{location}?digest={digest_of(b'hello world')}", auth=auth)
    assert done.status == 201
    assert done.headers["docker-content-digest"] == digest_of(b"hello world")
    gone = call(gitea, "PATCH", location, auth=auth, body=b"x")
    assert (gone.status, gone.code()) == (404, "BLOB_UPLOAD_UNKNOWN")
    mounted = call(
        gitea, "POST",
        f"/v2/giteaadmin/mounted/blobs/uploads/?mount={digest_of(b'hello world')}&from={repo}",
        auth=auth,
    )  # fmt: skip
    assert mounted.status == 201
    fallback = call(
        gitea, "POST",
        f"/v2/giteaadmin/mounted/blobs/uploads/?mount={digest_of(b'absent')}&from={repo}",
        auth=auth,
    )  # fmt: skip
    assert fallback.status == 202
    head = call(
        gitea, "HEAD", f"/v2/giteaadmin/mounted/blobs/{digest_of(b'hello world')}", auth=auth
    )
    assert (head.status, head.headers["content-length"]) == (200, "11")


def test_manifest_rules(gitea_registry) -> None:
    """manifest.go processImageManifest / processImageManifestIndex, container.go size limit."""
    gitea, auth = gitea_registry, admin(gitea_registry)
    repo = "giteaadmin/rules"
    manifest = image_manifest(gitea, repo, auth)
    elsewhere = put_manifest(gitea, "giteaadmin/other", "v1", manifest, auth)
    assert (elsewhere.status, elsewhere.code()) == (404, "BLOB_UNKNOWN")  # not in this image
    wrong_size = json.loads(manifest)
    wrong_size["layers"][0]["size"] += 1
    answer = put_manifest(gitea, repo, "v1", json.dumps(wrong_size).encode(), auth)
    assert (answer.status, answer.code()) == (400, "SIZE_INVALID")
    assert put_manifest(gitea, repo, "v1", manifest, auth).status == 201
    too_big = call(
        gitea, "PUT", f"/v2/{repo}/manifests/big", auth=auth,
        body=b" " * (10 * 1024 * 1024 + 1), headers={"Content-Type": OCI_MANIFEST},
    )  # fmt: skip
    assert (too_big.status, too_big.json()["errors"][0]["message"]) == (
        413, "Manifest exceeds maximum size",
    )  # fmt: skip
    child = {"mediaType": OCI_MANIFEST, "digest": digest_of(manifest), "size": len(manifest)}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child]}
    assert (
        put_manifest(gitea, repo, "multi", json.dumps(index).encode(), auth, OCI_INDEX).status
        == 201
    )
    absent = {**child, "digest": digest_of(b"no such manifest")}
    answer = put_manifest(
        gitea, repo, "x", json.dumps({**index, "manifests": [absent]}).encode(), auth, OCI_INDEX
    )
    assert (answer.status, answer.code()) == (404, "MANIFEST_BLOB_UNKNOWN")
    nested = {**index, "manifests": [{**child, "mediaType": OCI_INDEX}]}
    answer = put_manifest(gitea, repo, "x", json.dumps(nested).encode(), auth, OCI_INDEX)
    assert (answer.status, answer.code()) == (400, "MANIFEST_INVALID")


def test_artifacts_and_the_referrers_tag_schema(gitea_registry) -> None:
    """manifest.go processImageManifest (any artifactType; the config parsed by
    metadata.go ParseImageConfig), api.go (no referrers route): the tag schema's index works."""
    gitea, auth = gitea_registry, admin(gitea_registry)
    repo = "giteaadmin/artifacts"
    image = image_manifest(gitea, repo, auth)
    assert put_manifest(gitea, repo, "v1", image, auth).status == 201
    statement = b'{"_type":"https://in-toto.io/Statement/v1"}'

    def artifact(config: bytes, config_type: str) -> bytes:
        return json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.in-toto+json",
            "config": {"mediaType": config_type, "digest": upload(gitea, repo, config, auth),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.in-toto+json",
                        "digest": upload(gitea, repo, statement, auth), "size": len(statement)}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": digest_of(image), "size": len(image)},
        }).encode()  # fmt: skip

    not_json = artifact(b"not json", "application/vnd.example.config")
    answer = put_manifest(gitea, repo, digest_of(not_json), not_json, auth)
    assert answer.status == 500  # Gitea parses every non-Helm config as an image config
    empty = artifact(b"{}", "application/vnd.oci.empty.v1+json")
    answer = put_manifest(gitea, repo, digest_of(empty), empty, auth)
    assert answer.status == 201 and answer.headers["docker-content-digest"] == digest_of(empty)
    assert call(gitea, "GET", f"/v2/{repo}/manifests/{digest_of(empty)}", auth=auth).body == empty
    referrers = call(gitea, "GET", f"/v2/{repo}/referrers/{digest_of(image)}", auth=auth)
    assert referrers.status == 404
    entry = {"mediaType": OCI_MANIFEST, "digest": digest_of(empty), "size": len(empty),
             "artifactType": "application/vnd.in-toto+json"}  # fmt: skip
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]})
    tag = "sha256-" + digest_of(image)[7:]
    assert put_manifest(gitea, repo, tag, index.encode(), auth, OCI_INDEX).status == 201
    assert json.loads(call(gitea, "GET", f"/v2/{repo}/manifests/{tag}", auth=auth).body) == (
        json.loads(index)
    )


def test_body_over_the_ingress_limit_gets_nginx_html(small_gitea_registry) -> None:
    """ingress-nginx: proxy-body-size (client_max_body_size) answers nginx's own 413 page."""
    gitea, auth = small_gitea_registry, admin(small_gitea_registry)
    data = b"x" * (1024 * 1024 + 1)
    answer = call(
        gitea,
        "POST",
        f"/v2/giteaadmin/big/blobs/uploads/?digest={digest_of(data)}",
        auth=auth,
        body=data,
    )
    assert answer.status == 413
    assert answer.headers["content-type"] == "text/html"
    assert b"<title>413 Request Entity Too Large</title>" in answer.body
    assert b"<center>nginx</center>" in answer.body
    small = b"x" * 1024
    assert upload(gitea, "giteaadmin/big", small, auth) == digest_of(small)
