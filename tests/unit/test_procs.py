"""procs.py: running a real tiny command, streamed, under a pty, with a clean environment."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from idpwrap.creds.sources import Credentials, temporary_auth_file
from idpwrap.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Interrupted, ToolMissing
from idpwrap.tools import procs
from idpwrap.tools.procs import child_environment, run_streaming

SECRETS = ("GITEA_TOKEN", "GITEA_PASSWORD", "REGISTRY_PASSWORD")


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def run(script: str, **kwargs) -> tuple[str, object]:
    chunks: list[str] = []
    finished = run_streaming(sh(script), chunks.append, env=child_environment(), **kwargs)
    return "".join(chunks), finished


def test_output_is_streamed_and_stderr_collected():
    output, finished = run("printf 'one\\n'; printf 'two\\n'; printf 'oops' >&2; exit 3")
    assert output == "one\ntwo\n"
    assert finished.exit_code == 3
    assert finished.stderr == "oops"


def test_output_arrives_while_the_child_runs():
    arrivals: list[tuple[float, str]] = []
    finished = run_streaming(
        sh("printf 'first\\n'; sleep 0.3; printf 'last\\n'"),
        lambda text: arrivals.append((time.monotonic(), text)),
        env=child_environment(),
    )
    assert finished.exit_code == 0
    assert "".join(text for _, text in arrivals) == "first\nlast\n"
    assert arrivals[0][1] == "first\n"
    assert arrivals[-1][0] - arrivals[0][0] >= 0.2  # not all at the end


def test_merge_stderr():
    output, finished = run("printf 'out\\n'; printf 'err\\n' >&2", merge_stderr=True)
    assert output == "out\nerr\n"
    assert finished.stderr == ""


def test_utf8_split_across_reads_is_decoded():
    output, _ = run("printf 'caf\\303'; sleep 0.05; printf '\\251 \\342\\200\\246\\n'")
    assert output == "café …\n"


def test_terminal_size_gives_a_tty_of_that_size():
    output, finished = run("[ -t 1 ] && echo tty; stty size <&1", terminal_size=(37, 161))
    assert finished.exit_code == 0
    assert output.split() == ["tty", "37", "161"]
    assert "\r\n" in output  # a pty's line discipline


def test_without_terminal_size_stdout_is_not_a_tty():
    output, _ = run("[ -t 1 ] && echo tty || echo pipe")
    assert output == "pipe\n"


def test_child_environment_drops_secrets(monkeypatch):
    for name in SECRETS:
        monkeypatch.setenv(name, f"value-of-{name}")
    monkeypatch.setenv("GITEA_USERNAME", "giteaAdmin")
    monkeypatch.setenv("HOME", "/home/someone")
    env = child_environment({"TERM": "xterm"})
    for name in SECRETS:
        assert name not in env
    assert "GITEA_USERNAME" not in env
    assert env["HOME"] == "/home/someone"
    assert env["TERM"] == "xterm"
    assert env["PATH"] == os.environ["PATH"]


def test_child_environment_default_path(monkeypatch):
    monkeypatch.delenv("PATH")
    assert "/usr/bin" in child_environment()["PATH"].split(":")


def test_the_child_sees_no_secret(monkeypatch):
    for name in SECRETS:
        monkeypatch.setenv(name, f"value-of-{name}")
    output, _ = run("env", terminal_size=(24, 200))
    assert "value-of-" not in output
    assert "PATH=" in output


def test_the_auth_file_reaches_the_child_through_dev_fd():
    credentials = Credentials("giteaAdmin", "tok", "test")
    with temporary_auth_file("gitea.example:8443", credentials) as fd:
        output, finished = run(f"cat /dev/fd/{fd}", pass_fds=(fd,))
    assert finished.exit_code == 0
    assert output.startswith('{"auths": {"gitea.example:8443"')


def test_other_descriptors_are_not_inherited():
    with temporary_auth_file("gitea.example:8443", None) as fd:
        output, _ = run(f"cat /dev/fd/{fd} 2>/dev/null || echo closed")
    assert output == "closed\n"


def test_a_missing_binary_is_tool_missing():
    with pytest.raises(ToolMissing) as caught:
        run_streaming(["idpwrap-no-such-tool"], lambda text: None, env=child_environment())
    assert "idpwrap-no-such-tool is not installed" in str(caught.value)
    assert caught.value.exit_code == 7


def test_a_missing_binary_on_the_child_path(tmp_path):
    env = {"PATH": str(tmp_path)}
    with pytest.raises(ToolMissing):
        run_streaming(["sh", "-c", "true"], lambda text: None, env=env)


@pytest.mark.parametrize(
    ("name", "code"), [("SIGINT", EXIT_INTERRUPTED), ("SIGTERM", EXIT_TERMINATED)]
)
def test_a_signal_is_forwarded_and_reported(name, code):
    # The child signals us once it runs; we pass the signal on to it, it dies, and we report
    # it. (Sent at once, the signal can arrive before run_streaming knows the child's pid: see
    # test_a_signal_while_the_child_starts_is_forwarded.)
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    started = time.monotonic()
    with pytest.raises(Interrupted) as caught:
        run(f"sleep 0.1; kill -{name[3:]} $PPID; exec sleep 5")
    assert time.monotonic() - started < 4  # the child was stopped, not waited for
    assert caught.value.exit_code == code
    assert name in str(caught.value)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_signal_while_the_child_starts_is_forwarded(monkeypatch):
    monkeypatch.setattr(procs, "GRACE_SECONDS", 0.6)  # keeps the test short when it fails
    sent = []

    def signal_once_exec_is_confirmed(frame, event, arg):
        # The child has started: posix_spawn returned (or, without setpriv, the exec-status
        # pipe's os.read), and its pid is not yet known to the signal forwarder.
        if event == "c_return" and arg in (os.read, os.posix_spawn) and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)

    started = time.monotonic()
    sys.setprofile(signal_once_exec_is_confirmed)
    try:
        with pytest.raises(Interrupted):
            run_streaming(sh("exec sleep 5"), lambda text: None, env=child_environment())
    finally:
        sys.setprofile(None)
    assert sent
    assert time.monotonic() - started < 0.4
