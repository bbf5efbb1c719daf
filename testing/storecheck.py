"""Checks of a store made with tools we did not write: skopeo reads every tag, every blob
matches its sha256, nothing is unreferenced or left over. Used by the tests/integration/
test_store_*.py files."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

REF_ANNOTATION = "org.opencontainers.image.ref.name"
MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}
KNOWN_ROOT = {"oci-layout", "index.json", "blobs", ".idpwrap.lock", ".idpwrap.gc.lock",
              ".idpwrap.tmp", ".idpwrap.builds.json", ".idpwrap.hashes"}  # fmt: skip


def _name(entry: dict[str, Any]) -> str | None:
    return (entry.get("annotations") or {}).get(REF_ANNOTATION)


def tags(store: Path) -> list[str]:
    """The tags of index.json (its untagged entries are provenance kept with an image)."""
    index = json.loads((store / "index.json").read_text())
    names = [(entry.get("annotations") or {}).get(REF_ANNOTATION) for entry in index["manifests"]]
    return sorted(name for name in names if name)


def provenance_subjects(store: Path) -> list[str]:
    """The subject digest of each untagged in-toto artifact entry of index.json."""
    index = json.loads((store / "index.json").read_text())
    subjects = []
    for entry in index["manifests"]:
        if entry.get("artifactType") == "application/vnd.in-toto+json":
            blob = store / "blobs" / "sha256" / entry["digest"].split(":", 1)[1]
            subjects.append(json.loads(blob.read_bytes())["subject"]["digest"])
    return subjects


def skopeo_manifest(reference: str) -> bytes:
    """``skopeo inspect --raw`` of any transport reference; raises with skopeo's message."""
    completed = subprocess.run(
        ["skopeo", "inspect", "--raw", reference], capture_output=True, timeout=60, check=False
    )
    assert completed.returncode == 0, f"skopeo inspect {reference}: {completed.stderr.decode()}"
    return completed.stdout


def skopeo_inspect(reference: str) -> dict[str, Any]:
    completed = subprocess.run(
        ["skopeo", "inspect", reference], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, f"skopeo inspect {reference}: {completed.stderr}"
    return json.loads(completed.stdout)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def reachable(store: Path) -> set[str]:
    """Hex digests of every blob a tag reaches (manifests, configs, layers, indexes)."""
    found: set[str] = set()
    pending = list(json.loads((store / "index.json").read_text())["manifests"])
    while pending:
        descriptor = pending.pop()
        hex_digest = descriptor["digest"].split(":", 1)[1]
        if hex_digest in found:
            continue
        found.add(hex_digest)
        if descriptor.get("mediaType") in MANIFEST_TYPES or "index" in descriptor.get(
            "mediaType", ""
        ):
            content = json.loads((store / "blobs" / "sha256" / hex_digest).read_bytes())
            pending += content.get("manifests", [])
            pending += content.get("layers", [])
            if "config" in content:
                pending.append(content["config"])
    return found


def check_valid(store: Path, every_blob: bool = True) -> list[str]:
    """The store is a valid OCI layout: index.json parses, skopeo reads every tag (the manifest
    it gets is the one the index names), every blob a tag reaches is there; with
    ``every_blob``, every file under blobs/sha256 matches its digest. Returns the tags."""
    names = tags(store)
    for name in names:
        index = json.loads((store / "index.json").read_text())
        (entry,) = [e for e in index["manifests"] if _name(e) == name]
        raw = skopeo_manifest(f"oci:{store}:{name}")
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == entry["digest"], name
    blob_dir = store / "blobs" / "sha256"
    present = {path.name for path in blob_dir.iterdir()}
    missing = reachable(store) - present
    assert not missing, f"blobs named but missing: {missing}"
    # a provenance is there only while a tag reaches its image (the image or an index's child)
    index = json.loads((store / "index.json").read_text())
    tagged = [e for e in index["manifests"] if (e.get("annotations") or {}).get(REF_ANNOTATION)]
    named = {e["digest"] for e in tagged}
    for entry in tagged:
        if "index" in entry.get("mediaType", ""):
            content = json.loads((blob_dir / entry["digest"].split(":", 1)[1]).read_bytes())
            named |= {child["digest"] for child in content.get("manifests", [])}
    for subject in provenance_subjects(store):
        assert subject in named, f"a provenance of {subject}, which no tag reaches"
    if every_blob:
        for path in blob_dir.iterdir():
            assert sha256_of(path) == path.name, f"{path} does not match its digest"
    return names


def orphans(store: Path) -> set[str]:
    return {path.name for path in (store / "blobs" / "sha256").iterdir()} - reachable(store)


def leftovers(store: Path) -> list[str]:
    """Anything but the layout and idpwrap's lock files: temporary files and directories."""
    found = [name for name in os.listdir(store) if name not in KNOWN_ROOT]
    temp = store / ".idpwrap.tmp"
    if temp.is_dir():
        found += [f".idpwrap.tmp/{name}" for name in os.listdir(temp)]
    return found


def snapshot(store: Path) -> dict[str, tuple[int, int, str]]:
    """Every file of the store (but lock files) with its size, mtime and content digest."""
    result = {}
    for directory, _, files in os.walk(store):
        for name in files:
            if name.startswith(".idpwrap") and name.endswith("lock"):
                continue
            path = Path(directory) / name
            status = path.lstat()
            result[str(path.relative_to(store))] = (
                status.st_size,
                status.st_mtime_ns,
                sha256_of(path),
            )
    return result


def provenance_blobs(store: Path) -> set[str]:
    """``sha256:...`` of every blob of the provenance artifacts index.json keeps with images
    (the artifact manifest, its empty config and its statement): a store's blobs are the
    tagged images' and these."""
    index = json.loads((store / "index.json").read_text())
    found: set[str] = set()
    for entry in index["manifests"]:
        if entry.get("artifactType") != "application/vnd.in-toto+json":
            continue
        manifest = json.loads(
            (store / "blobs" / "sha256" / entry["digest"].split(":", 1)[1]).read_bytes()
        )
        found.add(entry["digest"])
        found.add(manifest["config"]["digest"])
        found.update(layer["digest"] for layer in manifest.get("layers", []))
    return found
