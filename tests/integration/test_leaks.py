"""The registry password must not show up in any process's argv or environment, nor on disk.

The push goes through a throttling relay so that it lasts about two seconds: time for many
sweeps of /proc while skopeo runs. The checks never print the password: a failing assertion
would copy it into the test log (under /tmp), which is the kind of leak this looks for.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testing.cli import Cli
from testing.filescan import files_containing
from testing.images import MiB
from testing.processes import StreamWatcher, processes

pytestmark = pytest.mark.integration


def test_push_leaks_the_password_into_no_process_and_no_file(
    prebuilt, prebuilt_cli: Cli, registry, relay_to
) -> None:
    secret = registry.password.encode()
    relay = relay_to(registry, 6 * MiB)
    process = prebuilt_cli.popen(
        "push",
        "--registry",
        f"https://{relay.host}",
        *registry.tls_options(),
        "--progress",
        "json",
        "three:v1",
        "giteaadmin/leak-three:v1",
        credentials=registry.credentials,
    )
    stderr = StreamWatcher(process.stderr)
    sweeps = 0
    skopeo_seen: set[int] = set()
    control = False  # idpwrap's own environment holds GITEA_TOKEN: proves the scan can see it
    leaks: list[str] = []
    own_cmdline = b""
    try:
        while process.poll() is None:
            snapshot = list(processes())
            for info in snapshot:
                if info.pid == process.pid:
                    own_cmdline = info.cmdline or own_cmdline
            for info in snapshot:
                if info.ppid == process.pid and info.cmdline == own_cmdline:
                    # Forked, not yet exec'd: still idpwrap itself, the very same memory (and
                    # environ) as its parent, readable by the same users only.
                    continue
                where = [
                    name
                    for name, data in (("cmdline", info.cmdline), ("environ", info.environ))
                    if secret in data
                ]
                if info.pid == process.pid:
                    control = control or where == ["environ"]
                    if "cmdline" in where:
                        leaks.append(f"idpwrap (pid {info.pid}) has it in its cmdline")
                    continue
                if info.ppid == process.pid and Path(info.argv[0] if info.argv else "").name in (
                    "skopeo",
                    "buildah",
                ):
                    skopeo_seen.add(info.pid)
                if where:
                    name = Path(info.argv[0]).name if info.argv else "?"
                    leaks.append(f"{name} (pid {info.pid}, parent {info.ppid}) in {where}")
            sweeps += 1
            time.sleep(0.005)  # leave the CPU to skopeo and the relay between sweeps
        stdout = process.stdout.read() if process.stdout else ""
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    error_text = stderr.text()

    assert process.returncode == 0, "the push failed: " + (
        "(output withheld: it holds the password)"
        if secret.decode() in error_text
        else error_text[-2000:]
    )
    assert skopeo_seen, f"skopeo was never seen running in {sweeps} sweeps of /proc"
    assert control, "idpwrap's own environ should hold GITEA_TOKEN: the scan did not work"
    assert leaks == []
    in_output = secret.decode() in stdout or secret.decode() in error_text
    assert not in_output, "the password is in idpwrap's output"
    assert "Pushed " in stdout

    # Nothing on disk: not in /tmp (the store, our TMPDIR and HOME are all under it), nor where
    # containers tools keep auth files; anything written since the password was made is read.
    roots = [Path("/tmp"), Path("/var/tmp"), prebuilt_cli.store, prebuilt_cli.home]
    roots += [
        path
        for path in (
            Path("/run/containers"),
            Path.home() / ".docker",
            Path.home() / ".config" / "containers",
        )
        if path.exists()
    ]
    found = files_containing(secret, roots, since=registry.started)
    assert found == [], "files holding the password"
