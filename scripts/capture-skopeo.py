#!/usr/bin/env python3
"""Captures what this machine's skopeo prints under a pseudo-terminal during a push, for the
progress parser's tests (tests/data/skopeo-VERSION-copy-{fresh,again}.json).

    .venv/bin/python scripts/capture-skopeo.py [OUT_DIR]       (default: tests/data)

Builds a 4-layer image (static busybox, then incompressible 6, 3 and 1 MiB payloads) with
idpwrap into a scratch store, starts a throwaway registry (testing.registry.distribution), and
runs ``skopeo copy oci:... docker://...`` twice under a 50x160 pty, through a relay that
lets uploads pass at 4 MiB/s (on bare loopback skopeo 1.18 is done before its first redraw):
to empty storage ("fresh": every blob uploaded) and again ("again": every layer skipped).
Each chunk read
from the pty is kept with its time in seconds since skopeo started. Inside the Debian 13
environment: ``scripts/env trixie .venv/bin/python scripts/capture-skopeo.py``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import random
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

# The repository root holds the ``testing`` package (throwaway registry, relay), which is not
# installed (the wheel has idpwrap only); run as a file, Python puts only scripts/ on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from testing.registry import distribution
from testing.relay import ThrottledRelay

ROOT = Path(__file__).resolve().parent.parent
RATE = 4 << 20  # uploads through a relay at 4 MiB/s: skopeo redraws its bars many times
ROWS, COLUMNS = 50, 160
PAYLOADS = (("a.bin", 6, 61), ("b.bin", 3, 31), ("c.bin", 1, 11))  # name, MiB, seed
CONTAINERFILE = (
    "FROM scratch\nCOPY busybox /bin/busybox\nCOPY a.bin /data/a.bin\n"
    "COPY b.bin /data/b.bin\nCOPY c.bin /data/c.bin\n"
)


def build_image(work: Path) -> tuple[Path, dict]:
    context = work / "context"
    context.mkdir()
    shutil.copy2(shutil.which("busybox") or "/bin/busybox", context / "busybox")
    (context / "Containerfile").write_text(CONTAINERFILE)
    for name, mib, seed in PAYLOADS:
        (context / name).write_bytes(random.Random(seed).randbytes(mib << 20))
    store = work / "store"
    env = {**os.environ, "IDPWRAP_STORE": str(store), "HOME": str(work / "home")}
    subprocess.run([str(ROOT / ".venv/bin/idpwrap"), "build", "-q", "--context", str(context),
                    "-t", "capture:v1"], check=True, env=env)  # fmt: skip
    index = json.loads((store / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    return store, json.loads((store / "blobs" / "sha256" / digest).read_bytes())


def run_on_pty(argv: list[str]) -> tuple[int, list[list]]:
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    started = time.monotonic()
    child = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower,
                             close_fds=True, start_new_session=True)  # fmt: skip
    os.close(follower)
    chunks: list[list] = []
    while True:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if not ready:
            if child.poll() is not None:
                break
            continue
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the pty
            break
        if not data:
            break
        chunks.append([round(time.monotonic() - started, 3), data.decode(errors="replace")])
    os.close(leader)
    return child.wait(), chunks


def main() -> int:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "data"
    version_text = subprocess.run(["skopeo", "--version"], capture_output=True, text=True).stdout
    version = re.search(r"version (\S+)", version_text).group(1)
    with tempfile.TemporaryDirectory(prefix="capture-skopeo-") as scratch:
        work = Path(scratch)
        store, manifest = build_image(work)
        registry = distribution.start(work / "registry", "giteaAdmin")
        relay = ThrottledRelay(registry.port, RATE)
        try:
            certs = work / "certs"
            certs.mkdir()
            shutil.copy2(registry.ca_file, certs / "ca.crt")
            auth = work / "auth.json"
            secret = base64.b64encode(f"{registry.username}:{registry.password}".encode())
            auth.write_text(json.dumps({"auths": {relay.host: {"auth": secret.decode()}}}))
            auth.chmod(0o600)
            argv = ["skopeo", "copy", "--authfile", str(auth), "--dest-cert-dir", str(certs),
                    f"oci:{store}:capture:v1",
                    f"docker://{relay.host}/giteaadmin/capture:v1"]  # fmt: skip
            for name, what in (
                ("fresh", "first push of a 4-layer image to empty registry storage"),
                ("again", "second push of the same image: every layer skipped"),
            ):
                code, chunks = run_on_pty(argv)
                if code != 0:
                    print("".join(text for _, text in chunks), file=sys.stderr)
                    return 1
                capture = {
                    "description": f"skopeo {version} copy oci: -> docker:// under a"
                    f" {ROWS}x{COLUMNS} pty, {what}; chunks are [seconds, text] as read"
                    " from the pty",
                    "manifest": manifest,
                    "chunks": chunks,
                }
                path = out_dir / f"skopeo-{version}-copy-{name}.json"
                path.write_text(json.dumps(capture, indent=1) + "\n")
                print(path)
        finally:
            relay.close()
            registry.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
