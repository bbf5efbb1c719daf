"""`idpwrap build` with real buildah: podman's options, ignore files, secrets, the layer cache
and the recognition of an unchanged build."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import tarfile
from pathlib import Path

import pytest

from idpwrap.build import ignore
from testing.cli import Cli
from testing.images import MiB, blob_path, local_image, make_context, read_blob_json
from testing.paths import BUSYBOX

pytestmark = pytest.mark.integration


def context_with(directory: Path, containerfile: str, files: dict[str, bytes]) -> Path:
    """``make_context`` with files in subdirectories too."""
    make_context(directory, containerfile)
    for name, data in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    return directory


def layer_files(store: Path, tag: str) -> dict[str, bytes]:
    """Every regular file in every layer of ``tag``: path -> content (later layers win)."""
    files: dict[str, bytes] = {}
    for digest, _ in local_image(store, tag).layers:
        data = blob_path(store, digest).read_bytes()
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as archive:
            for member in archive.getmembers():
                if member.isfile():
                    files[member.name] = archive.extractfile(member).read()
    return files


def layer_bytes(store: Path, tag: str) -> list[bytes]:
    """Each layer of ``tag``, uncompressed."""
    image = local_image(store, tag)
    return [gzip.decompress(blob_path(store, d).read_bytes()) for d, _ in image.layers]


def image_config(store: Path, tag: str) -> dict:
    return read_blob_json(store, local_image(store, tag).config[0])


def build(cli: Cli, context: Path, tag: str, *options: str, env=None):
    result = cli.run("build", "--context", str(context), "-t", tag, *options, env=env)
    assert result.returncode == 0, result.describe()
    return result


@pytest.fixture
def counting_buildah(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A ``buildah`` first on PATH that notes each run, then runs the real one."""
    directory = tmp_path / "counting-bin"
    directory.mkdir()
    log = tmp_path / "buildah-runs.log"
    real = next(
        str(Path(d) / "buildah")
        for d in os.environ.get("PATH", "/usr/bin").split(os.pathsep)
        if (Path(d) / "buildah").is_file()
    )
    script = directory / "buildah"
    script.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    script.chmod(0o755)
    return {"PATH": f"{directory}:{os.environ.get('PATH', '/usr/bin:/bin')}"}, log


def runs(log: Path) -> int:
    """The builds buildah ran (``bud``; a ``--version`` question is not a build)."""
    lines = log.read_text().splitlines() if log.exists() else []
    return sum(1 for line in lines if " bud " in f" {line} ")


# -- ignore files ------------------------------------------------------------------------------

IGNORE_CASES = [
    # (ignore file name, its text, the files of the context besides busybox and Containerfile)
    (
        ".containerignore",
        "secret.env\n**/*.log\n!keep/important.log\n/build\n",
        ["app.py", "secret.env", "a.log", "d/e/b.log", "keep/important.log", "build/o", "x/build"],
    ),
    (".dockerignore", "node_modules\n*.tmp\n", ["node_modules/m/i.js", "a.tmp", "d/a.tmp", "ok"]),
    (".containerignore", "*\n!src\nsrc/*.md\n", ["a.txt", "src/x.py", "src/y.md", "src/d/z.md"]),
    (".containerignore", "**/cache\ntemp?\nx[0-9]\n", ["a/cache/c", "cache/d", "temp1", "x1"]),
]


@pytest.mark.parametrize(("name", "text", "files"), IGNORE_CASES)
def test_ignored_files_are_absent_and_the_fingerprint_agrees(cli, tmp_path, name, text, files):
    context = context_with(
        tmp_path / "ctx", "FROM scratch\nCOPY . /ctx\n", {f: f.encode() for f in files}
    )
    for file in files:
        assert (context / file).is_file()
    (context / name).write_text(text)
    build(cli, context, "ignored:v1", "-q")
    copied = {path.removeprefix("ctx/") for path in layer_files(cli.store, "ignored:v1")}
    rules = ignore.for_context(context)
    assert rules.source == name
    for file in files:
        # what buildah left out is what the fingerprint leaves out, and no more
        assert (file in copied) == (not rules.excluded(file)), (file, sorted(copied))
    assert "secret.env" not in copied


def test_containerignore_wins_over_dockerignore(cli, tmp_path):
    context = make_context(
        tmp_path / "ctx", "FROM scratch\nCOPY . /ctx\n", {"a.txt": b"a", "b.txt": b"b"}
    )
    (context / ".dockerignore").write_text("a.txt\n")
    (context / ".containerignore").write_text("b.txt\n")
    build(cli, context, "both:v1", "-q")
    copied = layer_files(cli.store, "both:v1")
    assert "ctx/a.txt" in copied and "ctx/b.txt" not in copied


# -- secrets -----------------------------------------------------------------------------------


def test_a_secret_is_readable_by_run_and_in_no_layer(cli, tmp_path):
    secret_value = b"s3cr3t-" + os.urandom(12).hex().encode()
    secret = tmp_path / "token.txt"
    secret.write_bytes(secret_value)
    containerfile = (
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        'RUN --mount=type=secret,id=token ["/bin/busybox", "sh", "-c",'
        ' "/bin/busybox wc -c < /run/secrets/token > /secret-length"]\n'
    )
    context = make_context(tmp_path / "ctx", containerfile)
    result = build(cli, context, "secret:v1", "--secret", f"id=token,src={secret}")
    assert secret_value.decode() not in result.stdout + result.stderr
    files = layer_files(cli.store, "secret:v1")
    assert files["secret-length"].strip() == str(len(secret_value)).encode()  # RUN read it
    for layer in layer_bytes(cli.store, "secret:v1"):
        assert secret_value not in layer
    store_bytes = b"".join(p.read_bytes() for p in cli.store.rglob("*") if p.is_file())
    assert secret_value not in store_bytes  # nor in the config, history or build records
    assert not any(secret_value in p.read_bytes() for p in cli.home.rglob("*") if p.is_file())


def test_a_missing_secret_file_is_a_usage_error(cli, tmp_path):
    context = make_context(tmp_path / "ctx", "FROM scratch\n")
    result = cli.run("build", "--context", str(context), "-t", "s:v1", "--secret", "id=a,src=nope")
    assert result.returncode == 2
    assert result.error_lines() == ["idpwrap: error: --secret a: nope is not a readable file"], (
        result.stderr
    )


# -- the other options -------------------------------------------------------------------------

MULTI_STAGE = """\
ARG GREETING=hello
FROM scratch AS tools
COPY busybox /bin/busybox
FROM tools AS final
ARG GREETING
ARG TARGET_NAME
ENV GREETING=$GREETING TARGET_NAME=$TARGET_NAME
COPY --from=tools /bin/busybox /bin/sh-copy
"""


def test_target_labels_build_args_and_platform(cli, tmp_path):
    context = make_context(tmp_path / "ctx", MULTI_STAGE)
    arg_file = tmp_path / "args.env"
    arg_file.write_text("# build arguments\nGREETING=from-file\nTARGET_NAME=file\n")
    build(
        cli, context, "opts:v1", "-q",
        "--build-arg-file", str(arg_file), "--build-arg", "TARGET_NAME=flag",
        "--label", "org.example.team=core", "--label", "org.example.empty=",
        "--platform", "linux/arm64",
    )  # fmt: skip
    config = image_config(cli.store, "opts:v1")
    assert config["architecture"] == "arm64" and config["os"] == "linux"
    labels = config["config"]["Labels"]
    assert labels["org.example.team"] == "core" and labels["org.example.empty"] == ""
    env = config["config"]["Env"]
    assert "GREETING=from-file" in env and "TARGET_NAME=flag" in env
    assert "bin/sh-copy" in layer_files(cli.store, "opts:v1")

    result = build(
        cli, context, "tools:v1", "-t", "tools:latest", "-t", "kit:1", "--target", "tools"
    )
    tools = layer_files(cli.store, "tools:v1")
    assert "bin/busybox" in tools and "bin/sh-copy" not in tools
    digest = local_image(cli.store, "tools:v1").digest
    for tag in ("tools:v1", "tools:latest", "kit:1"):  # every tag lands, on one manifest
        assert local_image(cli.store, tag).digest == digest
        assert f"Image saved to local store: {tag}" in result.stdout


def test_bad_options_are_one_line_usage_errors(cli, tmp_path):
    context = make_context(tmp_path / "ctx", "FROM scratch\n")
    for options, message in (
        (["--platform", "arm64"], "--platform 'arm64': expected OS/ARCH[/VARIANT]"),
        (["--platform", "linux/amd64,"], "an empty platform"),
        (["--label", "nolabel"], "--label 'nolabel': expected KEY=VALUE"),
        (["--pull", "sometimes"], "invalid choice"),
        (["--build-arg-file", str(tmp_path / "none")], "--build-arg-file"),
    ):
        result = cli.run("build", "--context", str(context), "-t", "x:v1", *options)
        assert result.returncode == 2, result.describe()
        (line,) = result.error_lines()
        assert message in line
        assert "Traceback" not in result.stderr


def test_pull_never_builds_on_a_stored_base_and_fails_fast_on_an_unknown_one(cli, tmp_path):
    base = make_context(tmp_path / "base", "FROM scratch\nCOPY busybox /bin/busybox\n")
    build(cli, base, "base:v1", "-q")
    app = make_context(tmp_path / "app", "FROM base:v1\nCOPY app.txt /app.txt\n", {"app.txt": b"a"})
    build(cli, app, "app:v1", "-q", "--pull", "never")
    assert "bin/busybox" in layer_files(cli.store, "app:v1")
    (app / "Containerfile").write_text("FROM registry.invalid/nothing:v1\n")
    result = cli.run("build", "--context", str(app), "-t", "app:v2", "--pull", "never")
    assert result.returncode == 1
    (line,) = result.error_lines()
    assert "registry.invalid/nothing:v1" in line and "image not known" in line
    assert result.seconds < 30


# -- the layer cache and unchanged builds ------------------------------------------------------

THREE_STEPS = """\
FROM scratch
COPY busybox /bin/busybox
COPY payload.bin /data/payload.bin
COPY version.txt /version.txt
"""


def test_unchanged_rebuild_is_recognised_and_a_changed_last_step_rebuilds_only_it(
    cli, tmp_path, counting_buildah
):
    path, log = counting_buildah
    payload = random.Random(64).randbytes(64 * MiB)
    context = make_context(
        tmp_path / "ctx", THREE_STEPS, {"payload.bin": payload, "version.txt": b"v1\n"}
    )
    first = build(cli, context, "cached:v1", env=path)
    assert runs(log) == 1
    digest = local_image(cli.store, "cached:v1").digest

    # unchanged: recognised before buildah runs; the new tag names the same manifest
    os.utime(context / "payload.bin")  # a new modification time is not a change
    again = build(cli, context, "cached:v1-again", env=path)
    assert runs(log) == 1, "buildah ran for an unchanged build"
    assert "nothing changed since the build of" in again.stderr
    assert local_image(cli.store, "cached:v1-again").digest == digest
    assert f"Digest: {digest}" in again.stdout

    # a change in the last step: buildah runs, and the steps before it come from its cache
    (context / "version.txt").write_text("v2\n")
    changed = build(cli, context, "cached:v2", env=path)
    assert runs(log) == 2
    steps = changed.stderr.split("STEP ")[1:]
    assert [("Using cache" in step) for step in steps] == [False, True, True, False], steps
    assert local_image(cli.store, "cached:v2").digest != digest
    assert (
        local_image(cli.store, "cached:v2").layers[:2]
        == local_image(cli.store, "cached:v1").layers[:2]
    )
    assert "Using cache" not in first.stderr.split("STEP 3/4")[1]


def test_what_makes_buildah_run_again(cli, tmp_path, counting_buildah):
    path, log = counting_buildah
    context = make_context(tmp_path / "ctx", "FROM scratch\nCOPY . /ctx\n", {"a.txt": b"a"})
    (context / ".containerignore").write_text("*.log\n")
    build(cli, context, "r:v1", "-q", env=path)
    (context / "debug.log").write_text("ignored: no new build")
    build(cli, context, "r:v1", "-q", env=path)
    assert runs(log) == 1
    build(cli, context, "r:v1", "-q", "--label", "a=b", env=path)
    assert runs(log) == 2
    build(cli, context, "r:v1", "-q", "--label", "a=b", "--no-cache", env=path)
    assert runs(log) == 3
    (context / "a.txt").write_text("changed")
    build(cli, context, "r:v2", "-q", env=path)
    assert runs(log) == 4
    # a record whose image is gone is ignored
    assert cli.run("rmi", "r:v2").returncode == 0
    build(cli, context, "r:v2", "-q", env=path)
    assert runs(log) == 5
    records = json.loads((cli.store / ".idpwrap.builds.json").read_text())["builds"]
    assert local_image(cli.store, "r:v2").digest in {r["digest"] for r in records.values()}


def test_a_base_that_is_not_pinned_always_goes_through_buildah(cli, tmp_path, counting_buildah):
    path, log = counting_buildah
    base = make_context(tmp_path / "base", "FROM scratch\nCOPY busybox /bin/busybox\n")
    build(cli, base, "base:v1", "-q", env=path)
    app = make_context(tmp_path / "app", "FROM base:v1\nCOPY a /a\n", {"a": b"a"})
    build(cli, app, "app:v1", "-q", env=path)
    build(cli, app, "app:v1", "-q", env=path)
    assert runs(log) == 2  # the stored base pins it
    (base / "busybox").write_bytes(BUSYBOX.read_bytes() + b"\0")
    build(cli, base, "base:v1", "-q", env=path)  # the base moves: the app builds anew
    build(cli, app, "app:v1", "-q", env=path)
    assert runs(log) == 4
    (app / "Containerfile").write_text("FROM localhost/unpinned:v1\nCOPY a /a\n")
    cli.run("build", "--context", str(app), "-t", "app:v2", "--pull", "never", env=path)
    cli.run("build", "--context", str(app), "-t", "app:v2", "--pull", "never", env=path)
    assert runs(log) == 6


def test_prune_build_cache_empties_buildahs_storage(cli, tmp_path):
    context = make_context(tmp_path / "ctx", "FROM scratch\nCOPY busybox /bin/busybox\nCOPY a /a\n")
    (context / "a").write_text("1")
    build(cli, context, "p:v1", "-q")
    (context / "a").write_text("2")
    warm = build(cli, context, "p:v2")
    assert "Using cache" in warm.stderr
    result = cli.run("prune", "--build-cache")
    assert result.returncode == 0, result.describe()
    storage = cli.home / ".local" / "share" / "idpwrap" / "buildah"
    assert f"Emptied buildah's layer cache {storage}: freed " in result.stdout
    # said before it happens, with what it holds and that every store of the user shares it
    assert f"idpwrap: emptying buildah's layer cache {storage} (" in result.stderr
    assert "every store of this user share" in result.stderr
    assert "one per user" in " ".join(cli.run("prune", "--help").stdout.split())
    (context / "a").write_text("3")
    cold = build(cli, context, "p:v3")
    assert "Using cache" not in cold.stderr
    assert local_image(cli.store, "p:v1").digest  # the store keeps its images


# -- resource limits ---------------------------------------------------------------------------


def test_run_steps_get_the_hard_limits_where_buildahs_are_too_high(cli, tmp_path):
    # As root below 1048576 without CAP_SYS_RESOURCE (containers, CI runners; here nofile
    # 20000) buildah 1.39 fails every RUN step unless idpwrap passes the hard limits; buildah
    # 1.28 lowers the limits itself and gets nothing.
    from idpwrap.tools import limits

    containerfile = (
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "sh", "-c", "ulimit -Hn > /nofile; ulimit -Hu > /nproc"]\n'
    )
    context = make_context(tmp_path / "ctx", containerfile)
    result = build(cli, context, "limits:v1", "--debug")
    files = layer_files(cli.store, "limits:v1")
    passed = limits.buildah_ulimits("buildah")
    for name, hard in limits.low_hard_limits().items():
        if passed:
            assert f"--ulimit {name}={hard}:{hard}" in result.stderr
            assert files[name].strip() == str(hard).encode()
    if not passed:
        assert "--ulimit" not in result.stderr


def test_kept_file_digests_see_a_one_file_change_and_an_unchanged_context(
    cli, tmp_path, counting_buildah
):
    """Many files, their digests kept in the store between builds: an unchanged context is
    recognised, one changed file (same size, modification time set back) rebuilds, and so does
    another file changed next; each image has the new bytes."""
    path, log = counting_buildah
    files = {f"src/d{n // 50}/f{n % 50}.txt": f"file {n:04d}\n".encode() for n in range(300)}
    context = context_with(tmp_path / "ctx", "FROM scratch\nCOPY src /src\n", files)
    old = 1_600_000_000
    for name in files:
        os.utime(context / name, (old, old))  # older than the racy window: digests are kept
    build(cli, context, "many:v1", "-q", env=path)
    assert runs(log) == 1
    assert list((cli.store / ".idpwrap.hashes").iterdir())
    build(cli, context, "many:v1", "-q", env=path)
    assert runs(log) == 1, "buildah ran for an unchanged context"
    for number, name in enumerate(("src/d1/f7.txt", "src/d4/f2.txt"), start=2):
        (context / name).write_bytes(b"CHANGED!!\n")  # the same size as before
        os.utime(context / name, (old, old))
        build(cli, context, f"many:v{number}", "-q", env=path)
        assert runs(log) == number, f"buildah did not run after {name} changed"
        assert layer_files(cli.store, f"many:v{number}")[name] == b"CHANGED!!\n"
    build(cli, context, "many:v3", "-q", env=path)
    assert runs(log) == 3
