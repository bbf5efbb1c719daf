"""Running buildah and skopeo: tied to our life, with an explicit environment, output streamed.

Children get ``PR_SET_PDEATHSIG`` so a ``kill -9`` of idpwrap does not leave them running as
orphans, and SIGINT/SIGTERM received by idpwrap are forwarded to them before we report the
interruption.

The standard library does the pseudo-terminal work here rather than ``sh``: importing ``sh``
costs about 80 ms (it pulls in asyncio), more than the whole time budget a push may add to
the ``skopeo copy`` it runs.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

from idpwrap.errors import EXIT_TERMINATED, Interrupted, ToolMissing

PR_SET_PDEATHSIG = 1
# What a child may inherit from us; everything else (GITEA_TOKEN, REGISTRY_PASSWORD, ...) stays.
PASSED_ENVIRONMENT = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CONTAINERS_CONF",
    "CONTAINERS_STORAGE_CONF",
    "CONTAINERS_REGISTRIES_CONF",
    "BUILDAH_ISOLATION",
    "STORAGE_DRIVER",
    "STORAGE_OPTS",
)
GRACE_SECONDS = 5.0


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {key: os.environ[key] for key in PASSED_ENVIRONMENT if key in os.environ}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env.update(extra or {})
    return env


def _die_with_parent() -> None:
    # Runs in the child between fork and exec.
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass
class Finished:
    exit_code: int
    stderr: str


class _Forwarder:
    """While a child runs, SIGINT/SIGTERM go on to it and are remembered for the caller."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.received: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def raise_if_received(self) -> None:
        if self.received == signal.SIGTERM:
            raise Interrupted("SIGTERM", EXIT_TERMINATED)
        if self.received is not None:
            raise Interrupted("SIGINT")


def run_streaming(
    argv: Sequence[str],
    on_output: Callable[[str], None],
    *,
    env: Mapping[str, str],
    terminal_size: tuple[int, int] | None = None,
    pass_fds: Sequence[int] = (),
    merge_stderr: bool = False,
) -> Finished:
    """Run ``argv``, handing its output to ``on_output`` as it comes; collect its stderr.

    With ``terminal_size`` (rows, columns) its stdout is a pseudo-terminal of that size: skopeo
    draws progress bars only on a terminal, and cuts them on a narrow one.
    """
    forwarder = _Forwarder()
    master = slave = None
    if terminal_size:
        master, slave = os.openpty()
        rows, columns = terminal_size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    stdout: int = slave if slave is not None else subprocess.PIPE
    stderr: int = subprocess.STDOUT if merge_stderr else subprocess.PIPE
    with forwarder.installed():
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=dict(env),
                pass_fds=tuple(pass_fds),
                preexec_fn=_die_with_parent,
            )
        except FileNotFoundError as error:
            for fd in (master, slave):
                if fd is not None:
                    os.close(fd)
            raise ToolMissing.named(argv[0]) from error
        forwarder.process = process
        if slave is not None:
            os.close(slave)
        try:
            stderr_text = _pump(process, master, on_output, forwarder)
        finally:
            if master is not None:
                os.close(master)
            _reap(process)
    forwarder.raise_if_received()
    return Finished(process.returncode, stderr_text)


def _pump(
    process: subprocess.Popen[bytes],
    master: int | None,
    on_output: Callable[[str], None],
    forwarder: _Forwarder,
) -> str:
    output_fd = master if master is not None else process.stdout.fileno()  # type: ignore[union-attr]
    sources = {output_fd: codecs.getincrementaldecoder("utf-8")("replace")}
    if process.stderr is not None:
        sources[process.stderr.fileno()] = codecs.getincrementaldecoder("utf-8")("replace")
    stderr_chunks: list[str] = []
    deadline: float | None = None
    while sources:
        if forwarder.received is not None and deadline is None:
            deadline = time.monotonic() + GRACE_SECONDS
        if deadline is not None and time.monotonic() > deadline and process.poll() is None:
            process.kill()
        try:
            ready, _, _ = select.select(list(sources), [], [], 0.5)
        except InterruptedError:
            continue
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the pty's other side is closed
                data = b""
            decoder = sources[fd]
            text = decoder.decode(data, final=not data)
            if fd == output_fd:
                if text:
                    on_output(text)
            else:
                stderr_chunks.append(text)
            if not data:
                del sources[fd]
    return "".join(stderr_chunks)


def _reap(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
