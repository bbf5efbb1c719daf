"""The provenance's pure parts: which build arguments it shows, URLs without credentials, the
store's rule that a provenance lives as long as a tag reaches its image, and verify's checks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from idpwrap.build.provenance import clean, is_secret_name, recorded_args
from idpwrap.errors import NotVerified
from idpwrap.sign.attest import Expected, check
from idpwrap.store import referrers

IMAGE = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    "name", ["API_TOKEN", "npm_password", "SSH_KEY", "db_passwd", "MY_SECRET_X", "AWS_CREDENTIALS"]
)
def test_secret_looking_names_are_secret(name: str) -> None:
    assert is_secret_name(name)


def test_recorded_args_leave_out_secret_and_redacted_ones_and_clean_urls() -> None:
    shown = recorded_args(
        ["VERSION=1", "API_TOKEN=x", "NOTE=hidden", "MIRROR=https://u:pw@mirror.test/x"],
        ["note"],
    )
    assert shown == {"MIRROR": "https://mirror.test/x", "VERSION": "1"}
    assert clean("see https://a:b@h.test/p and more") == "see https://h.test/p and more"


def entry(digest: str, tag: str | None = None, media: str = referrers.OCI_MANIFEST) -> dict:
    found: dict = {"mediaType": media, "digest": digest, "size": 1}
    if tag:
        found["annotations"] = {"org.opencontainers.image.ref.name": tag}
    return found


def test_a_provenance_goes_with_the_last_tag_of_its_image(tmp_path: Path) -> None:
    blob_dir = tmp_path / "blobs" / "sha256"
    statement = b'{"_type":"https://in-toto.io/Statement/v1"}'
    artifact = referrers.write_artifact(
        blob_dir, entry(IMAGE), statement, "https://slsa.dev/provenance/v1"
    )
    index = {"schemaVersion": 2, "manifests": [entry(IMAGE, "a:v1"), entry(IMAGE, "a:v2"),
                                               artifact, dict(artifact)]}  # fmt: skip
    kept = referrers.attached(index, blob_dir)["manifests"]
    assert kept == [entry(IMAGE, "a:v1"), entry(IMAGE, "a:v2"), artifact]  # once
    moved = {"schemaVersion": 2, "manifests": [entry(OTHER, "a:v1"), artifact]}
    assert referrers.attached(moved, blob_dir)["manifests"] == [entry(OTHER, "a:v1")]
    manifest = json.loads((blob_dir / artifact["digest"][7:]).read_bytes())
    assert manifest["subject"] == entry(IMAGE) and manifest["artifactType"] == referrers.IN_TOTO


def test_a_child_of_a_tagged_index_keeps_its_provenance(tmp_path: Path) -> None:
    blob_dir = tmp_path / "blobs" / "sha256"
    artifact = referrers.write_artifact(blob_dir, entry(IMAGE), b"{}", "t")
    index_blob = json.dumps({"manifests": [entry(IMAGE)]}).encode()
    index_digest = "sha256:" + hashlib.sha256(index_blob).hexdigest()
    (blob_dir / index_digest[7:]).write_bytes(index_blob)
    media = "application/vnd.oci.image.index.v1+json"
    index = {"manifests": [entry(index_digest, "both:v1", media), artifact]}
    assert referrers.attached(index, blob_dir)["manifests"][-1] == artifact


def statement(digest: str = IMAGE, uri: str = "git+https://git.test/team/app.git") -> dict:
    return {
        "subject": [{"name": "app", "digest": {"sha256": digest[7:]}}],
        "predicate": {
            "buildDefinition": {
                "resolvedDependencies": [{"uri": uri, "digest": {"gitCommit": COMMIT}}]
            },
            "runDetails": {"builder": {"id": "urn:idpwrap:builder:local"}},
        },
    }


def test_verify_accepts_a_matching_provenance() -> None:
    said = check([statement()], IMAGE, Expected("https://git.test/team/app/", COMMIT[:7], None))
    assert said == (
        f"SLSA v1, built from git+https://git.test/team/app.git at {COMMIT}"
        " by urn:idpwrap:builder:local"
    )
    assert check([], IMAGE, Expected(None, None, None)) == "none attached"


@pytest.mark.parametrize(
    ("expected", "reason"),
    [
        (Expected(None, "f" * 40, None), f"built from commit {COMMIT}, not {'f' * 40}"),
        (Expected(None, COMMIT[:6], None), "not 012345"),  # too short to mean one commit
        (Expected("https://git.test/team/other", None, None), "not https://git.test/team/other"),
        (Expected(None, None, "https://ci.test"), "built by urn:idpwrap:builder:local"),
    ],
)
def test_verify_refuses_a_provenance_that_does_not_match(expected: Expected, reason: str) -> None:
    with pytest.raises(NotVerified) as refused:
        check([statement()], IMAGE, expected)
    assert reason in str(refused.value) and refused.value.exit_code == 10


def test_verify_refuses_a_missing_or_misplaced_provenance_when_asked() -> None:
    with pytest.raises(NotVerified, match="has no provenance attestation"):
        check([], IMAGE, Expected(None, COMMIT, None))
    with pytest.raises(NotVerified, match="name other digests"):
        check([statement(OTHER)], IMAGE, Expected(None, None, None))
