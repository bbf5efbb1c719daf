"""The plan's manual testing protocol (E2.2.1), run for real: build, store, push, registry."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from testing.cli import Cli, check_progress_events, json_events
from testing.images import (
    OCI_MANIFEST,
    REF_ANNOTATION,
    blob_path,
    local_image,
    read_index,
    sha256_file,
)

pytestmark = pytest.mark.integration


def test_plan_protocol_build_store_push_verify(
    cli: Cli, gitea_registry, hello_context: Path
) -> None:
    """Against the Gitea mode (Gitea 1.24.3's answers), with giteaAdmin's access token."""
    registry = gitea_registry
    # 1. Build: the plan's exact command and message.
    build = cli.run("build", "--context", str(hello_context), "--tag", "myapp:v1.0.0")
    assert build.returncode == 0, build.describe()
    assert "Image saved to local store: myapp:v1.0.0" in build.stdout.splitlines()
    assert "Traceback" not in build.stderr

    # 2. The image is stored: an OCI layout whose index names the tag, every blob present.
    store = cli.store
    assert (store / "oci-layout").is_file()
    index = read_index(store)
    names = [entry.get("annotations", {}).get(REF_ANNOTATION) for entry in index["manifests"]]
    assert names.count("myapp:v1.0.0") == 1, names
    image = local_image(store, "myapp:v1.0.0")
    assert f"Digest: {image.digest}" in build.stdout
    for digest in image.all_digests:
        path = blob_path(store, digest)
        assert path.is_file(), f"{digest} is named by the image but missing from the store"
        assert sha256_file(path) == digest
    assert image.manifest["mediaType"] == OCI_MANIFEST
    assert len(image.layers) == 3  # COPY busybox, RUN --install, RUN echo

    # 3. Push with the credentials in the environment, as the plan does.
    push = cli.run(
        "push",
        "--registry",
        registry.url,
        *registry.tls_options(),
        "--progress",
        "json",
        "giteaAdmin/myapp:v1.0.0",
        credentials=("giteaAdmin", registry.secret("giteaAdmin", "token")),
    )
    assert push.returncode == 0, push.describe()
    assert "Traceback" not in push.stderr
    expected_reference = f"{registry.host}/giteaadmin/myapp:v1.0.0"
    pushed_lines = [line for line in push.stdout.splitlines() if line.startswith("Pushed ")]
    assert pushed_lines == [f"Pushed {expected_reference}@{image.digest}"], push.stdout
    assert re.fullmatch(r"Pushed \S+@sha256:[0-9a-f]{64}", pushed_lines[0])
    notice = [line for line in push.stderr.splitlines() if "lowercase" in line]
    assert notice, push.stderr
    assert "giteaAdmin" in notice[0] and "giteaadmin" in notice[0], notice

    # Real progress: it rises, ends at 100 only once the manifest is written, says what it pushed.
    events = json_events(push.stderr)
    check_progress_events(events, image.blobs)
    pushed = [event for event in events if event["event"] == "pushed"]
    assert pushed == [{"event": "pushed", "reference": expected_reference, "digest": image.digest}]
    finished = {event["blob"] for event in events if event["event"] == "blob_done"}
    assert finished == set(image.blobs)

    # 4. The registry lists the tag, and holds the very manifest and blobs of the store.
    client = registry.client()
    assert "v1.0.0" in client.tags("giteaadmin/myapp")
    assert client.manifest_digest("giteaadmin/myapp", "v1.0.0") == image.digest
    manifest = client.manifest("giteaadmin/myapp", "v1.0.0")
    assert manifest.status == 200
    assert manifest.headers["Content-Type"] == OCI_MANIFEST
    assert "sha256:" + hashlib.sha256(manifest.body).hexdigest() == image.digest
    assert manifest.body == blob_path(store, image.digest).read_bytes()
    for digest, size in image.blobs.items():
        blob = client.blob("giteaadmin/myapp", digest)
        assert blob.status == 200, (digest, blob.status)
        assert len(blob.body) == size
        assert "sha256:" + hashlib.sha256(blob.body).hexdigest() == digest
