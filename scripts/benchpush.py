"""The push cases of scripts/bench: idpwrap push against raw skopeo, podman and curl."""

from __future__ import annotations

import base64
import shutil
import statistics
import subprocess
import time
import urllib.request

from benchlib import (
    IDPWRAP,
    MIB,
    VENV_BIN,
    Bench,
    Figure,
    alternate,
    random_context,
    shared_library_context,
    timed,
)


def startup(bench: Bench) -> Figure:
    python = str(VENV_BIN / "python3")
    ours, theirs = alternate(
        max(bench.runs, 5) * 4,
        lambda: timed([IDPWRAP, "--version"]),
        lambda: timed([python, "-c", "pass"]),
    )
    return Figure("`idpwrap --version` / `python3 -c pass`", ours, theirs, "<= 1.5")


def push_overhead(bench: Bench) -> Figure:
    context = shared_library_context(bench.work / "libs-context", bench.payload)
    manifest = bench.build(context, "bench:v1")
    compressed = sum(layer["size"] for layer in manifest["layers"])
    bench.facts["push image"] = (
        f"{bench.payload / 1e6:.0f} MB of shared libraries, {compressed / 1e6:.1f} MB compressed"
    )

    mine, raw = fresh_pushes(bench, "bench:v1", "giteaadmin/bench")
    bench.raw["skopeo copy"] = raw
    return Figure(
        "`idpwrap push` / raw `skopeo copy` of the same stored image, fresh registry storage",
        mine, raw, "<= 1.05",
    )  # fmt: skip


def fresh_pushes(bench: Bench, image: str, repository: str) -> tuple[list[float], list[float]]:
    """``idpwrap push`` and raw ``skopeo copy`` of ``image``, alternating, each to empty
    registry storage: (idpwrap's times, skopeo's)."""

    def ours() -> float:
        bench.fresh_registry()
        return bench.idpwrap_push(image, repository)

    def theirs() -> float:
        bench.fresh_registry()
        return bench.skopeo_push(image, repository)

    return alternate(bench.runs, ours, theirs)


def podman_push(bench: Bench) -> Figure | None:
    if shutil.which("podman") is None:
        return None
    quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    # Pushed by the name given here: choosing "the image with bench or none in its line" from
    # `podman images` picked whatever dangling image tests had left in root's storage.
    name = "localhost/idpwrap-bench:v1"
    pulled = subprocess.run(
        ["podman", "pull", "-q", f"oci:{bench.store}:bench:v1"],
        capture_output=True, text=True, check=True,
    ).stdout.split()[-1]  # fmt: skip
    subprocess.run(["podman", "tag", pulled, name], **quiet)

    def ours() -> float:
        bench.fresh_registry()
        return bench.idpwrap_push("bench:v1", "giteaadmin/bench")

    def theirs() -> float:
        bench.fresh_registry()
        return timed(
            ["podman", "push", "--authfile", str(bench.authfile), "--cert-dir", str(bench.certs),
             name, f"docker://{bench.registry.host}/giteaadmin/bench:v1"],
        )  # fmt: skip

    try:
        mine, raw = alternate(bench.runs, ours, theirs)
    finally:
        subprocess.run(
            ["podman", "rmi", "-f", pulled],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return Figure(
        "`idpwrap push` / `podman push` of the same image from containers-storage",
        mine, raw, "<= 0.3",
        notes=["podman compresses the layers on the way out; idpwrap's are stored compressed"],
    )  # fmt: skip


def repush(bench: Bench) -> list[Figure]:
    sizes = [30 * MIB, 20 * MIB, 10 * MIB] if bench.runs > 1 else [3 * MIB, 2 * MIB, 1 * MIB]
    bench.build(random_context(bench.work / "repush-context", sizes), "repush:v1")
    again: list[float] = []
    first: list[float] = []
    lookup: list[float] = []
    for _ in range(bench.runs):
        bench.fresh_registry()
        first.append(bench.idpwrap_push("repush:v1", "giteaadmin/repush"))
        again.append(bench.idpwrap_push("repush:v1", "giteaadmin/repush"))
        lookup.append(tag_lookup(bench, "giteaadmin/repush", "v1"))
    name = f"re-push of an image the registry has / first push ({sum(sizes) // MIB} MiB image)"
    return [
        Figure(
            name, again, first, "<= 0.10",
            notes=["the re-push asks the registry what the tag serves (one HEAD after the"
                   " registry's challenge) and starts no skopeo; the first push pays that HEAD"
                   " and the read-back after its copy"],
        ),
        Figure(
            "floor: `python3 -c` with the push path's imports and one tag lookup (interpreter,"
            " imports, TLS, the challenge and one HEAD) / first push", lookup, first,
            "the re-push ratio's floor",
        ),
    ]  # fmt: skip


# The interpreter, the push path's imports and the up-to-date check's one lookup, as a push
# makes them (registry/manifests.py): what a push costs besides skopeo's copy, whatever else
# idpwrap does, and all of what a re-push costs.
LOOKUP = """
import os, sys
import idpwrap.cli, idpwrap.commands.push, idpwrap.push.pushing
from idpwrap.creds.credentials import Credentials
from idpwrap.refs import Registry
from idpwrap.registry import manifests
from idpwrap.tls import TlsTrust
host, repository, tag, certs = sys.argv[1:5]
secret = Credentials("giteaAdmin", os.environ["GITEA_TOKEN"], "environment")
found = manifests.tag_digest(Registry(host), repository, tag, secret, TlsTrust(cert_dir=certs))
sys.exit(0 if found.state != manifests.FAILED else 1)
"""


def tag_lookup(bench: Bench, repository: str, tag: str) -> float:
    python = str(VENV_BIN / "python3")
    return timed(
        [python, "-c", LOOKUP, bench.registry.host, repository, tag, str(bench.certs)],
        env=bench.push_env,
    )


def four_layer_push(bench: Bench) -> Figure:
    """The re-push image (busybox and three incompressible layers): skopeo copies each layer
    as its own blob, and newer skopeo may schedule them differently from 1.9's."""
    layers = len(bench.manifest("repush:v1")["layers"])

    mine, raw = fresh_pushes(bench, "repush:v1", "giteaadmin/four")
    return Figure(
        f"`idpwrap push` / raw `skopeo copy` of a {layers}-layer image, fresh registry storage",
        mine, raw, "<= 1.05",
    )  # fmt: skip


def throughput(bench: Bench) -> Figure:
    """Bytes per second of a push against a plain curl upload of the same blob."""
    manifest = bench.manifest("repush:v1")
    layer = max(manifest["layers"], key=lambda item: item["size"])
    digest, size = layer["digest"], layer["size"]
    blob = bench.store / "blobs/sha256" / digest.split(":")[1]
    total = sum(item["size"] for item in manifest["layers"]) + manifest["config"]["size"]
    credentials = f'user = "giteaAdmin:{bench.password}"\n'

    def curl_upload() -> float:
        bench.fresh_registry()
        url = f"{bench.registry.url}/v2/giteaadmin/curl/blobs/uploads/"
        request = urllib.request.Request(url, method="POST")
        request.add_header(
            "Authorization",
            "Basic " + base64.b64encode(f"giteaAdmin:{bench.password}".encode()).decode(),
        )
        import ssl

        context = ssl.create_default_context(cafile=str(bench.certs / "ca.crt"))
        with urllib.request.urlopen(request, context=context) as response:
            location = response.headers["Location"]
        if location.startswith("/"):
            location = bench.registry.url + location
        separator = "&" if "?" in location else "?"
        start = time.perf_counter()
        subprocess.run(
            ["curl", "-sS", "-f", "-K", "-", "--cacert", str(bench.certs / "ca.crt"), "-X", "PUT",
             "-H", "Content-Type: application/octet-stream", "--data-binary", f"@{blob}",
             f"{location}{separator}digest={digest}"],
            input=credentials.encode(), check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        return size / (time.perf_counter() - start)

    def ours() -> float:
        bench.fresh_registry()
        return total / bench.idpwrap_push("repush:v1", "giteaadmin/rate")

    mine, raw = alternate(bench.runs, ours, curl_upload)
    return Figure(
        "push throughput: `idpwrap push` bytes/s / `curl --data-binary` upload of its largest"
        " layer", mine, raw, "loopback limit; higher is better", unit="MB/s",
    )  # fmt: skip


def push_floor(bench: Bench) -> list[Figure] | None:
    """What no push can avoid before skopeo starts: the interpreter and the push path's
    imports, against raw skopeo's copy measured by push_overhead. ``idpwrap push`` / raw
    ``skopeo copy`` cannot fall below 1 + this ratio, whatever idpwrap does after its imports."""
    raw = bench.raw.get("skopeo copy")
    if raw is None:
        return None
    python = str(VENV_BIN / "python3")
    imports = "import idpwrap.cli, idpwrap.commands.push, idpwrap.push.pushing"
    mine = [timed([python, "-c", imports]) for _ in range(max(bench.runs, 5) * 2)]
    bare = [timed([python, "-c", "pass"]) for _ in range(max(bench.runs, 5) * 2)]
    # The push before the copy also asks what the tag serves (the up-to-date check): a fresh
    # registry each time, as the push figure's copies had.
    looked: list[float] = []
    for _ in range(max(bench.runs, 5)):
        bench.fresh_registry()
        looked.append(tag_lookup(bench, "giteaadmin/bench", "v1"))
    return [
        Figure(
            "floor: `python3 -c 'import idpwrap.commands.push ...'` (interpreter and the push"
            " path's imports) / raw `skopeo copy` of the push image", mine, raw,
            "the push ratio's floor is 1 + this",
            notes=[f"`python3 -c pass` alone: {statistics.median(bare) * 1000:.1f} ms"],
        ),
        Figure(
            "floor with the up-to-date check: the same and one tag lookup (TLS, the challenge,"
            " one HEAD) / raw `skopeo copy` of the push image", looked, raw,
            "the push ratio's floor is 1 + this (the check on, as by default)",
        ),
    ]  # fmt: skip
