"""Running tools: finding a program, short runs that collect their output (``run``), and
buildah and skopeo tied to our life, with an explicit environment, output streamed.

Streamed children get ``PR_SET_PDEATHSIG`` so a ``kill -9`` of idpwrap does not leave them
running as orphans, and SIGINT/SIGTERM/SIGHUP received by idpwrap are forwarded to them; once
the child has ended, what is left of its tree (a RUN step's process, re-parented to us as the
subreaper: idpwrap/lifetime.py) is stopped before we report the interruption.

Streaming is ``os.fork``/``os.execvpe`` and a ``select`` loop rather than ``sh`` or
``subprocess``: importing ``sh`` costs about 80 ms here (it pulls in asyncio) and ``subprocess``
about 15 ms, while everything a push may add to the ``skopeo copy`` it runs is about 30 ms. A
short run, which a push does not make, imports ``subprocess`` when it happens.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import struct
import termios
import time
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from idpwrap import lifetime, log
from idpwrap.errors import ToolMissing, ToolNotRun

PR_SET_PDEATHSIG = 1
# util-linux's setpriv sets the parent-death signal and execs the tool in about 1 ms; asking
# for it through ctypes costs the child about 6 ms of imports before it can exec.
SETPRIV = "/usr/bin/setpriv"
# What a child may inherit from us; everything else (GITEA_TOKEN, REGISTRY_PASSWORD, ...) stays.
PASSED_ENVIRONMENT = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
    "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR",
    "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF",
    "BUILDAH_ISOLATION", "STORAGE_DRIVER", "STORAGE_OPTS",
)  # fmt: skip
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GRACE_SECONDS = 5.0
READ_SIZE = 65536


class Finished(namedtuple("Finished", "exit_code stderr")):
    """How a child ended: its exit code (negative: killed by that signal) and its stderr."""

    __slots__ = ()
    exit_code: int
    stderr: str


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {key: os.environ[key] for key in PASSED_ENVIRONMENT if key in os.environ}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(extra or {})
    return env


class _Forwarder:
    """While a child runs, SIGINT/SIGTERM/SIGHUP go on to it and are remembered for the
    caller."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.received: int | None = None

    def __call__(self, signum: int, frame: object) -> None:
        self.received = signum
        if self.pid is not None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    @contextmanager
    def installed(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self) for sig in lifetime.TERMINATING}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def raise_if_received(self) -> None:
        if self.received is not None:
            raise lifetime.interruption(self.received)


def _exec_child(
    argv: Sequence[str],
    env: Mapping[str, str],
    stdout: int,
    stderr: int,
    pass_fds: Sequence[int],
    report: int,
    cwd: str | None = None,
) -> None:
    """In the forked child: die with the parent, wire up descriptors, exec. Never returns."""
    try:
        if cwd is not None:
            os.chdir(cwd)
        if os.access(SETPRIV, os.X_OK):
            argv = [SETPRIV, "--pdeathsig", "KILL", "--", *argv]
        else:
            import ctypes

            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        for fd in pass_fds:
            os.set_inheritable(fd, True)
        os.execve(argv[0], list(argv), dict(env))
    except OSError as error:
        os.write(report, str(error.errno).encode())
    finally:
        os._exit(127)


def find_program(name: str, path: str | None = None) -> str | None:
    """The executable ``name`` (a bare name looked up on ``path``, a PATH value, by default the
    one a child gets; or a path to it), or None."""
    if not path:
        path = os.environ.get("PATH") or DEFAULT_PATH
    if os.sep in name:
        candidates = [name]
    else:
        candidates = [os.path.join(directory or ".", name) for directory in path.split(os.pathsep)]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_program(name: str, path: str | None = None) -> str:
    """As ``find_program``, but a missing program is ToolMissing (exit code 7)."""
    found = find_program(name, path)
    if found is None:
        raise ToolMissing.named(os.path.basename(name))
    return found


class Completed(namedtuple("Completed", "exit_code stdout stderr")):
    """A short run's exit code and its output, decoded."""

    __slots__ = ()
    exit_code: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    cwd: str | None = None,
    pass_fds: Sequence[int] = (),
    what: str | None = None,
) -> Completed:
    """Run a short tool to its end and collect its output: a credential helper, git, a
    version probe, a key tool. Not for buildah's builds or skopeo's copies: those stream
    (``run_streaming``).

    One policy for all of them: the environment is explicit (``child_environment()`` unless
    ``env`` is given: a credential helper gets its session, minus our secrets); stdin is
    ``stdin`` (a credential helper reads the registry's name there) or nothing, never the
    terminal; a program that cannot start, or outlives ``timeout`` seconds (it is killed),
    raises ToolNotRun, named ``what`` (default: the program's name), whose ``timed_out`` and
    ``reason`` let the caller say it in its own words. A non-zero exit is the caller's to read.
    """
    import subprocess

    name = what or os.path.basename(argv[0])
    try:
        done = subprocess.run(
            list(argv), input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True, timeout=timeout, check=False, cwd=cwd, pass_fds=tuple(pass_fds),
            env=child_environment() if env is None else dict(env),
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise ToolNotRun(
            f"{name} did not finish within {timeout:g} s", timed_out=True, reason="timed out"
        ) from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise ToolNotRun(f"cannot run {name}: {reason}", timed_out=False, reason=reason) from None
    return Completed(
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


def _spawn(
    argv: Sequence[str],
    env: Mapping[str, str],
    stdout: int,
    stderr: int,
    pass_fds: Sequence[int],
    cwd: str | None = None,
) -> int:
    argv = [require_program(argv[0], env.get("PATH", DEFAULT_PATH)), *argv[1:]]
    lifetime.adopt_orphans()  # before the child exists: none of its orphans may escape us
    if cwd is None and os.access(SETPRIV, os.X_OK):
        return _spawn_with_setpriv(argv, env, stdout, stderr, pass_fds)
    report_read, report_write = os.pipe()  # both close-on-exec: an exec closes the report
    pid = os.fork()
    if pid == 0:
        os.close(report_read)
        _exec_child(argv, env, stdout, stderr, pass_fds, report_write, cwd)
    os.close(report_write)
    try:
        failure = os.read(report_read, 32)
    finally:
        os.close(report_read)
    if failure:
        os.waitpid(pid, 0)
        code = int(failure)
        if code in (errno.ENOENT, errno.ENOTDIR):
            raise ToolMissing.named(os.path.basename(argv[0]))
        raise OSError(code, f"cannot run {argv[0]}: {os.strerror(code)}")
    return pid


def _spawn_with_setpriv(
    argv: list[str], env: Mapping[str, str], stdout: int, stderr: int, pass_fds: Sequence[int]
) -> int:
    """posix_spawn (vfork and exec, no copy of our memory, no Python in the child): about
    1 ms against 2.5 ms for fork; setpriv sets the parent-death signal before it execs."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, stdout, 1),
        (os.POSIX_SPAWN_DUP2, stderr, 2),
    ]
    for fd in pass_fds:
        os.set_inheritable(fd, True)
    try:
        return os.posix_spawn(
            SETPRIV, [SETPRIV, "--pdeathsig", "KILL", "--", *argv], dict(env),
            file_actions=actions,
        )  # fmt: skip
    except OSError as error:
        raise OSError(error.errno, f"cannot run {argv[0]}: {error.strerror}") from error
    finally:
        for fd in pass_fds:
            os.set_inheritable(fd, False)


def run_streaming(
    argv: Sequence[str],
    on_output: Callable[[str], None],
    *,
    env: Mapping[str, str],
    terminal_size: tuple[int, int] | None = None,
    pass_fds: Sequence[int] = (),
    merge_stderr: bool = False,
    on_started: Callable[[], None] | None = None,
    cwd: str | None = None,
) -> Finished:
    """Run ``argv`` (in directory ``cwd``), handing its output to ``on_output`` as it comes;
    collect its stderr.

    With ``terminal_size`` (rows, columns) its stdout is a pseudo-terminal of that size: skopeo
    draws progress bars only on a terminal, and cuts them on a narrow one. ``on_started`` runs
    once the child is running, for work that can overlap with it.
    """
    if terminal_size:
        output_read, output_write = os.openpty()
        rows, columns = terminal_size
        fcntl.ioctl(output_write, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    else:
        output_read, output_write = os.pipe()
    if merge_stderr:
        error_read, error_write = None, output_write
    else:
        error_read, error_write = os.pipe()
    forwarder = _Forwarder()
    try:
        with forwarder.installed():
            try:
                pid = _spawn(argv, env, output_write, error_write, pass_fds, cwd)
            finally:
                os.close(output_write)
                if error_read is not None:
                    os.close(error_write)
            forwarder.pid = pid
            log.phase(f"{os.path.basename(argv[0])} started")
            if forwarder.received is not None:  # it came while the child was starting
                forwarder(forwarder.received, None)
            try:
                if on_started:
                    on_started()
                stderr = _pump(output_read, error_read, on_output, forwarder, pid)
            finally:
                exit_code = _reap(pid)
                log.phase(f"{os.path.basename(argv[0])} exited")
                if forwarder.received is not None:
                    lifetime.stop_descendants()  # what the child could not stop itself
                else:
                    lifetime.reap_adopted()
    finally:
        os.close(output_read)
        if error_read is not None:
            os.close(error_read)
    forwarder.raise_if_received()
    return Finished(exit_code, stderr)


def _pump(
    output: int,
    errors: int | None,
    on_output: Callable[[str], None],
    forwarder: _Forwarder,
    pid: int,
) -> str:
    import codecs

    decoders = {output: codecs.getincrementaldecoder("utf-8")("replace")}
    if errors is not None:
        decoders[errors] = codecs.getincrementaldecoder("utf-8")("replace")
    stderr_parts: list[str] = []
    deadline: float | None = None
    while decoders:
        if forwarder.received is not None:
            if deadline is None:
                deadline = time.monotonic() + GRACE_SECONDS
            elif time.monotonic() > deadline:
                _kill(pid)
                lifetime.kill_descendants()  # they may hold the output open
        ready, _, _ = select.select(list(decoders), [], [], 0.5)
        for fd in ready:
            try:
                data = os.read(fd, READ_SIZE)
            except OSError:  # EIO: every holder of the pty's other side has closed it
                data = b""
            text = decoders[fd].decode(data, final=not data)
            if fd == output:
                if text:
                    on_output(text)
            else:
                stderr_parts.append(text)
            if not data:
                del decoders[fd]
    return "".join(stderr_parts)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> int:
    """The child's exit code. Its output is closed, so it is exiting: wait for it, but kill it
    if it lingers past the grace period (it ignored a forwarded signal, say)."""
    waited, status = os.waitpid(pid, os.WNOHANG)
    deadline = time.monotonic() + GRACE_SECONDS
    while waited != pid:
        if time.monotonic() > deadline:
            _kill(pid)
            waited, status = os.waitpid(pid, 0)
            break
        time.sleep(0.001)
        waited, status = os.waitpid(pid, os.WNOHANG)
    return os.waitstatus_to_exitcode(status)
