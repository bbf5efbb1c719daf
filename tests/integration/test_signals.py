"""Interrupting a push while skopeo uploads: the right exit code, no skopeo left, no scratch left.

A throttling relay between skopeo and the registry makes the 11 MiB push last about 20 s, so
the signal lands mid-upload every time, without a 200 MB image.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from testing.cli import Cli
from testing.filescan import files_containing
from testing.images import make_context, store_digests
from testing.processes import (
    StreamWatcher,
    children_of,
    descendants_of,
    pid_running,
    processes,
    wait_for,
)

pytestmark = pytest.mark.integration

SLOW_RATE = 512 * 1024  # bytes per second through the relay


def start_slow_push(cli: Cli, registry, relay, repository: str):
    process = cli.popen(
        "push",
        "--registry",
        f"https://{relay.host}",
        *registry.tls_options(),
        "--progress",
        "json",
        "three:v1",
        f"giteaadmin/{repository}:v1",
        credentials=registry.credentials,
    )
    return process, StreamWatcher(process.stderr)


def wait_until_uploading(process, stderr: StreamWatcher) -> list[int]:
    """Block until skopeo runs under ``process`` and has reported bytes sent; its pids."""
    line = stderr.wait_for_line(lambda text: '"event":"progress"' in text.replace(" ", ""), 30)
    assert line is not None, "no progress event within 30 s:\n" + stderr.text(0)
    skopeo = []

    def skopeo_running() -> bool:
        skopeo[:] = [
            child.pid
            for child in children_of(process.pid)
            if child.argv and Path(child.argv[0]).name == "skopeo"
        ]
        return bool(skopeo)

    assert wait_for(skopeo_running, 10), "skopeo is not running under idpwrap"
    assert process.poll() is None
    return skopeo


def processes_mentioning(text: str) -> list[int]:
    needle = text.encode()
    return [info.pid for info in processes() if needle in info.cmdline and pid_running(info.pid)]


@pytest.mark.parametrize(
    ("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"]
)
def test_signal_during_push_stops_skopeo_and_cleans_up(
    prebuilt_cli: Cli, registry, relay_to, signum: int, exit_code: int
) -> None:
    relay = relay_to(registry, SLOW_RATE)
    repository = f"signal-{signal.Signals(signum).name.lower()}"
    process, stderr = start_slow_push(prebuilt_cli, registry, relay, repository)
    try:
        skopeo = wait_until_uploading(process, stderr)
        scratch = list(prebuilt_cli.tmpdir.glob("idpwrap-*"))
        assert scratch, "the push's scratch directory should be in $TMPDIR while it runs"

        sent = time.monotonic()
        os.kill(process.pid, signum)
        process.wait(timeout=30)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    error_text = stderr.text()
    stdout = process.stdout.read() if process.stdout else ""

    assert process.returncode == exit_code, error_text[-2000:]
    assert took < 10, f"idpwrap took {took:.1f}s to stop after the signal"
    assert "Traceback" not in error_text
    assert "interrupted" in error_text.lower(), error_text[-2000:]
    assert "Pushed" not in stdout
    events = [line for line in error_text.splitlines() if '"event":"complete"' in line]
    assert events == [], "an interrupted push must not report completion"

    assert wait_for(lambda: not any(pid_running(pid) for pid in skopeo), 5), "skopeo still runs"
    assert processes_mentioning(relay.host) == [], "a process still talks to the registry"
    assert list(prebuilt_cli.tmpdir.glob("idpwrap-*")) == [], "scratch left in $TMPDIR"
    store_scratch = prebuilt_cli.store / ".idpwrap.tmp"
    assert not store_scratch.exists() or list(store_scratch.iterdir()) == []
    tags = registry.client().request("GET", f"/v2/giteaadmin/{repository}/tags/list")
    assert tags.status == 404 or b'"v1"' not in tags.body, "an interrupted push left a tag"


def test_sigkill_of_idpwrap_takes_skopeo_down_and_leaves_no_secret(
    prebuilt_cli: Cli, registry, relay_to
) -> None:
    relay = relay_to(registry, SLOW_RATE)
    process, stderr = start_slow_push(prebuilt_cli, registry, relay, "signal-kill")
    try:
        skopeo = wait_until_uploading(process, stderr)
        process.kill()
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr.text()

    # PR_SET_PDEATHSIG: skopeo dies with idpwrap instead of uploading on as an orphan.
    assert wait_for(lambda: not any(pid_running(pid) for pid in skopeo), 5), "skopeo orphaned"
    assert processes_mentioning(relay.host) == []
    # Whatever kill -9 left behind (it cannot clean up) holds no credentials.
    leftovers = [prebuilt_cli.tmpdir, prebuilt_cli.store, prebuilt_cli.home]
    found = files_containing(registry.password.encode(), leftovers)
    assert found == [], "files holding the password after kill -9"


SLEEPING_CONTAINERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sleep", "120"]
"""


def test_sigint_during_build_stops_buildah_and_leaves_the_store_as_it_was(
    prebuilt_copy: Cli, tmp_path: Path
) -> None:
    store = prebuilt_copy.store
    context = make_context(tmp_path / "sleeping", SLEEPING_CONTAINERFILE)
    index_before = (store / "index.json").read_bytes()
    blobs_before = store_digests(store)
    process = prebuilt_copy.popen("build", "--context", str(context), "--tag", "sleepy:v1")
    stderr = StreamWatcher(process.stderr)
    try:
        sleeping: list[int] = []

        def step_running() -> bool:
            sleeping[:] = [
                info.pid for info in descendants_of(process.pid) if b"sleep\0" in info.cmdline
            ]
            return bool(sleeping)

        assert wait_for(step_running, 60), "the RUN step never started:\n" + stderr.text(0)
        tools = [info.pid for info in descendants_of(process.pid)]
        os.kill(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    error_text = stderr.text()

    assert process.returncode == 130, error_text[-2000:]
    assert "Traceback" not in error_text
    assert wait_for(lambda: not any(pid_running(pid) for pid in tools), 10), (
        "buildah or its RUN step outlived idpwrap"
    )
    assert (store / "index.json").read_bytes() == index_before
    assert store_digests(store) == blobs_before
    assert list((store / ".idpwrap.tmp").iterdir()) == []
    assert list(prebuilt_copy.tmpdir.iterdir()) == []
