"""Reproducible builds for real: the same source gives the same digest on two machines (two
HOMEs, two fresh stores and buildah storages), whatever the files' modification times."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

from testing.cli import Cli, json_events, make_cli
from testing.images import local_image, make_context, read_blob_json

CONTAINERFILE = """\
FROM scratch
COPY busybox /bin/busybox
COPY app.txt /app/app.txt
RUN ["/bin/busybox", "sh", "-c", "echo made > /app/made.txt"]
"""
COMMIT_TIME = 1700000000  # 2023-11-14T22:13:20Z


def build(cli: Cli, context: Path, tag: str, *options: str, env=None):
    result = cli.run("build", "--context", str(context), "-t", tag, "-q", *options, env=env)
    assert result.returncode == 0, result.describe()
    return result


def git(context: Path, *args: str) -> str:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(context),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_DATE": f"@{COMMIT_TIME}",
        "GIT_COMMITTER_DATE": f"@{COMMIT_TIME}",
    }
    argv = ["git", "-C", str(context), "-c", "user.name=t", "-c", "user.email=t@example.test"]
    done = subprocess.run([*argv, *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def layer_times(store: Path, tag: str) -> set[int]:
    """The modification time of every entry in every layer of the image."""
    image = local_image(store, tag)
    times = set()
    for digest, _ in image.layers:
        data = (store / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as archive:
            times |= {int(member.mtime) for member in archive.getmembers()}
    return times


def test_two_homes_give_one_digest_and_a_changed_byte_a_new_one(tmp_path):
    context = make_context(tmp_path / "ctx", CONTAINERFILE, {"app.txt": b"version 1\n"})
    first_cli = make_cli(tmp_path / "first", tmp_path / "first" / "store")
    second_cli = make_cli(tmp_path / "second", tmp_path / "second" / "store")
    build(first_cli, context, "app:v1")
    # Another machine, later: every file of the context has other times.
    for name in ("busybox", "app.txt", "Containerfile"):
        os.utime(context / name, (time.time() + 600, time.time() + 600))
    build(second_cli, context, "app:v1")
    first = local_image(first_cli.store, "app:v1")
    second = local_image(second_cli.store, "app:v1")
    assert first.digest == second.digest
    config = read_blob_json(first_cli.store, first.config[0])
    assert config["created"] == "1970-01-01T00:00:00Z"
    assert {entry["created"] for entry in config["history"]} == {"1970-01-01T00:00:00Z"}
    assert layer_times(first_cli.store, "app:v1") == {0}

    (context / "app.txt").write_bytes(b"version 2\n")
    build(second_cli, context, "app:v2")
    assert local_image(second_cli.store, "app:v2").digest != first.digest


def test_the_git_commit_time_and_annotations_and_what_overrides_them(cli, tmp_path):
    context = make_context(tmp_path / "ctx", CONTAINERFILE, {"app.txt": b"git\n"})
    git(context, "init", "-q")
    git(context, "remote", "add", "origin", "https://builder:s3cret@git.example.test/o/app.git")
    git(context, "add", "-A")
    git(context, "commit", "-q", "-m", "one")
    revision = git(context, "rev-parse", "HEAD")
    result = build(cli, context, "git:v1", "--verbose")
    assert f"build time: {COMMIT_TIME} (commit time of {revision[:12]})" in result.stderr
    image = local_image(cli.store, "git:v1")
    manifest = read_blob_json(cli.store, image.digest)
    annotations = manifest["annotations"]
    assert annotations["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    assert annotations["org.opencontainers.image.revision"] == revision
    assert annotations["org.opencontainers.image.source"] == "https://git.example.test/o/app.git"
    config = read_blob_json(cli.store, image.config[0])
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert "s3cret" not in json.dumps(manifest) + json.dumps(config)
    assert layer_times(cli.store, "git:v1") == {COMMIT_TIME}

    # SOURCE_DATE_EPOCH wins over git, --timestamp over both.
    build(cli, context, "sde:v1", env={"SOURCE_DATE_EPOCH": "1000"})
    config = read_blob_json(cli.store, local_image(cli.store, "sde:v1").config[0])
    assert config["created"] == "1970-01-01T00:16:40Z"
    build(cli, context, "flag:v1", "--timestamp", "2000", env={"SOURCE_DATE_EPOCH": "1000"})
    config = read_blob_json(cli.store, local_image(cli.store, "flag:v1").config[0])
    assert config["created"] == "1970-01-01T00:33:20Z"

    # now: the wall clock, as before; the config key does the same.
    before = time.time() - 5
    build(cli, context, "now:v1", "--timestamp", "now")
    created = read_blob_json(cli.store, local_image(cli.store, "now:v1").config[0])["created"]
    assert time.mktime(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone > before
    config_dir = cli.home / ".config" / "idpwrap"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.yaml").write_text("timestamp: 3000\n")
    build(cli, context, "key:v1")
    config = read_blob_json(cli.store, local_image(cli.store, "key:v1").config[0])
    assert config["created"] == "1970-01-01T00:50:00Z"


def test_bad_timestamps_are_one_line_usage_errors(cli, tmp_path):
    context = make_context(tmp_path / "ctx", CONTAINERFILE, {"app.txt": b"x\n"})
    flag = cli.run("build", "--context", str(context), "-t", "bad:v1", "--timestamp", "yesterday")
    assert flag.returncode == 2, flag.describe()
    (line,) = flag.error_lines()
    assert "--timestamp 'yesterday'" in line and "now" in line
    env = cli.run("build", "--context", str(context), "-t", "bad:v1",
                  env={"SOURCE_DATE_EPOCH": "soon"})  # fmt: skip
    assert env.returncode == 2, env.describe()
    (line,) = env.error_lines()
    assert "SOURCE_DATE_EPOCH='soon'" in line
    assert (
        not (cli.store / "index.json").exists()
        or "bad" not in (cli.store / "index.json").read_text()
    )


def test_the_layer_cache_does_not_serve_layers_of_another_time(cli, tmp_path):
    context = make_context(tmp_path / "ctx", CONTAINERFILE, {"app.txt": b"cache\n"})
    build(cli, context, "c:one", "--timestamp", "1000")
    second = build(cli, context, "c:two", "--timestamp", "2000", "--verbose")
    assert "layer cache: its layers carry time 1000, this build 2000: emptying it" in (
        second.stderr
    )
    assert layer_times(cli.store, "c:two") == {2000}
    elsewhere = make_cli(tmp_path / "elsewhere", tmp_path / "elsewhere" / "store")
    build(elsewhere, context, "c:two", "--timestamp", "2000")
    assert local_image(elsewhere.store, "c:two").digest == local_image(cli.store, "c:two").digest
    # The same time again: buildah's cache serves every step.
    (context / "app.txt").write_bytes(b"cache 2\n")
    third = cli.run("build", "--context", str(context), "-t", "c:three", "--timestamp", "2000")
    assert third.returncode == 0, third.describe()
    assert "Using cache" in third.stderr.split("STEP 2/")[1].split("STEP 3/")[0]


def test_a_rebuild_pushed_again_moves_nothing_in_the_registry(tmp_path, fresh_registry):
    context = make_context(tmp_path / "ctx", CONTAINERFILE, {"app.txt": b"push\n"})
    first_cli = make_cli(tmp_path / "first", tmp_path / "first" / "store")
    build(first_cli, context, "app:v1")
    push = ("push", "--registry", fresh_registry.url, *fresh_registry.tls_options(),
            "--progress", "json", "app:v1", "giteaadmin/app:v1")  # fmt: skip
    pushed = first_cli.run(*push, credentials=fresh_registry.credentials)
    assert pushed.returncode == 0, pushed.describe()
    digest = fresh_registry.client().manifest_digest("giteaadmin/app", "v1")
    assert digest == local_image(first_cli.store, "app:v1").digest

    for name in ("busybox", "app.txt"):
        os.utime(context / name, (time.time() + 900, time.time() + 900))
    second_cli = make_cli(tmp_path / "second", tmp_path / "second" / "store")
    build(second_cli, context, "app:v1")
    # The copy itself is under test: without the up-to-date check it starts skopeo.
    again = second_cli.run(*push, "--no-up-to-date-check", credentials=fresh_registry.credentials)
    assert again.returncode == 0, again.describe()
    assert fresh_registry.client().manifest_digest("giteaadmin/app", "v1") == digest
    done = {e["blob"]: e["skipped"] for e in json_events(again.stderr) if e["event"] == "blob_done"}
    layers = [digest for digest, _ in local_image(second_cli.store, "app:v1").layers]
    # skopeo reports every layer as "skipped: already exists"; the config it checks by itself.
    assert {digest: done.get(digest) for digest in layers} == dict.fromkeys(layers, True), done
