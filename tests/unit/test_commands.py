"""commands/: the pieces of push, images and rmi that need no tool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from idpwrap.commands import images, rmi
from idpwrap.creds.credentials import Credentials
from idpwrap.errors import ImageNotFound, UsageError
from idpwrap.push.request import PushRequest, choose_registry, plan_destination
from idpwrap.push.source import PUSH_LAYOUT_NAME, write_push_layout
from idpwrap.refs import DEFAULT_REGISTRY, LocalRef, Registry, parse_registry, parse_source
from idpwrap.tls import TlsTrust

USER = Credentials("giteaAdmin", "secret", "environment (GITEA_USERNAME, GITEA_TOKEN)")


@pytest.fixture(autouse=True)
def no_registry_variable(monkeypatch):
    monkeypatch.delenv("IDPWRAP_REGISTRY", raising=False)


@pytest.fixture
def details(store, layouts):
    image = store.add_layout(layouts.make([b"layer"]).path, [LocalRef("myapp", "v1.0.0")])
    return store.details(image)


# -- choose_registry ----------------------------------------------------------------------


def test_registry_option():
    request = PushRequest(source="myapp", registry="http://127.0.0.1:5000")
    assert choose_registry(request, parse_source("myapp")) == Registry("127.0.0.1:5000", True)


def test_registry_from_the_source():
    source = parse_source("Registry.Example:5000/team/app:v1")
    registry = choose_registry(PushRequest(source=source.text), source)
    assert registry == Registry("registry.example:5000")


def test_registry_in_the_source_and_the_option_must_agree():
    source = parse_source("other.example/team/app:v1")
    request = PushRequest(source=source.text, registry="https://gitea.example:8443")
    with pytest.raises(UsageError) as caught:
        choose_registry(request, source)
    assert "other.example" in str(caught.value)
    assert "gitea.example:8443" in str(caught.value)
    same = PushRequest(source="gitea.example:8443/app", registry="gitea.example:8443")
    assert choose_registry(same, parse_source("gitea.example:8443/app")).host == (
        "gitea.example:8443"
    )


def test_registry_from_the_environment_then_idpbuilder(monkeypatch):
    source = parse_source("myapp")
    assert choose_registry(PushRequest(source="myapp"), source) == parse_registry(DEFAULT_REGISTRY)
    monkeypatch.setenv("IDPWRAP_REGISTRY", "http://localhost:5000")
    assert choose_registry(PushRequest(source="myapp"), source) == Registry("localhost:5000", True)


# -- plan_destination ---------------------------------------------------------------------


def plan(details, text: str, credentials=None, **request):
    source = parse_source(text)
    registry = Registry("gitea.example:8443")
    return plan_destination(
        PushRequest(source=text, **request), source, details.image, registry, credentials
    )


def test_plan_owner_from_the_username_for_a_bare_name(details):
    assert plan(details, "myapp:v1.0.0", USER).repository == "giteaadmin/myapp"


def test_plan_owner_in_the_source_beats_the_username(details):
    assert plan(details, "team/myapp:v1.0.0", USER).repository == "team/myapp"


def test_plan_owner_option_beats_the_username(details):
    assert plan(details, "myapp:v1.0.0", USER, owner="Ops").repository == "ops/myapp"


def test_plan_anonymous_bare_name_goes_to_the_root(details):
    destination = plan(details, "myapp")
    assert destination.reference == "gitea.example:8443/myapp:v1.0.0"


def test_plan_explicit_destination(details):
    destination = plan(details, "myapp:v1.0.0", USER, destination="mirror/myapp:stable")
    assert destination.reference == "gitea.example:8443/mirror/myapp:stable"


# -- TlsTrust.cert_dir_in and the push layout -------------------------------------------------


def test_ca_file_is_copied_into_a_cert_dir(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    work = tmp_path / "work"
    work.mkdir()
    cert_dir = Path(TlsTrust.of(ca_file=ca).cert_dir_in(work))
    assert sorted(path.name for path in cert_dir.iterdir()) == ["ca.crt"]  # no *.key
    assert (cert_dir / "ca.crt").read_text() == ca.read_text()


def test_cert_dir_is_used_as_is(tmp_path):
    trust = TlsTrust.of(cert_dir=tmp_path)
    assert trust.cert_dir_in(tmp_path / "unused") == str(tmp_path)


def test_missing_ca_file_or_cert_dir(tmp_path):
    with pytest.raises(UsageError, match="--ca-file"):
        TlsTrust.of(ca_file=tmp_path / "no.pem").cert_dir_in(tmp_path)
    with pytest.raises(UsageError, match="--cert-dir"):
        TlsTrust.of(cert_dir=tmp_path / "no").cert_dir_in(tmp_path)


def test_no_trust_options():
    assert TlsTrust().cert_dir_in(None) is None


def test_push_layout_is_pinned_to_the_resolved_manifest(tmp_path, store, details):
    work = tmp_path / "work"
    work.mkdir()
    layout = Path(write_push_layout(work, store, details.image))
    index = json.loads((layout / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["digest"] == details.image.digest
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": PUSH_LAYOUT_NAME}
    assert (layout / "blobs").resolve() == (store.root / "blobs").resolve()
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}


# -- images -------------------------------------------------------------------------------


def test_list_images(store, details):
    (row,) = images.list_images(store)
    assert (row.name, row.tag, row.digest) == ("myapp", "v1.0.0", details.image.digest)
    assert row.size == details.size


def test_remove_parses_names(store, details):
    assert rmi.remove(store, ["myapp:v1.0.0"])[0][0] == "myapp:v1.0.0"
    assert store.images() == []


def test_rmi_by_id_with_one_tag(store, details):
    config_id = details.manifest["config"]["digest"].removeprefix("sha256:")[:12]
    assert rmi.remove(store, [config_id])[0][0] == "myapp:v1.0.0"
    assert store.images() == []


def test_rmi_by_id_shared_by_tags_needs_force(store, details):
    store.tag(details.image, [LocalRef("other", "v2")])
    with pytest.raises(UsageError) as caught:
        rmi.remove(store, [details.image.digest[7:19]])
    message = str(caught.value)
    assert "has 2 tags (myapp:v1.0.0, other:v2)" in message
    assert f"idpwrap rmi -f {details.image.digest[7:19]}" in message
    assert len(store.images()) == 2  # nothing changed
    removed = rmi.remove(store, [details.manifest["config"]["digest"]], force=True)
    assert sorted(tag for tag, _ in removed) == ["myapp:v1.0.0", "other:v2"]
    assert store.images() == []


def test_rmi_by_an_unknown_id(store, details):
    with pytest.raises(ImageNotFound, match=r"no image in the store .* has the ID or digest"):
        rmi.remove(store, ["0" * 12])


def test_a_tag_named_like_an_id_is_a_tag(store, details):
    store.tag(details.image, [LocalRef("abcdef012345", "latest")])
    assert rmi.remove(store, ["abcdef012345"])[0][0] == "abcdef012345:latest"
