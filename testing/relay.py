"""A throttling TCP relay on 127.0.0.1.

It is plain TCP (TLS passes through it untouched): it slows uploads down so that a test can look
at a push *while* skopeo runs, or interrupt it, without a 200 MB image.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from typing import Any


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
        self.to_hold = 0  # connections still to be held (accepted, never forwarded)
        self.held = 0
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
            with self.lock:
                hold = self.to_hold > 0
                if hold:
                    self.to_hold -= 1
                    self.held += 1
                    self.sockets.append(client)
            if hold:
                continue  # the client waits for an answer that never comes, till close()
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

    def hold_next(self, count: int) -> None:
        """Accept the next ``count`` connections and never forward them: their client waits
        (a TLS handshake, a request) until its own timeout; later connections pass."""
        with self.lock:
            self.to_hold += count

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
