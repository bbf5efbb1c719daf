"""Push for production (issue 4): a registry restarted mid-push, several tags, the result
options, TLS options and destination forms, all against the real docker-registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from testing.cli import Cli, check_progress_events, json_events
from testing.images import MiB
from testing.processes import StreamWatcher, Watchdog
from testing.registry import distribution
from testing.registry.running import USERNAME, RunningRegistry, start_registry

pytestmark = pytest.mark.integration


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("idpwrap: error:")]
    assert len(errors) == 1, stderr[-2000:]
    return errors[0]


def restart(registry: RunningRegistry) -> RunningRegistry:
    """The same port, storage, certificate and password: what a registry restart looks like."""
    registry.stop()
    info = distribution.start(
        registry.directory, USERNAME, registry.password, port=registry.port,
        storage=registry.directory / "storage",
    )  # fmt: skip
    (registry.directory / "registry.json").unlink(missing_ok=True)
    return RunningRegistry(info, Watchdog(info.pid), registry.started)


def push_and_restart_registry(cli: Cli, registry: RunningRegistry, relay, layer: str, retry: str):
    """Push three:v1 through a slow relay; kill the registry while ``layer`` is uploading, start
    it again at once; return (exit code, stdout, stderr, the registry now running)."""
    process = cli.popen(
        "push", "--registry", f"https://{relay.host}", *registry.tls_options(),
        "--retry", retry, "--progress", "json", "three:v1", "giteaadmin/restarted:v1",
        credentials=registry.credentials,
    )  # fmt: skip
    stderr = StreamWatcher(process.stderr)
    running = registry
    try:
        uploading = stderr.wait_for_line(
            lambda line: layer in line and '"event":"progress"' in line and '"done":0,' not in line,
            30,
        )
        assert uploading is not None, stderr.text(0)
        running = restart(registry)  # its death cuts the open connections through the relay
        relay.unthrottle()  # the retry need not be slow
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, process.stdout.read(), stderr.text(5), running


def test_registry_restarted_mid_layer_push_completes_with_retries(
    prebuilt, prebuilt_cli: Cli, tmp_path_factory, relay_to
) -> None:
    image = prebuilt.three
    big_layer = max(image.layers, key=lambda item: item[1])[0]
    registry = start_registry(tmp_path_factory.mktemp("restarted-registry"))
    try:
        relay = relay_to(registry, 4 * MiB)
        code, stdout, stderr, registry = push_and_restart_registry(
            prebuilt_cli, registry, relay, big_layer, "3"
        )
        assert code == 0, stderr[-3000:]
        assert f"Pushed {relay.host}/giteaadmin/restarted:v1@{image.digest}" in stdout
        check_progress_events(json_events(stderr), image.blobs)  # counts never fell
        assert registry.client().manifest_digest("giteaadmin/restarted", "v1") == image.digest
    finally:
        registry.stop()


def test_registry_restarted_mid_push_without_retries_fails_and_keeps_the_store(
    prebuilt, prebuilt_copy: Cli, tmp_path_factory, relay_to
) -> None:
    big_layer = max(prebuilt.three.layers, key=lambda item: item[1])[0]
    index_before = (prebuilt_copy.store / "index.json").read_bytes()
    registry = start_registry(tmp_path_factory.mktemp("restarted-registry"))
    try:
        relay = relay_to(registry, 4 * MiB)
        code, stdout, stderr, registry = push_and_restart_registry(
            prebuilt_copy, registry, relay, big_layer, "0"
        )
        assert code == 5, stderr[-3000:]
        assert relay.host in one_error_line(stderr)
        assert "Pushed" not in stdout
        assert (prebuilt_copy.store / "index.json").read_bytes() == index_before
        assert '"percent":100' not in stderr
    finally:
        registry.stop()


def test_all_tags_pushes_every_tag_uploading_blobs_once(
    prebuilt, prebuilt_copy: Cli, fresh_registry
) -> None:
    for tag in ("three:v2", "three:v3"):
        tagged = prebuilt_copy.run("tag", "three:v1", tag)
        assert tagged.returncode == 0, tagged.describe()
    result = prebuilt_copy.run(
        "push", "--registry", fresh_registry.url, *fresh_registry.tls_options(), "--all-tags",
        "--progress", "json", "--json", "three", credentials=fresh_registry.credentials,
    )  # fmt: skip
    assert result.returncode == 0, result.describe()
    pushed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [item["reference"].rsplit(":", 1)[1] for item in pushed] == ["v1", "v2", "v3"]
    assert {item["digest"] for item in pushed} == {prebuilt.three.digest}
    client = fresh_registry.client()
    assert sorted(client.tags("giteaadmin/three")) == ["v1", "v2", "v3"]
    # One event stream per tag, each opened by "start": after the first, every layer is skipped.
    streams: list[list[dict]] = []
    for event in json_events(result.stderr):
        if event["event"] == "start":
            streams.append([])
        streams[-1].append(event)
    assert len(streams) == 3
    layers = {digest for digest, _ in prebuilt.three.layers}
    for stream in streams[1:]:
        done = {e["blob"]: e["skipped"] for e in stream if e["event"] == "blob_done"}
        assert all(done[digest] for digest in layers), done


def test_digestfile_and_json_result(prebuilt, prebuilt_cli: Cli, registry, tmp_path) -> None:
    digestfile = tmp_path / "digest"
    result = prebuilt_cli.run(
        "push", "--registry", registry.url, *registry.tls_options(), "--json",
        "--digestfile", str(digestfile), "hello:v1", "giteaadmin/result:v1",
        credentials=registry.credentials,
    )  # fmt: skip
    assert result.returncode == 0, result.describe()
    printed = json.loads(result.stdout)
    assert printed == {
        "reference": f"{registry.host}/giteaadmin/result:v1",
        "digest": prebuilt.hello.digest,
        "size": sum(prebuilt.hello.blobs.values()),
        "up_to_date": False,
        "tag_digest": prebuilt.hello.digest,  # read back from the registry after the copy
    }
    assert digestfile.read_text().strip() == prebuilt.hello.digest


@pytest.mark.parametrize("trust", ["--cert-dir", "--tls-verify=false", "--insecure"])
def test_tls_trust_options(prebuilt, prebuilt_cli: Cli, registry, tmp_path, trust) -> None:
    options = [trust]
    if trust == "--cert-dir":
        cert_dir = tmp_path / "certs"
        cert_dir.mkdir()
        shutil.copy(registry.ca_file, cert_dir / "ca.crt")
        options.append(str(cert_dir))
    result = prebuilt_cli.run(
        "push", "--registry", registry.url, *options, "hello:v1", "giteaadmin/trust:v1",
        credentials=registry.credentials,
    )  # fmt: skip
    assert result.returncode == 0, result.describe()
    if trust != "--cert-dir":
        assert "TLS verification is off" in result.stderr


def test_untrusted_tls_names_the_host_and_the_flags(prebuilt_cli: Cli, registry) -> None:
    result = prebuilt_cli.run(
        "push", "--registry", registry.url, "hello:v1", credentials=registry.credentials
    )
    assert result.returncode == 6
    line = one_error_line(result.stderr)
    assert registry.host in line and "--ca-file" in line and "--insecure" in line


@pytest.mark.parametrize(
    ("registry_form", "source", "destination", "expected"),
    [
        # --registry with a trailing slash, the owner from SOURCE, lowercased with a notice
        ("{url}/", "giteaAdmin/hello:v1", None, "giteaadmin/hello:v1"),
        # without a scheme: https
        ("{host}", "hello:v1", None, "giteaadmin/hello:v1"),
        # an explicit DEST overrides the Gitea mapping
        ("{url}", "hello:v1", "team/app:v9", "team/app:v9"),
        # a full HOST/owner/name:tag DEST, no --registry
        (None, "hello:v1", "{host}/other/app:v2", "other/app:v2"),
        # a digest reference as SOURCE
        ("{url}", "hello@{digest}", "giteaadmin/bydigest:v1", "giteaadmin/bydigest:v1"),
    ],
)
def test_destination_forms(
    prebuilt, prebuilt_cli: Cli, registry, registry_form, source, destination, expected
) -> None:
    values = {"url": registry.url, "host": registry.host, "digest": prebuilt.hello.digest}
    args = ["push", *registry.tls_options()]
    if registry_form:
        args += ["--registry", registry_form.format(**values)]
    args.append(source.format(**values))
    if destination:
        args.append(destination.format(**values))
    result = prebuilt_cli.run(*args, credentials=registry.credentials)
    assert result.returncode == 0, result.describe()
    # Pushed, or up to date: an earlier case may have pushed the same image to the same tag.
    assert f" {registry.host}/{expected}@{prebuilt.hello.digest}" in result.stdout
    repository, tag = expected.rsplit(":", 1)
    assert registry.client().manifest_digest(repository, tag) == prebuilt.hello.digest
    if source.startswith("giteaAdmin/"):
        assert "lowercased to 'giteaadmin'" in result.stderr


@pytest.mark.parametrize(
    "arguments",
    [
        ["push", "--password", "s3cr3t-value", "hello:v1"],
        ["push", "hello:v1", "-p", "s3cr3t-value"],
        ["push", "--passw", "s3cr3t-value", "hello:v1"],  # no prefix of --password-stdin either
        ["login", "127.0.0.1:1", "--password", "s3cr3t-value"],
    ],
)
def test_password_is_never_accepted_as_an_argument_nor_echoed(prebuilt_cli: Cli, arguments):
    result = prebuilt_cli.run(*arguments)
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "s3cr3t-value" not in result.stderr + result.stdout
    assert "--password-stdin" in line or "unrecognized arguments: --passw" in line


def test_store_is_read_only_to_a_push(prebuilt, prebuilt_cli: Cli, registry) -> None:
    store: Path = prebuilt.store
    before = sorted((path.name, path.stat().st_size) for path in store.rglob("*") if path.is_file())
    result = prebuilt_cli.run(
        "push", "--registry", registry.url, *registry.tls_options(), "three:v1",
        "giteaadmin/readonly:v1", credentials=registry.credentials,
    )  # fmt: skip
    assert result.returncode == 0, result.describe()
    after = sorted((path.name, path.stat().st_size) for path in store.rglob("*") if path.is_file())
    assert before == after
