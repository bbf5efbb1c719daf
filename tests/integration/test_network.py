"""The network failing under a push: connections cut mid-upload, as a registry restart does.

While the 6 MiB layer uploads, the relay stops reading, so that skopeo blocks writing the
blob, then resets the connections that have unread upload data (what the kernel of a crashed
registry does); it keeps accepting new ones, so the registry is reachable again at once.
"""

from __future__ import annotations

import pytest

from testing.cli import Cli, check_progress_events, json_events
from testing.images import MiB
from testing.processes import StreamWatcher

pytestmark = pytest.mark.integration


def push_and_cut(cli: Cli, registry, relay, big_layer: str, retry: str, repository: str):
    process = cli.popen(
        "push",
        "--registry",
        f"https://{relay.host}",
        *registry.tls_options(),
        "--retry",
        retry,
        "--progress",
        "json",
        "three:v1",
        f"giteaadmin/{repository}:v1",
        credentials=registry.credentials,
    )
    stderr = StreamWatcher(process.stderr)
    try:
        uploading = stderr.wait_for_line(
            lambda line: (
                big_layer in line and '"event":"progress"' in line and '"done":0,' not in line
            ),
            30,
        )
        assert uploading is not None, stderr.text(0)
        assert relay.cut_uploads() > 0, "no upload was under way to cut"
        relay.unthrottle()  # the retry need not be slow
        process.wait(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stdout = process.stdout.read() if process.stdout else ""
    return process.returncode, stdout, stderr.text()


def test_connections_cut_mid_push_are_retried(
    prebuilt, prebuilt_cli: Cli, registry, relay_to
) -> None:
    image = prebuilt.three
    big_layer = max(image.layers, key=lambda layer: layer[1])[0]
    relay = relay_to(registry, 4 * MiB)
    code, stdout, stderr = push_and_cut(
        prebuilt_cli, registry, relay, big_layer, "3", "cut-retried"
    )
    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    assert f"Pushed {relay.host}/giteaadmin/cut-retried:v1@{image.digest}" in stdout
    # Progress never fell, though the cut blob's bar started again from 0.
    check_progress_events(json_events(stderr), image.blobs)
    assert registry.client().manifest_digest("giteaadmin/cut-retried", "v1") == image.digest


def test_connections_cut_mid_push_without_retries_exit_5(
    prebuilt, prebuilt_cli: Cli, registry, relay_to
) -> None:
    big_layer = max(prebuilt.three.layers, key=lambda layer: layer[1])[0]
    relay = relay_to(registry, 4 * MiB)
    code, stdout, stderr = push_and_cut(
        prebuilt_cli, registry, relay, big_layer, "0", "cut-no-retry"
    )
    assert code == 5, stderr[-3000:]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("idpwrap: error:")]
    assert len(errors) == 1 and relay.host in errors[0], errors
    assert "Pushed" not in stdout
