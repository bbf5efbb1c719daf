"""refs.py: parsing image references and mapping a local image to its registry destination."""

from __future__ import annotations

import pytest

from idpwrap.errors import EXIT_USAGE, InvalidReference, UsageError
from idpwrap.refs import (
    Destination,
    LocalRef,
    Registry,
    explicit_destination,
    gitea_destination,
    parse_local,
    parse_registry,
    parse_source,
    store_candidates,
)

DIGEST = "sha256:" + "ab" * 32
GITEA = Registry("gitea.cnoe.localtest.me:8443")


# -- parse_local --------------------------------------------------------------------------


def test_parse_local_without_tag_means_latest():
    assert parse_local("myapp") == LocalRef("myapp", "latest")


def test_parse_local_with_tag_and_path():
    ref = parse_local("team/my-app:v1.0.0")
    assert ref == LocalRef("team/my-app", "v1.0.0")
    assert str(ref) == "team/my-app:v1.0.0"


@pytest.mark.parametrize(
    ("text", "lowered"),
    [("MyApp", "myapp"), ("MyApp:v1", "myapp"), ("giteaAdmin/myapp:v1.0.0", "giteaadmin/myapp")],
)
def test_parse_local_rejects_uppercase_naming_the_lowercase_form(text, lowered):
    with pytest.raises(InvalidReference) as caught:
        parse_local(text)
    message = str(caught.value)
    assert "lowercase" in message
    assert message.endswith(f": {lowered}")
    assert caught.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize(
    "text",
    [
        "app:",  # empty tag
        "app:.hidden",  # starts with '.'
        "app:-dash",  # starts with '-'
        "app:has space",
        "app:a/b",  # the '/' makes it a path, and ':' is not allowed in a name
        "app:" + "a" * 129,  # longer than 128
        "app:v1:v2",
    ],
)
def test_parse_local_rejects_bad_tags(text):
    with pytest.raises(InvalidReference) as caught:
        parse_local(text)
    assert repr(text) in str(caught.value)


def test_parse_local_accepts_a_tag_of_128_characters():
    assert parse_local("app:" + "a" * 128).tag == "a" * 128


@pytest.mark.parametrize("text", ["", "/app", "app/", "a//b", "-app", "app_", "my app"])
def test_parse_local_rejects_bad_names(text):
    with pytest.raises(InvalidReference):
        parse_local(text)


def test_parse_local_rejects_digests():
    with pytest.raises(InvalidReference) as caught:
        parse_local(f"app@{DIGEST}")
    assert "digest" in str(caught.value)


def test_parse_local_rejects_malformed_digests():
    with pytest.raises(InvalidReference) as caught:
        parse_local("app@sha256:1234")
    assert "64 hex" in str(caught.value)


# -- parse_source -------------------------------------------------------------------------


def test_parse_source_keeps_the_owner_case():
    source = parse_source("giteaAdmin/myapp:v1.0.0")
    assert source.host is None
    assert source.path == ("giteaAdmin", "myapp")
    assert source.tag == "v1.0.0"
    assert source.digest is None
    assert source.text == "giteaAdmin/myapp:v1.0.0"


def test_parse_source_with_host_and_port():
    source = parse_source("host:5000/owner/app:t")
    assert source.host == "host:5000"
    assert source.path == ("owner", "app")
    assert source.tag == "t"


def test_parse_source_localhost_is_a_host():
    source = parse_source("localhost/app")
    assert source.host == "localhost"
    assert source.path == ("app",)
    assert source.tag is None


def test_parse_source_dotted_first_component_is_a_host():
    source = parse_source("registry.example.com/team/app")
    assert source.host == "registry.example.com"
    assert source.path == ("team", "app")


def test_parse_source_with_digest():
    source = parse_source(f"app@{DIGEST}")
    assert source.path == ("app",)
    assert source.tag is None
    assert source.digest == DIGEST


def test_parse_source_with_tag_and_digest():
    source = parse_source(f"app:v1@{DIGEST}")
    assert (source.tag, source.digest) == ("v1", DIGEST)


@pytest.mark.parametrize("text", ["", "owner//app", "app:", "own er/app", "app@sha256:xyz"])
def test_parse_source_rejects_bad_references(text):
    with pytest.raises(InvalidReference):
        parse_source(text)


@pytest.mark.parametrize("text", ["MyApp:v1", "giteaAdmin/MyApp:v1"])
def test_parse_source_rejects_an_uppercase_image_name(text):
    with pytest.raises(InvalidReference) as caught:
        parse_source(text)
    assert "myapp" in str(caught.value)


# -- store_candidates ---------------------------------------------------------------------


def test_store_candidates_skip_an_uppercase_owner():
    assert store_candidates(parse_source("giteaAdmin/myapp:v1.0.0")) == ["myapp"]


def test_store_candidates_most_specific_first():
    assert store_candidates(parse_source("team/app")) == ["team/app", "app"]
    assert store_candidates(parse_source("a/b/c:t")) == ["a/b/c", "b/c", "c"]


def test_store_candidates_leave_out_the_host():
    assert store_candidates(parse_source("host:5000/team/app:t")) == ["team/app", "app"]


# -- parse_registry -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "plain_http"),
    [
        ("https://gitea.example:8443", "gitea.example:8443", False),
        ("gitea.example:8443", "gitea.example:8443", False),
        ("https://gitea.example:8443/", "gitea.example:8443", False),
        ("gitea.example:8443/", "gitea.example:8443", False),
        ("http://127.0.0.1:5000", "127.0.0.1:5000", True),
        ("HTTP://Registry.Example", "registry.example", True),
        ("  https://localhost:5000  ", "localhost:5000", False),
        ("localhost", "localhost", False),
    ],
)
def test_parse_registry(text, host, plain_http):
    registry = parse_registry(text)
    assert registry == Registry(host, plain_http)
    assert registry.url == f"{'http' if plain_http else 'https'}://{host}"


def test_parse_registry_rejects_a_path():
    with pytest.raises(UsageError) as caught:
        parse_registry("https://gitea.example:8443/v2/owner")
    assert "path" in str(caught.value)


@pytest.mark.parametrize("text", ["ftp://host", "ssh://host:22", "docker://host"])
def test_parse_registry_rejects_other_schemes(text):
    with pytest.raises(UsageError) as caught:
        parse_registry(text)
    assert "https://" in str(caught.value)
    assert "http://" in str(caught.value)


@pytest.mark.parametrize("text", ["", "https://", "host name", "host:port"])
def test_parse_registry_rejects_what_is_not_a_host(text):
    with pytest.raises(UsageError):
        parse_registry(text)


# -- gitea_destination --------------------------------------------------------------------


def test_gitea_destination_owner_from_the_path_is_lowercased():
    destination = gitea_destination(
        GITEA, parse_source("giteaAdmin/myapp:v1.0.0"), LocalRef("myapp", "v1.0.0"), None
    )
    assert destination.repository == "giteaadmin/myapp"
    assert destination.tag == "v1.0.0"
    assert destination.reference == "gitea.cnoe.localtest.me:8443/giteaadmin/myapp:v1.0.0"
    assert destination.lowercased_owner == "giteaAdmin"


def test_gitea_destination_owner_option():
    destination = gitea_destination(
        GITEA, parse_source("myapp:v1"), LocalRef("myapp", "v1"), "Team"
    )
    assert destination.reference == "gitea.cnoe.localtest.me:8443/team/myapp:v1"
    assert destination.lowercased_owner == "Team"


def test_gitea_destination_owner_option_replaces_the_owner_in_the_path():
    destination = gitea_destination(
        GITEA, parse_source("giteaAdmin/myapp:v1"), LocalRef("myapp", "v1"), "other"
    )
    assert destination.repository == "other/myapp"
    assert destination.lowercased_owner is None


def test_gitea_destination_owner_from_the_username():
    # pushrequest.plan_destination passes the username as the owner for a one-part source.
    destination = gitea_destination(
        GITEA, parse_source("myapp"), LocalRef("myapp", "latest"), "giteaAdmin"
    )
    assert destination.reference == "gitea.cnoe.localtest.me:8443/giteaadmin/myapp:latest"


def test_gitea_destination_without_an_owner_goes_to_the_root():
    destination = gitea_destination(GITEA, parse_source("myapp:v2"), LocalRef("myapp", "v2"), None)
    assert destination == Destination(GITEA, "myapp", "v2", None)
    assert destination.reference == "gitea.cnoe.localtest.me:8443/myapp:v2"


def test_gitea_destination_lowercased_owner_only_when_it_changed():
    destination = gitea_destination(
        GITEA, parse_source("giteaadmin/myapp:v1"), LocalRef("myapp", "v1"), None
    )
    assert destination.repository == "giteaadmin/myapp"
    assert destination.lowercased_owner is None


def test_gitea_destination_tag_from_the_local_image_when_the_source_has_none():
    destination = gitea_destination(
        GITEA, parse_source(f"myapp@{DIGEST}"), LocalRef("myapp", "v3"), "owner"
    )
    assert destination.tag == "v3"


def test_gitea_destination_rejects_an_invalid_owner():
    with pytest.raises(UsageError) as caught:
        gitea_destination(GITEA, parse_source("myapp"), LocalRef("myapp", "latest"), "bad owner")
    assert "'bad owner'" in str(caught.value)


# -- explicit_destination -----------------------------------------------------------------


def test_explicit_destination_without_host_uses_the_registry():
    destination = explicit_destination("team/app:v2", GITEA)
    assert destination == Destination(GITEA, "team/app", "v2")
    assert destination.reference == "gitea.cnoe.localtest.me:8443/team/app:v2"


def test_explicit_destination_without_tag_is_latest():
    assert explicit_destination("team/app", GITEA).tag == "latest"


def test_explicit_destination_with_host_overrides_the_registry():
    destination = explicit_destination("Other.Example:5000/team/app:v2", GITEA)
    assert destination.registry.host == "other.example:5000"
    assert destination.repository == "team/app"
    assert destination.reference == "other.example:5000/team/app:v2"


def test_explicit_destination_keeps_plain_http_of_the_registry():
    destination = explicit_destination("localhost:5000/app", Registry("localhost:5000", True))
    assert destination.registry == Registry("localhost:5000", True)
    assert destination.tag == "latest"


def test_explicit_destination_rejects_digests_and_uppercase():
    with pytest.raises(InvalidReference):
        explicit_destination(f"team/app@{DIGEST}", GITEA)
    with pytest.raises(InvalidReference) as caught:
        explicit_destination("Team/app:v1", GITEA)
    assert "team/app" in str(caught.value)
