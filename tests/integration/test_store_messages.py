"""What the store commands say after ordinary rebuilds: the old image's layers are "no tag uses
any more", not leftovers of interrupted commands, and doctor does not warn about them; inspect
by digest names its tags the same way every time and asks for a longer prefix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testing.cli import Cli
from testing.images import local_image, make_context

pytestmark = pytest.mark.integration


def build(cli: Cli, context: Path, tag: str) -> None:
    result = cli.run("build", "-q", "-t", tag, str(context))
    assert result.returncode == 0, result.describe()


def test_after_a_rebuild_rmi_prune_and_doctor_say_what_the_unused_layers_are(
    cli: Cli, tmp_path: Path
) -> None:
    context = make_context(tmp_path / "app", "FROM scratch\nCOPY busybox /bb\nCOPY a /a\n")
    (context / "a").write_text("first")
    build(cli, context, "app:v1")
    (context / "a").write_text("second")
    build(cli, context, "app:v1")  # the tag moves; the first image's blobs stay
    build(cli, context, "other:v1")

    doctor = cli.run("doctor", "--json")
    (store,) = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "store"]
    assert store["status"] == "ok", store
    assert "of layers no tag uses any more" in store["message"], store
    assert "interrupted" not in store["message"]

    removed = cli.run("rmi", "other:v1")
    assert removed.returncode == 0, removed.describe()
    assert "of layers no tag uses any more" in removed.stderr, removed.stderr
    assert "interrupted commands" not in removed.stderr

    (context / "a").write_text("third")
    build(cli, context, "app:v1")  # "second" (other:v1 is gone) is now unused: its manifest,
    pruned = cli.run("prune")  # config and the layer of /a
    assert pruned.returncode == 0, pruned.describe()
    # the first image's manifest, config and app layer, and its provenance (artifact manifest and
    # statement; the empty config stays with the second image's provenance)
    assert pruned.stdout.startswith("Removed 5 blobs of layers no tag uses any more (")
    assert "and 0 leftovers of interrupted commands (0 B)" in pruned.stdout


def test_inspect_by_digest_is_deterministic_and_a_short_prefix_asks_for_more(
    prebuilt_copy: Cli,
) -> None:
    cli = prebuilt_copy
    for tag in ("zeta:v1", "alpha:v1"):
        assert cli.run("tag", "hello:v1", tag).returncode == 0
    digest = local_image(cli.store, "hello:v1").digest
    for text in (digest, digest[7:19]):
        shown = cli.run("inspect", text)
        assert shown.returncode == 0, shown.describe()
        assert "Reference:    alpha:v1\n" in shown.stdout
        assert "Tags:         alpha:v1, hello:v1, zeta:v1\n" in shown.stdout
    asked = cli.run("inspect", "zeta:v1")
    assert "Reference:    zeta:v1\n" in asked.stdout
    short = cli.run("inspect", digest[7:12])
    assert short.returncode == 3
    assert short.stderr == (
        f"idpwrap: error: {digest[7:12]} is not a tag, and too short a digest prefix: give 12"
        f" or more hex digits of the digest, e.g. {digest[7:19]}\n"
    )
