"""What the integration tests share besides fixtures: running the CLI as a real process, reading
the store and the registry, scanning /proc, and a throttling TCP relay.

The relay is plain TCP (TLS passes through it untouched): it slows uploads down so that a test can
look at a push *while* skopeo runs, or interrupt it, without a 200 MB image.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import stat
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
VENV_BIN = ROOT / ".venv" / "bin"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REF_ANNOTATION = "org.opencontainers.image.ref.name"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MANIFEST_ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)
MiB = 1024 * 1024
BUSYBOX = Path(shutil.which("busybox") or "/usr/bin/busybox")


def idpwrap_command() -> list[str]:
    """How to start the CLI: ``$IDPWRAP_TEST_COMMAND`` (shell words) if set, else the venv's
    console script, else ``python -m idpwrap`` with this interpreter."""
    override = os.environ.get("IDPWRAP_TEST_COMMAND")
    if override:
        return shlex.split(override)
    script = VENV_BIN / "idpwrap"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "idpwrap"]


def python_module_command() -> list[str]:
    """The CLI by the absolute path of an interpreter: works with no PATH at all."""
    override = os.environ.get("IDPWRAP_TEST_COMMAND")
    if override:
        return shlex.split(override)
    python = VENV_BIN / "python"
    return [str(python if python.exists() else Path(sys.executable)), "-m", "idpwrap"]


def make_context(
    directory: Path, containerfile: str, files: dict[str, bytes] | None = None
) -> Path:
    """A build context with busybox (static) as ./busybox, since no base image can be pulled."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, directory / "busybox")
    (directory / "Containerfile").write_text(containerfile)
    for name, data in (files or {}).items():
        (directory / name).write_bytes(data)
    return directory


# -- running the CLI ---------------------------------------------------------------------------


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("idpwrap: error:")]

    def describe(self) -> str:
        """For assertion messages. Never call it on a run whose output may hold a secret."""
        return (
            f"argv={self.argv[1:]} exit={self.returncode} ({self.seconds:.1f}s)\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


@dataclass
class Cli:
    """The idpwrap command with a clean environment: a private store, HOME and TMPDIR.

    Nothing of the caller's environment leaks in but PATH (no GITEA_TOKEN from a developer's
    shell); credentials go in through ``credentials=`` as GITEA_USERNAME/GITEA_TOKEN, never argv.
    """

    store: Path
    home: Path
    tmpdir: Path
    cwd: Path
    command: list[str] = field(default_factory=idpwrap_command)

    def environment(
        self,
        credentials: tuple[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH") or DEFAULT_PATH,
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.tmpdir),
            "IDPWRAP_STORE": str(self.store),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            # buildah's state (idpwrap's --runroot) in the test's own place, not in /run
            "XDG_RUNTIME_DIR": str(self.runtime_dir()),
            # No desktop keyring here: a lookup must find nothing rather than hang or prompt.
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        }
        if credentials is not None:
            env["GITEA_USERNAME"], env["GITEA_TOKEN"] = credentials
        env.update(extra or {})
        return env

    def runtime_dir(self) -> Path:
        runtime = self.home / ".run"
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        return runtime

    def argv(self, args: Sequence[str], command: Sequence[str] | None = None) -> list[str]:
        return [*(command or self.command), *args]

    def run(
        self,
        *args: str,
        credentials: tuple[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        stdin: str | None = None,
        timeout: float = 120,
    ) -> Result:
        argv = self.argv(args, command)
        started = time.monotonic()
        completed = subprocess.run(
            argv,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=self.environment(credentials, env),
            cwd=self.cwd,
            timeout=timeout,
            check=False,
        )
        return Result(
            argv,
            completed.returncode,
            completed.stdout,
            completed.stderr,
            time.monotonic() - started,
        )

    def popen(
        self,
        *args: str,
        credentials: tuple[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.environment(credentials, env),
            cwd=self.cwd,
        )


class StreamWatcher:
    """Reads a child's stream in a thread, line by line, so the test can react to what it says
    (e.g. the first ``--progress json`` event) while the child runs."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.stream:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()

    def wait_for_line(self, predicate: Any, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines:
                    if predicate(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.thread.is_alive():
                    return None
                self.changed.wait(min(remaining, 0.1))

    def text(self, timeout: float = 10) -> str:
        self.thread.join(timeout)
        with self.changed:
            return "".join(self.lines)


def make_cli(base: Path, store: Path) -> Cli:
    for name in ("home", "tmp", "work"):
        (base / name).mkdir(parents=True, exist_ok=True)
    return Cli(store=store, home=base / "home", tmpdir=base / "tmp", cwd=base / "work")


def json_events(stderr: str) -> list[dict[str, Any]]:
    """The ``--progress json`` records among stderr's lines (notices are plain text)."""
    events = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def check_progress_events(events: list[dict], blobs: dict[str, int]) -> None:
    """What every successful ``--progress json`` push must show."""
    kinds = [event["event"] for event in events]
    assert kinds[0] == "start", kinds
    assert kinds.count("complete") == 1, kinds
    assert kinds.count("pushed") == 1, kinds
    assert kinds.index("complete") > max(
        index for index, kind in enumerate(kinds) if kind in ("progress", "blob_done")
    ), kinds
    start = events[0]
    assert start["total"] == sum(blobs.values())
    assert {blob["blob"]: blob["total"] for blob in start["blobs"]} == blobs

    percents = [(event["event"], event["percent"]) for event in events if "percent" in event]
    values = [percent for _, percent in percents]
    assert values == sorted(values), f"percent fell: {values}"
    assert percents[-1] == ("complete", 100), percents
    assert all(percent < 100 for _, percent in percents[:-1]), (
        f"100% before the manifest was written: {percents}"
    )
    complete = events[kinds.index("complete")]
    assert complete["done"] == complete["total"] == sum(blobs.values())


# -- the store ---------------------------------------------------------------------------------


def read_index(store: Path) -> dict[str, Any]:
    return json.loads((store / "index.json").read_text())


def tagged(store: Path, tag: str) -> list[dict[str, Any]]:
    """The index.json entries that carry ``tag``."""
    return [
        entry
        for entry in read_index(store)["manifests"]
        if entry.get("annotations", {}).get(REF_ANNOTATION) == tag
    ]


def tag_digest(store: Path, tag: str) -> str:
    entries = tagged(store, tag)
    assert len(entries) == 1, f"{tag} should be in {store}/index.json exactly once: {entries}"
    return str(entries[0]["digest"])


def blob_path(store: Path, digest: str) -> Path:
    algorithm, hex_digest = digest.split(":", 1)
    return store / "blobs" / algorithm / hex_digest


def read_blob_json(store: Path, digest: str) -> dict[str, Any]:
    return json.loads(blob_path(store, digest).read_bytes())


@dataclass(frozen=True)
class LocalImage:
    tag: str
    digest: str
    manifest: dict[str, Any]

    @property
    def layers(self) -> list[tuple[str, int]]:
        return [(str(layer["digest"]), int(layer["size"])) for layer in self.manifest["layers"]]

    @property
    def config(self) -> tuple[str, int]:
        return str(self.manifest["config"]["digest"]), int(self.manifest["config"]["size"])

    @property
    def blobs(self) -> dict[str, int]:
        """Layers and config, digest -> size: what a push uploads."""
        return dict([*self.layers, self.config])

    @property
    def all_digests(self) -> set[str]:
        return {self.digest, *self.blobs}


def local_image(store: Path, tag: str) -> LocalImage:
    digest = tag_digest(store, tag)
    return LocalImage(tag, digest, read_blob_json(store, digest))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def store_digests(store: Path) -> set[str]:
    return {f"sha256:{path.name}" for path in (store / "blobs" / "sha256").iterdir()}


# -- the registry over HTTP --------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


class RegistryClient:
    """Just enough of the distribution API to check what a push left in the registry."""

    def __init__(self, url: str, ca_file: str, username: str, password: str) -> None:
        self.url = url.rstrip("/")
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"} if username else {}

    def request(self, method: str, path: str, headers: Mapping[str, str] | None = None) -> Response:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={**self.headers, **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.context) as response:
                return Response(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, dict(error.headers), error.read())

    def tags(self, repository: str) -> list[str]:
        response = self.request("GET", f"/v2/{repository}/tags/list")
        assert response.status == 200, (response.status, response.body[:500])
        return list(json.loads(response.body).get("tags") or [])

    def manifest_digest(self, repository: str, reference: str) -> str:
        response = self.request(
            "HEAD", f"/v2/{repository}/manifests/{reference}", {"Accept": MANIFEST_ACCEPT}
        )
        assert response.status == 200, (response.status, dict(response.headers))
        return response.headers["Docker-Content-Digest"]

    def manifest(self, repository: str, reference: str) -> Response:
        return self.request(
            "GET", f"/v2/{repository}/manifests/{reference}", {"Accept": MANIFEST_ACCEPT}
        )

    def blob(self, repository: str, digest: str) -> Response:
        return self.request("GET", f"/v2/{repository}/blobs/{digest}")


# -- processes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    cmdline: bytes
    environ: bytes

    @property
    def argv(self) -> list[str]:
        return [part.decode(errors="replace") for part in self.cmdline.split(b"\0") if part]


def _read_proc(pid: str, name: str) -> bytes | None:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as handle:
            return handle.read()
    except OSError:  # gone meanwhile, or a kernel thread
        return None


def processes() -> Iterator[ProcessInfo]:
    """Every process visible now, with its command line and environment (root reads all)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        stat = _read_proc(pid, "stat")
        if stat is None:
            continue
        try:
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        except (ValueError, IndexError):
            continue
        cmdline = _read_proc(pid, "cmdline") or b""
        environ = _read_proc(pid, "environ") or b""
        yield ProcessInfo(int(pid), ppid, cmdline, environ)


def children_of(pid: int) -> list[ProcessInfo]:
    return [process for process in processes() if process.ppid == pid]


def descendants_of(pid: int) -> list[ProcessInfo]:
    everything = list(processes())
    found: list[ProcessInfo] = []
    parents = {pid}
    while True:
        more = [p for p in everything if p.ppid in parents and p not in found]
        if not more:
            return found
        found += more
        parents = {p.pid for p in more}


def pid_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    stat = _read_proc(str(pid), "stat")
    if stat is None:
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] != b"Z"


def wait_for(condition: Any, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def files_containing(
    needle: bytes, roots: Sequence[Path], since: float = 0.0, skip: Sequence[Path] = ()
) -> list[str]:
    """Regular files under ``roots`` whose bytes contain ``needle`` (symlinks not followed).

    Only files written or changed at or after ``since`` (a ``time.time()``) are read: a secret
    made at that moment cannot be in anything older, and /tmp may hold gigabytes of others'.
    Other filesystems mounted below a root are not entered (someone's chroot may have /proc
    mounted under /tmp; an overlay's merged view repeats files that are read where they lie).
    """
    found = []
    skipped = {str(path) for path in skip}
    overlap = len(needle) - 1

    def same_filesystem(path: str, device: int) -> bool:
        try:
            return os.lstat(path).st_dev == device
        except OSError:
            return False

    for root in roots:
        try:
            device = os.lstat(root).st_dev
        except OSError:
            continue
        for directory, dirs, files in os.walk(root, followlinks=False):
            dirs[:] = [
                name
                for name in dirs
                if os.path.join(directory, name) not in skipped
                and same_filesystem(os.path.join(directory, name), device)
            ]
            for name in files:
                path = os.path.join(directory, name)
                try:
                    status = os.lstat(path)
                    if not stat.S_ISREG(status.st_mode):
                        continue
                    if max(status.st_mtime, status.st_ctime) < since:
                        continue
                    with open(path, "rb") as handle:
                        tail = b""
                        for chunk in iter(lambda handle=handle: handle.read(1 << 20), b""):
                            if needle in tail + chunk:
                                found.append(path)
                                break
                            tail = chunk[-overlap:] if overlap else b""
                except OSError:
                    continue
    return found


# -- a throttling TCP relay --------------------------------------------------------------------


class ThrottledRelay:
    """127.0.0.1:port -> 127.0.0.1:target, uploads limited to ``rate`` bytes per second in all
    connections together; downloads pass at full speed. TLS goes through end to end (the
    registry's certificate names 127.0.0.1, whatever the port)."""

    CHUNK = 16 * 1024

    def __init__(self, target_port: int, rate: float) -> None:
        self.target_port = target_port
        self.rate = rate
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Small receive buffers (inherited by accepted sockets): the throttle, not the kernel,
        # decides how fast skopeo's bars move.
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(32)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.closing = threading.Event()
        self.paused = threading.Event()
        self.lock = threading.Lock()
        self.next_free = time.monotonic()
        self.sockets: list[socket.socket] = []
        self.connections: dict[socket.socket, socket.socket] = {}  # client -> upstream
        self.threads: list[threading.Thread] = []
        self.uploaded = 0
        self._start(self._accept)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            with self.lock:
                self.sockets += [client, upstream]
                self.connections[client] = upstream
            self._start(self._pump, client, upstream, True)
            self._start(self._pump, upstream, client, False)

    def _spend(self, count: int) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_free)
            self.next_free = start + count / self.rate
            self.uploaded += count
            delay = self.next_free - now
        if delay > 0:
            self.closing.wait(delay)

    def _pump(self, source: socket.socket, sink: socket.socket, throttled: bool) -> None:
        try:
            while not self.closing.is_set():
                while throttled and self.paused.is_set() and not self.closing.is_set():
                    time.sleep(0.01)
                data = source.recv(self.CHUNK)
                if not data:
                    break
                if throttled:
                    self._spend(len(data))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def cut_uploads(self, settle: float = 0.5) -> int:
        """Stop reading uploads for ``settle`` seconds so that a client sending a request body
        blocks in write, then cut (reset) every connection with unread upload data, as a
        registry restart would; keep the others and keep accepting. Returns how many were cut."""
        self.paused.set()
        try:
            time.sleep(settle)
            with self.lock:
                pending = []
                for client in list(self.connections):
                    try:
                        if client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                            pending.append(client)
                    except (BlockingIOError, OSError):
                        continue
                pairs = [(client, self.connections.pop(client)) for client in pending]
            for client, upstream in pairs:
                with contextlib.suppress(OSError):
                    # Reset, as the kernel of a crashed registry does for unread data.
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                with contextlib.suppress(OSError):
                    client.close()
                with contextlib.suppress(OSError):
                    upstream.shutdown(socket.SHUT_RDWR)  # wakes the pump reading it
                with contextlib.suppress(OSError):
                    upstream.close()
            return len(pairs)
        finally:
            self.paused.clear()

    def unthrottle(self) -> None:
        """From now on, pass uploads at full speed."""
        with self.lock:
            self.rate = float(1 << 40)
            self.next_free = time.monotonic()

    def close(self) -> None:
        self.closing.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        with self.lock:
            sockets = list(self.sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self.threads:
            thread.join(timeout=2)


# -- a watchdog so the registry cannot outlive pytest -----------------------------------------

WATCHDOG = """
import os, signal, sys, time
pid = int(sys.argv[1])
sys.stdin.buffer.read()  # EOF: pytest closed the pipe or died, however it ended
try:
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        time.sleep(0.05)
        os.kill(pid, 0)
    os.kill(pid, signal.SIGKILL)
except ProcessLookupError:
    pass
"""


class Watchdog:
    """A separate process holding the read end of a pipe whose write end only pytest has.

    When pytest ends, even by SIGKILL, the pipe reaches EOF and the watchdog stops ``pid``
    (docker-registry runs in its own session, so nothing else would)."""

    def __init__(self, pid: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(pid)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C on the terminal does not reach it
        )

    def release(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
