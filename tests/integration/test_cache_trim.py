"""``idpwrap cache trim`` on a build cache filled by real builds (issue 18): two runners, one
registry, the plain test registry and the Gitea mode. Ages come from the entries' marks; a
test makes an entry old by writing its mark with an explicit time, never by waiting.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from idpwrap.build.cachemarks import write_mark
from idpwrap.creds.credentials import Credentials
from idpwrap.refs import Registry
from idpwrap.registry.repository import Repository
from idpwrap.tls import TlsTrust
from testing.cli import make_cli
from testing.images import make_context
from testing.registry.running import start_registry
from tests.integration.test_registry_cache import CONTAINERFILE, build, runners

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DAY = 86400.0


def user_of(server) -> tuple[str, str]:
    if hasattr(server, "password"):
        return server.username, server.password
    return "giteaAdmin", server.secret("giteaAdmin", "token")


def repository(server, path: str) -> Repository:
    username, secret = user_of(server)
    return Repository(
        Registry(server.host), path, Credentials(username, secret, "test"),
        TlsTrust(ca_file=server.ca_file),
    )  # fmt: skip


def trim(cli, server, path: str, *options: str):
    return cli.run(
        "cache", "trim", f"{server.host}/{path}", *server.tls_options(), *options,
        credentials=user_of(server), timeout=120,
    )  # fmt: skip


def entry_tags(tags: list[str]) -> list[str]:
    return sorted(tag for tag in tags if tag.startswith("idpwrap-build-"))


@pytest.mark.parametrize("mode", ["registry", "gitea"])
def test_trim_removes_an_old_build_and_its_own_steps_keeps_the_rest(
    tmp_path: Path, mode, registry, gitea_registry
):
    server = registry if mode == "registry" else gitea_registry
    path = f"giteaadmin/trim-{mode}-buildcache"
    context = make_context(tmp_path / "ctx", CONTAINERFILE, {"app.txt": b"old\n"})
    first, second = runners(tmp_path)
    build(first, context, server, path)
    remote = repository(server, path)
    old_entry = entry_tags(remote.tags())
    assert len(old_entry) == 1
    assert f"idpwrap-used-{old_entry[0].split('-')[-1]}" in remote.tags()
    (context / "app.txt").write_bytes(b"new\n")
    build(second, context, server, path)
    tags_before = remote.tags()
    new_entry = [tag for tag in entry_tags(tags_before) if tag not in old_entry]
    assert len(new_entry) == 1
    fingerprint = old_entry[0].split("-")[-1]
    write_mark(remote, fingerprint, old_entry[0], time.time() - 10 * DAY)

    dry = trim(first, server, path, "--older-than", "7d", "--dry-run", "--json")
    assert dry.returncode == 0, dry.describe()
    planned = json.loads(dry.stdout)
    removed = {item["tag"]: item for item in planned["removed"]}
    assert old_entry[0] in removed and f"idpwrap-used-{fingerprint}" in removed
    assert new_entry[0] in {item["tag"] for item in planned["kept"]}
    # the changed COPY's step is only in the old build; busybox's and the RUN's are in both
    steps = [item for item in removed.values() if item["kind"] == "layer"]
    assert len(steps) == 1, planned
    assert planned["deleted_manifests"] == 0 and remote.tags() == tags_before

    kept = trim(first, server, path, "--older-than", "7d", "--keep", "2", "--json")
    assert kept.returncode == 0, kept.describe()
    assert json.loads(kept.stdout)["removed"] == [] and remote.tags() == tags_before

    done = trim(first, server, path, "--older-than", "7d", "-v")
    assert done.returncode == 0, done.describe()
    assert f"removed {server.host}/{path}:{old_entry[0]} (used 10d ago)" in done.stdout
    assert f"kept {server.host}/{path}:{new_entry[0]} (used 0m ago)" in done.stdout
    assert done.stdout.splitlines()[-1].startswith(f"Removed 3 tags of {server.host}/{path}")
    left = remote.tags()
    assert set(left) == set(tags_before) - set(removed)

    # what stays still serves: a third runner copies the new build whole
    third = make_cli(tmp_path / "runner-c", tmp_path / "runner-c" / "store")
    hit = build(third, context, server, path)
    assert "holds this very build" in hit.stderr, hit.describe()


def test_a_registry_without_deletes_is_one_line_and_exit_12(tmp_path: Path):
    server = start_registry(tmp_path / "no-deletes", deletes=False)
    try:
        path = "giteaadmin/nodelete-buildcache"
        context = make_context(tmp_path / "ctx", CONTAINERFILE, {"app.txt": b"kept\n"})
        first, _ = runners(tmp_path)
        build(first, context, server, path)
        remote = repository(server, path)
        tags = remote.tags()
        result = trim(first, server, path, "--older-than", "1m")
        # the entry was used less than a minute ago: nothing to delete yet, so no refusal
        assert result.returncode == 0, result.describe()
        entry = entry_tags(tags)[0]
        write_mark(remote, entry.split("-")[-1], entry, time.time() - 2 * DAY)
        result = trim(first, server, path, "--older-than", "1d")
        assert result.returncode == 12, result.describe()
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "does not allow deletes (UNSUPPORTED)" in lines[0], lines
        assert remote.tags() == tags
    finally:
        server.stop()


def test_the_gitea_mode_deletes_as_gitea_does(tmp_path: Path, gitea_registry):
    """DeleteManifest (v1.24.3): by tag, that one tag; by digest, every tag naming it; a token
    without write:package may not; the tag list pages with Link while a page has tags."""
    remote = repository(gitea_registry, "giteaadmin/deletes-buildcache")
    remote.put_blob(b"{}")
    body = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
    body += b'"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":'
    body += b'"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},'
    body += b'"layers":[]}'
    for tag in ("one", "two", "three"):
        digest = remote.put_manifest(tag, "application/vnd.oci.image.manifest.v1+json", body)
    assert remote.tags() == ["one", "three", "two"]
    page = remote.request("GET", f"/v2/{remote.name}/tags/list?n=2")
    assert json.loads(page.body)["tags"] == ["one", "three"]
    assert 'last=three>; rel="next"' in page.headers["Link"]
    assert remote.request("DELETE", f"/v2/{remote.name}/manifests/two").status == 202
    assert remote.tags() == ["one", "three"]
    reader = Repository(
        Registry(gitea_registry.host), remote.name,
        Credentials("giteaAdmin", gitea_registry.secret("giteaAdmin", "read_token"), "test"),
        TlsTrust(ca_file=gitea_registry.ca_file),
    )  # fmt: skip
    assert reader.tags() == ["one", "three"]
    with pytest.raises(Exception, match="refused DELETE"):
        reader.delete(digest)
    assert remote.delete(digest) and remote.tags() == []
