"""What a push says: one owner notice per push, --digestfile lines that name their tag, and
TLS that nobody verifies (http:// to a registry that answers TLS) said as --insecure says it."""

from __future__ import annotations

from pathlib import Path

import pytest

from testing.cli import Cli

pytestmark = pytest.mark.integration


def test_all_tags_says_the_owner_notice_once_and_names_each_digests_tag(
    prebuilt, prebuilt_copy: Cli, registry, tmp_path: Path
) -> None:
    for tag in ("v2", "v3"):
        tagged = prebuilt_copy.run("tag", "three:v1", f"three:{tag}")
        assert tagged.returncode == 0, tagged.describe()
    digestfile = tmp_path / "digests"
    result = prebuilt_copy.run(
        "push", "--registry", registry.url, *registry.tls_options(), "--all-tags",
        "--progress", "none", "--digestfile", str(digestfile), "giteaAdmin/three",
        credentials=registry.credentials,
    )  # fmt: skip
    assert result.returncode == 0, result.describe()
    assert result.stderr.count("lowercased to 'giteaadmin'") == 1, result.stderr
    digest = prebuilt.three.digest
    assert digestfile.read_text() == "".join(
        f"{registry.host}/giteaadmin/three:{tag} {digest}\n" for tag in ("v1", "v2", "v3")
    )


def test_plain_http_to_a_registry_that_answers_tls_says_verification_is_off(
    prebuilt_cli: Cli, registry, http_registry
) -> None:
    result = prebuilt_cli.run(
        "push", "--registry", f"http://{registry.host}", "--progress", "none", "hello:v1",
        "giteaadmin/http-to-tls:v1", credentials=registry.credentials,
    )  # fmt: skip
    assert result.returncode == 0, result.describe()
    assert (
        f"idpwrap: TLS verification is off for {registry.host}: it answers TLS, and with"
        f" http://{registry.host} skopeo uses it unverified; use https://{registry.host}"
    ) in result.stderr, result.stderr
    plain = prebuilt_cli.run(
        "push", "--registry", http_registry.url, "--progress", "none", "hello:v1",
        "giteaadmin/plain:v1", credentials=http_registry.credentials,
    )  # fmt: skip
    assert plain.returncode == 0, plain.describe()
    assert "TLS verification is off" not in plain.stderr
