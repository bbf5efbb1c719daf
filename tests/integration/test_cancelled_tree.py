"""A cancelled build leaves nothing running: not buildah, not its RUN step, not a process the
step put in a session of its own (which buildah never stops), for SIGINT, SIGTERM and SIGHUP
to idpwrap alone, as an ordinary process and as PID 1 of a PID namespace; after SIGKILL,
buildah dies with idpwrap.

The step is seen running in /proc before the signal is sent; after idpwrap exits, /proc is
polled until no marked process is left, with a deadline that is only an upper bound.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from testing.cli import Cli
from testing.images import make_context, store_digests
from testing.processes import StreamWatcher, children_of, pid_running, processes, wait_for
from testing.storecheck import check_valid

pytestmark = pytest.mark.integration

SIGNALS = {"INT": (signal.SIGINT, 130), "TERM": (signal.SIGTERM, 143), "HUP": (signal.SIGHUP, 129)}
# The step starts a daemon in a session of its own, then sleeps itself; each shell's $0 is the
# marker, so the test can find them (and their sleeping children) in /proc.
CONTAINERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox setsid /bin/busybox sh -c '/bin/busybox sleep 600; :' {marker}-daemon & /bin/busybox sh -c '/bin/busybox sleep 600; :' {marker}-step"]
"""  # noqa: E501


def marked(marker: str) -> list[int]:
    """The shells of the step (argv ends with the marker), and every process below them."""
    everything = list(processes())
    found = [p.pid for p in everything if p.argv[-1:] and p.argv[-1].startswith(marker)]
    parents = set(found)
    while True:
        more = [p.pid for p in everything if p.ppid in parents and p.pid not in found]
        if not more:
            return [pid for pid in found if pid_running(pid)]
        found += more
        parents = set(more)


def both_started(marker: str) -> bool:
    shells = {p.argv[-1] for p in processes() if p.argv[:2] == ["/bin/busybox", "sh"]}
    return {f"{marker}-daemon", f"{marker}-step"} <= shells


def start_build(cli: Cli, tmp_path: Path, prefix: list[str] | None = None):
    marker = f"idpwrap-marker-{uuid.uuid4().hex[:12]}"
    context = make_context(tmp_path / "sleeping", CONTAINERFILE.format(marker=marker))
    argv = cli.argv(["build", "--context", str(context), "--tag", "sleepy:v1"])
    process = subprocess.Popen(
        [*(prefix or []), *argv],
        env=cli.environment(),
        cwd=cli.cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, StreamWatcher(process.stderr), marker


def stop(process: subprocess.Popen, stderr: StreamWatcher, marker: str, pid: int, signum: int):
    """Send ``signum`` to ``pid`` (idpwrap) once the step runs; idpwrap's exit code and stderr."""
    try:
        assert wait_for(lambda: both_started(marker), 120), (
            "the RUN step never started:\n" + stderr.text(0)
        )
        os.kill(pid, signum)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stderr.text()


def assert_nothing_left(marker: str) -> None:
    # Only an upper bound: the condition is checked at once and every 20 ms.
    assert wait_for(lambda: marked(marker) == [], 30), (
        f"still running: {[(pid, open(f'/proc/{pid}/cmdline', 'rb').read()) for pid in marked(marker)]}"  # noqa: E501
    )


@pytest.mark.parametrize("name", list(SIGNALS))
def test_a_cancelled_build_leaves_no_process(name: str, prebuilt_copy: Cli, tmp_path: Path) -> None:
    signum, code = SIGNALS[name]
    blobs = store_digests(prebuilt_copy.store)
    process, stderr, marker = start_build(prebuilt_copy, tmp_path)
    returncode, text = stop(process, stderr, marker, process.pid, signum)

    assert returncode == code, text[-2000:]
    assert f"interrupted by SIG{name}" in text, text[-2000:]
    assert "Traceback" not in text
    assert_nothing_left(marker)
    assert check_valid(prebuilt_copy.store) == sorted(["hello:v1", "three:v1"])
    assert store_digests(prebuilt_copy.store) == blobs
    assert list((prebuilt_copy.store / ".idpwrap.tmp").iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: unshare --pid")
@pytest.mark.parametrize("name", list(SIGNALS))
def test_as_pid_1_a_cancelled_build_leaves_no_process(
    name: str, prebuilt_copy: Cli, tmp_path: Path
) -> None:
    """As in idpwrap's own image: idpwrap is PID 1, signalled from outside its namespace."""
    signum, code = SIGNALS[name]
    prefix = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
    process, stderr, marker = start_build(prebuilt_copy, tmp_path, prefix)
    inner: list[int] = []

    def idpwrap_started() -> bool:
        inner[:] = [child.pid for child in children_of(process.pid)]
        return bool(inner)

    assert wait_for(idpwrap_started, 30), "unshare did not start idpwrap"
    status = Path(f"/proc/{inner[0]}/status").read_text()
    assert status.split("NSpid:")[1].splitlines()[0].split()[-1] == "1", "idpwrap is not PID 1"
    returncode, text = stop(process, stderr, marker, inner[0], signum)

    assert returncode == code, text[-2000:]
    assert f"interrupted by SIG{name}" in text, text[-2000:]
    assert_nothing_left(marker)
    assert check_valid(prebuilt_copy.store) == sorted(["hello:v1", "three:v1"])


def test_sigkill_of_idpwrap_takes_buildah_down(prebuilt_copy: Cli, tmp_path: Path) -> None:
    """Nothing catches SIGKILL: the parent-death signal stops buildah; what buildah would have
    stopped in turn (the step's children, its daemon) is beyond reach and is killed here."""
    process, stderr, marker = start_build(prebuilt_copy, tmp_path)
    try:
        assert wait_for(lambda: both_started(marker), 120), stderr.text(0)
        tools = [child.pid for child in children_of(process.pid)]
        assert tools, "buildah is not running under idpwrap"
        process.kill()
        process.wait(timeout=30)
        assert wait_for(lambda: not any(pid_running(pid) for pid in tools), 30), "buildah lives on"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in marked(marker):
            with_suppressed_lookup(os.kill, pid, signal.SIGKILL)
        stderr.text()


def with_suppressed_lookup(function, *args) -> None:
    try:
        function(*args)
    except ProcessLookupError:
        pass
