"""Processes as the tests watch them: every process's command line and environment from /proc,
listening sockets, a child's output line by line, and a watchdog that outlives pytest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    cmdline: bytes
    environ: bytes

    @property
    def argv(self) -> list[str]:
        return [part.decode(errors="replace") for part in self.cmdline.split(b"\0") if part]


def is_the_root_itself(info: ProcessInfo, root: ProcessInfo | None) -> bool:
    """``info`` is the root process, or a child it forked that has not exec'd its program yet:
    same command line, a copy of the root's memory and environment (posix_spawn's or fork's
    child in the instant before exec). A sweep for secrets counts both as the root's own."""
    if root is None:
        return False
    return info.pid == root.pid or (info.ppid == root.pid and info.cmdline == root.cmdline)


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


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) with a socket listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            next(handle)
            for line in handle:
                fields = line.split()
                address, port_hex = fields[1].rsplit(":", 1)
                if int(port_hex, 16) == port and fields[3] == "0A":  # LISTEN
                    found.add(address)
    return found


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
