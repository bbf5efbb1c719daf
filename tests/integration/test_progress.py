"""Progress read from skopeo's bars must match the bytes that really move, blob by blob."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections import defaultdict

import pytest

from testing.cli import Cli, check_progress_events, json_events
from testing.images import THREE_LAYERS, MiB, blob_path, sha256_file

pytestmark = pytest.mark.integration

GZIP_MAGIC = b"\x1f\x8b"


def per_blob(events: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        if event["event"] in ("progress", "blob_done"):
            grouped[event["blob"]].append(event)
    return grouped


def test_three_layer_push_progress_then_all_layers_skipped(
    prebuilt, prebuilt_cli: Cli, fresh_registry, relay_to
) -> None:
    image = prebuilt.three
    # Through a relay at 4 MiB/s the 11 MiB upload takes about two seconds: long enough
    # for skopeo to redraw its bars many times, so there is real intermediate progress to see.
    relay = relay_to(fresh_registry, 4 * MiB)
    first = prebuilt_cli.run(
        "push",
        "--registry",
        f"https://{relay.host}",
        *fresh_registry.tls_options(),
        "--progress",
        "json",
        "three:v1",
        "giteaadmin/three:v1",
        credentials=fresh_registry.credentials,
    )
    assert first.returncode == 0, first.describe()
    assert relay.uploaded >= sum(image.blobs.values())
    events = json_events(first.stderr)
    check_progress_events(events, image.blobs)

    grouped = per_blob(events)
    assert set(grouped) == set(image.blobs), "every blob of the manifest shows up in the events"
    for digest, blob_events in grouped.items():
        total = image.blobs[digest]
        assert blob_events[-1]["event"] == "blob_done", (digest, blob_events[-1])
        assert [e["event"] for e in blob_events].count("blob_done") == 1, digest
        assert blob_events[-1]["total"] == total
        counts = [e["done"] for e in blob_events if e["event"] == "progress"]
        assert counts == sorted(counts), f"{digest}: done fell: {counts}"
        assert all(0 <= count <= total for count in counts), (digest, counts, total)
    for digest, _ in image.layers:
        assert grouped[digest][-1]["skipped"] is False, "a fresh registry has none of the layers"

    # Progress reflects the transfer: many distinct steps between 0 and 100, not a jump.
    intermediate = {e["percent"] for e in events if 0 < e.get("percent", 0) < 100}
    assert len(intermediate) >= 4, sorted(intermediate)
    big_layer = max(image.layers, key=lambda layer: layer[1])
    big_counts = [e["done"] for e in grouped[big_layer[0]] if e["event"] == "progress"]
    assert any(0 < count < big_layer[1] for count in big_counts), big_counts

    # The same image again, straight to the registry: every layer is already there. The tag
    # serves it too, so the copy is asked for: this looks at skopeo's skipped blobs.
    again = prebuilt_cli.run(
        "push",
        "--registry",
        fresh_registry.url,
        *fresh_registry.tls_options(),
        "--no-up-to-date-check",
        "--progress",
        "json",
        "three:v1",
        "giteaadmin/three:v1",
        credentials=fresh_registry.credentials,
    )
    assert again.returncode == 0, again.describe()
    events = json_events(again.stderr)
    check_progress_events(events, image.blobs)
    grouped = per_blob(events)
    for digest, _ in image.layers:
        assert grouped[digest][-1]["event"] == "blob_done"
        assert grouped[digest][-1]["skipped"] is True, (digest, grouped[digest])
    assert f"Pushed {fresh_registry.host}/giteaadmin/three:v1@{image.digest}" in again.stdout
    assert fresh_registry.client().manifest_digest("giteaadmin/three", "v1") == image.digest


def test_layers_are_stored_gzip_compressed_under_their_digests(prebuilt) -> None:
    image = prebuilt.three
    assert len(image.layers) == 4  # busybox + 6, 3 and 1 MiB
    for layer in image.manifest["layers"]:
        assert layer["mediaType"].endswith("+gzip"), layer["mediaType"]
        path = blob_path(prebuilt.store, layer["digest"])
        assert path.read_bytes()[:2] == GZIP_MAGIC, f"{layer['digest']} is not gzip data"
        assert path.stat().st_size == layer["size"]
    # Incompressible payloads: each compressed layer is a little over its payload's size. The
    # layers are told apart by what they hold, not by size (busybox differs between releases).
    payload_layers = {}
    for digest, size in image.layers:
        data = gzip.decompress(blob_path(prebuilt.store, digest).read_bytes())
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            names = [member.name for member in archive.getmembers() if member.isfile()]
        for name in names:
            payload_layers[name.removeprefix("./")] = size
    for name, mib, _ in THREE_LAYERS:
        size = payload_layers[f"data/{name}"]
        assert mib * MiB <= size <= mib * MiB + 64 * 1024, (name, size, mib)
    for path in (prebuilt.store / "blobs" / "sha256").iterdir():
        assert sha256_file(path) == f"sha256:{path.name}", f"{path} does not match its name"
