"""Shared fixtures: hand-made OCI image layouts and the captured skopeo output."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from idpwrap.store.api import Store

DATA = Path(__file__).resolve().parent.parent / "data"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Layout:
    """One image in its own OCI layout, as ``buildah bud -t oci:DIR:build`` leaves it."""

    path: Path
    manifest_digest: str
    config_digest: str
    layer_digests: list[str]
    sizes: dict[str, int] = field(default_factory=dict)  # every blob's digest -> size

    @property
    def blob_digests(self) -> set[str]:
        return set(self.sizes)


class LayoutFactory:
    """Writes OCI layouts with real sha256-named blobs under one base directory."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.count = 0

    def make(self, layers: list[bytes], created: str = "2024-05-01T12:00:00Z") -> Layout:
        self.count += 1
        path = self.base / f"layout-{self.count}"
        blob_dir = path / "blobs" / "sha256"
        blob_dir.mkdir(parents=True)
        (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        sizes: dict[str, int] = {}

        def put(data: bytes) -> str:
            digest = digest_of(data)
            (blob_dir / digest.split(":", 1)[1]).write_bytes(data)
            sizes[digest] = len(data)
            return digest

        layer_digests = [put(layer) for layer in layers]
        config = json.dumps(
            {
                "created": created,
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": layer_digests},
                "config": {"Labels": {"layout": str(self.count)}},
            }
        ).encode()
        config_digest = put(config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": len(config)},
                "layers": [
                    {"mediaType": LAYER_TYPE, "digest": digest, "size": sizes[digest]}
                    for digest in layer_digests
                ],
            }
        ).encode()
        manifest_digest = put(manifest)
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": MANIFEST_TYPE,
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "annotations": {REF_NAME: "build"},
                }
            ],
        }
        (path / "index.json").write_text(json.dumps(index))
        return Layout(path, manifest_digest, config_digest, layer_digests, sizes)


@pytest.fixture
def layouts(tmp_path: Path) -> LayoutFactory:
    base = tmp_path / "layouts"
    base.mkdir()
    return LayoutFactory(base)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "store")
    store.ensure()
    return store


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch, tmp_path):
    """Neither the developer's config file nor their IDPWRAP_* settings reach a unit test."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-user-config"))
    for name in ("IDPWRAP_CONFIG", "IDPWRAP_OWNER", "IDPWRAP_INSECURE", "IDPWRAP_CA_FILE",
                 "IDPWRAP_RETRY"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


# Each skopeo whose pty output was captured (scripts/capture-skopeo.py): Debian 12's, 13's.
SKOPEO_VERSIONS = ("1.9.3", "1.18.0")


def load_capture(name: str, version: str) -> dict:
    return json.loads((DATA / f"skopeo-{version}-copy-{name}.json").read_text())


@pytest.fixture(params=SKOPEO_VERSIONS)
def fresh_capture(request: pytest.FixtureRequest) -> dict:
    """First push of a 4-layer image: every blob uploaded (each skopeo version)."""
    return load_capture("fresh", request.param)


@pytest.fixture(params=SKOPEO_VERSIONS)
def again_capture(request: pytest.FixtureRequest) -> dict:
    """Second push of the same image: every layer skipped, the config uploaded."""
    return load_capture("again", request.param)


@pytest.fixture(params=[(n, v) for n in ("fresh", "again") for v in SKOPEO_VERSIONS],
                ids=lambda p: f"{p[0]}-{p[1]}")  # fmt: skip
def capture(request: pytest.FixtureRequest) -> dict:
    """Every capture: both pushes of each skopeo version."""
    return load_capture(*request.param)
