"""The store and its archives read and written by tools we did not write: skopeo and umoci
agree with ``idpwrap images --json``; ``save`` makes an oci-archive they read; ``load`` takes the
docker-archives and oci-archives they make."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from datetime import datetime
from pathlib import Path

import pytest

from testing.cli import Cli, make_cli
from testing.storecheck import check_valid, provenance_blobs, skopeo_inspect, skopeo_manifest

pytestmark = pytest.mark.integration

GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def run_json(cli: Cli, *args: str) -> object:
    result = cli.run(*args)
    assert result.returncode == 0, result.describe()
    return json.loads(result.stdout)


def umoci_tags(layout: Path) -> set[str]:
    listed = subprocess.run(
        ["umoci", "ls", "--layout", str(layout)], capture_output=True, text=True, check=False
    )
    assert listed.returncode == 0, listed.stderr
    return set(listed.stdout.split())


def moment(text: str) -> datetime:
    """RFC 3339 with up to nanoseconds, as Go writes it, to the microsecond."""
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, tail = text.split(".", 1)
        digits = "".join(c for c in tail if c.isdigit())
        text = f"{head}.{digits[:6].ljust(6, '0')}{tail[len(digits) :]}"
    return datetime.fromisoformat(text)


def test_skopeo_and_umoci_agree_with_images_json(prebuilt, prebuilt_copy: Cli) -> None:
    cli, store = prebuilt_copy, prebuilt_copy.store
    assert cli.run("tag", "hello:v1", "team/hello:latest", "hello:v1.0.0-rc.1").returncode == 0
    rows = run_json(cli, "images", "--json")
    assert isinstance(rows, list)
    references = {row["reference"] for row in rows}
    assert references == {"hello:v1", "three:v1", "team/hello:latest", "hello:v1.0.0-rc.1"}
    assert umoci_tags(store) == references

    for row in rows:
        reference = f"oci:{store}:{row['reference']}"
        seen = skopeo_inspect(reference)
        assert seen["Digest"] == row["digest"]
        assert moment(seen["Created"]) == moment(row["created"])
        manifest = json.loads(skopeo_manifest(reference))
        assert row["size"] == manifest["config"]["size"] + sum(
            layer["size"] for layer in manifest["layers"]
        )
        config = subprocess.run(
            ["skopeo", "inspect", "--config", "--raw", reference], capture_output=True, check=True
        ).stdout
        assert "sha256:" + hashlib.sha256(config).hexdigest() == row["config"]

        details = run_json(cli, "inspect", "--json", row["reference"])
        assert isinstance(details, dict)
        assert [layer["digest"] for layer in details["layers"]] == seen["Layers"]
        assert details["labels"] == (seen["Labels"] or {})
        assert (details["os"], details["architecture"]) == (seen["Os"], seen["Architecture"])
        assert details["id"] == row["config"]
        stat = subprocess.run(
            ["umoci", "stat", "--json", "--image", f"{store}:{row['reference']}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert stat.returncode == 0, stat.stderr
        assert len(json.loads(stat.stdout)["history"]) == len(details["history"])


def test_save_writes_an_oci_archive_skopeo_and_umoci_read(
    prebuilt, prebuilt_cli: Cli, tmp_path: Path
) -> None:
    archive = tmp_path / "both.tar"
    saved = prebuilt_cli.run("save", "hello:v1", "three:v1", "-o", str(archive))
    assert saved.returncode == 0, saved.describe()
    for image in (prebuilt.hello, prebuilt.three):
        assert skopeo_inspect(f"oci-archive:{archive}:{image.tag}")["Digest"] == image.digest
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(unpacked)], check=True)
    assert umoci_tags(unpacked) == {"hello:v1", "three:v1"}
    blobs = {path.name for path in (unpacked / "blobs" / "sha256").iterdir()}
    # save carries the images' provenance (an artifact each) with them
    assert blobs == {
        d.split(":")[1]
        for d in prebuilt.hello.all_digests
        | prebuilt.three.all_digests
        | provenance_blobs(unpacked)
    }
    copied = tmp_path / "copied"
    subprocess.run(
        ["skopeo", "copy", "-q", f"oci-archive:{archive}:three:v1", f"oci:{copied}:three"],
        check=True,
    )
    assert skopeo_inspect(f"oci:{copied}:three")["Digest"] == prebuilt.three.digest


def docker_archive(store: Path, tag: str, name: str, path: Path) -> list[dict]:
    subprocess.run(
        ["skopeo", "copy", "-q", f"oci:{store}:{tag}", f"docker-archive:{path}:{name}"],
        check=True,
    )
    with tarfile.open(path) as tar:
        return json.loads(tar.extractfile("manifest.json").read())


def merge_docker_archives(parts: list[Path], output: Path) -> None:
    """One docker-archive of several images, as ``docker save a b`` and ``podman save -m`` write
    it (skopeo writes one image per archive)."""
    manifest: list[dict] = []
    seen: set[str] = set()
    with tarfile.open(output, "w") as merged:
        for part in parts:
            with tarfile.open(part) as tar:
                for member in tar.getmembers():
                    if member.name == "manifest.json":
                        manifest += json.loads(tar.extractfile(member).read())
                    elif member.name not in seen and member.name != "repositories":
                        seen.add(member.name)
                        data = tar.extractfile(member) if member.isfile() else None
                        merged.addfile(member, data)
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        merged.addfile(info, io.BytesIO(data))


def test_load_archives_other_tools_wrote(prebuilt, tmp_path: Path) -> None:
    hello_items = docker_archive(prebuilt.store, "hello:v1", "hello:v1", tmp_path / "h.tar")
    assert hello_items[0]["RepoTags"] == ["docker.io/library/hello:v1"]
    docker_archive(prebuilt.store, "three:v1", "localhost/team/three:v2", tmp_path / "t.tar")
    multi = tmp_path / "multi.tar"
    merge_docker_archives([tmp_path / "h.tar", tmp_path / "t.tar"], multi)

    cli = make_cli(tmp_path / "cli", tmp_path / "store")
    loaded = cli.run("load", "-i", str(multi))
    assert loaded.returncode == 0, loaded.describe()
    assert "Loaded image: hello:v1" in loaded.stdout
    assert "Loaded image: team/three:v2" in loaded.stdout
    assert check_valid(cli.store) == ["hello:v1", "team/three:v2"]
    for tag, original in (("hello:v1", prebuilt.hello), ("team/three:v2", prebuilt.three)):
        details = run_json(cli, "inspect", "--json", tag)
        assert isinstance(details, dict)
        assert details["id"] == original.config[0], "the same image (config) as was saved"
        assert {layer["mediaType"] for layer in details["layers"]} == {GZIP_LAYER}
    assert cli.run("load", "-i", str(multi)).returncode == 0  # again: the same two tags
    assert check_valid(cli.store) == ["hello:v1", "team/three:v2"]

    oci = tmp_path / "three-oci.tar"
    subprocess.run(
        ["skopeo", "copy", "-q", f"oci:{prebuilt.store}:three:v1", f"oci-archive:{oci}:three:v1"],
        check=True,
    )
    again = cli.run("load", "-i", str(oci))
    assert again.returncode == 0, again.describe()
    assert f"Loaded image: three:v1 ({prebuilt.three.digest})" in again.stdout
    assert check_valid(cli.store) == ["hello:v1", "team/three:v2", "three:v1"]
    assert list((cli.store / ".idpwrap.tmp").iterdir()) == []
