"""What every throwaway server of the tests needs, below the registries that use it: a free
loopback port, a helper server as its own process (config on stdin), and stopping a pid.

Standard library only: scripts/localregistry.py runs before the package is installed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

# The directory holding the ``testing`` package: a helper started with ``python -m`` finds it
# there whatever the caller's working directory.
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def helper_argv(module: str) -> list[str]:
    """``python -m MODULE`` with this interpreter: a helper server's command line."""
    return [sys.executable, "-m", module]


def helper_environment() -> dict[str, str]:
    """The caller's environment with ``testing`` importable, for ``python -m testing.…``."""
    env = dict(os.environ)
    paths = [str(PACKAGE_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def serve_loopback(handler: type, config: dict) -> None:
    """A helper server's main loop on 127.0.0.1:``config["port"]`` (TLS when ``config`` names a
    certificate); says "ready" on stdout for ``spawn_helper`` and stops on SIGTERM."""
    import http.server

    server = http.server.ThreadingHTTPServer(("127.0.0.1", config["port"]), handler)
    server.daemon_threads = True
    if config.get("tls_cert"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(config["tls_cert"], config["tls_key"])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    server.serve_forever()


def spawn_helper(argv: list[str], config: dict, log: Path, what: str) -> int:
    """A helper server as its own process (``argv``); its config, secrets included, reaches it
    on stdin, never on its command line or in a file. Returns its pid once it is ready."""
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            env=helper_environment(),
            start_new_session=True,
        )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(config).encode() + b"\n")
    process.stdin.close()
    ready = process.stdout.readline()
    process.stdout.close()
    if ready.strip() != b"ready":
        stop_pid(process.pid)
        raise RuntimeError(f"{what} did not start: {log.read_text()[-2000:]}")
    return process.pid


def pid_alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
