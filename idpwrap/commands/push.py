"""``idpwrap push``: resolve the image in the store, map its destination, skopeo copy it."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from idpwrap import creds, skopeo
from idpwrap.display import ProgressView
from idpwrap.errors import PushFailed, ToolMissing, UsageError
from idpwrap.progress import PushProgress
from idpwrap.refs import (
    DEFAULT_REGISTRY,
    Destination,
    Registry,
    SourceRef,
    explicit_destination,
    gitea_destination,
    parse_registry,
    parse_source,
    store_candidates,
)
from idpwrap.store import INDEX_FILE, LAYOUT_FILE, REF_ANNOTATION, ImageDetails, Store

logger = logging.getLogger(__name__)
PUSH_LAYOUT_NAME = "image"


@dataclass(frozen=True)
class PushRequest:
    source: str
    destination: str | None = None
    registry: str | None = None
    owner: str | None = None
    insecure: bool = False
    ca_file: Path | None = None
    cert_dir: Path | None = None
    retry: int = 3
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class PushResult:
    reference: str
    digest: str
    size: int


def choose_registry(request: PushRequest, source: SourceRef) -> Registry:
    if request.registry:
        registry = parse_registry(request.registry)
        if source.host and source.host.lower() != registry.host:
            raise UsageError(
                f"{request.source} names registry {source.host} but --registry says"
                f" {registry.host}: drop one of them"
            )
        return registry
    if source.host:
        return Registry(source.host.lower())
    return parse_registry(os.environ.get("IDPWRAP_REGISTRY") or DEFAULT_REGISTRY)


def plan_destination(
    request: PushRequest,
    source: SourceRef,
    details: ImageDetails,
    registry: Registry,
    credentials: creds.Credentials | None,
) -> Destination:
    if request.destination:
        return explicit_destination(request.destination, registry)
    owner = request.owner or (
        credentials.username if credentials and len(source.path) == 1 else None
    )
    return gitea_destination(registry, source, details.image.ref, owner)


def write_push_layout(directory: Path, store: Store, details: ImageDetails) -> Path:
    """A one-image OCI layout whose blobs are the store's own (a symlink), pinned to the
    manifest we resolved: a tag moved by a concurrent build cannot change what we push."""
    layout = directory / "layout"
    layout.mkdir()
    (layout / LAYOUT_FILE).write_text('{"imageLayoutVersion":"1.0.0"}')
    descriptor = {
        key: value for key, value in details.image.descriptor.items() if key != "annotations"
    }
    descriptor["annotations"] = {REF_ANNOTATION: PUSH_LAYOUT_NAME}
    (layout / INDEX_FILE).write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    (layout / "blobs").symlink_to(store.root / "blobs", target_is_directory=True)
    return layout


def trusted_cert_dir(request: PushRequest, directory: Path) -> Path | None:
    if request.cert_dir:
        if not request.cert_dir.is_dir():
            raise UsageError(f"--cert-dir {request.cert_dir} is not a directory")
        return request.cert_dir
    if request.ca_file:
        if not request.ca_file.is_file():
            raise UsageError(f"--ca-file {request.ca_file} does not exist")
        cert_dir = directory / "certs"
        cert_dir.mkdir()
        shutil.copyfile(request.ca_file, cert_dir / "ca.crt")
        return cert_dir
    return None


def run(
    store: Store,
    request: PushRequest,
    make_view: Callable[[str], ProgressView],
    notice: Callable[[str], None],
) -> PushResult:
    source = parse_source(request.source)
    registry = choose_registry(request, source)
    image = store.resolve(store_candidates(source), source.tag, source.digest)
    details = store.details(image)
    credentials = creds.resolve(registry.host, username=request.username, password=request.password)
    destination = plan_destination(request, source, details, registry, credentials)
    if destination.lowercased_owner:
        notice(
            f"owner {destination.lowercased_owner!r} lowercased to"
            f" {destination.lowercased_owner.lower()!r}: registry namespaces are lowercase"
        )
    if request.insecure and not registry.plain_http:
        notice(f"TLS verification is off for {registry.host} (--insecure)")
    if shutil.which("skopeo") is None:
        raise ToolMissing.named("skopeo")
    logger.info("pushing %s (%s) to %s", image.ref, image.digest, destination.reference)

    layers = [(str(layer["digest"]), int(layer["size"])) for layer in details.manifest["layers"]]
    config = details.manifest["config"]
    progress = PushProgress.for_manifest(layers, (str(config["digest"]), int(config["size"])))
    view = make_view(destination.repository + ":" + destination.tag)
    work = Path(tempfile.mkdtemp(prefix="idpwrap-push-"))
    try:
        with store.reading(), creds.temporary_auth_file(registry.host, credentials) as auth_fd:
            layout = write_push_layout(work, store, details)
            options = skopeo.CopyOptions(
                registry=registry,
                authfile_fd=auth_fd,
                digestfile=work / "digest",
                tls_verify=not request.insecure,
                cert_dir=trusted_cert_dir(request, work),
                retry_times=request.retry,
            )
            argv = skopeo.copy_argv(
                f"oci:{layout}:{PUSH_LAYOUT_NAME}", f"docker://{destination.reference}", options
            )
            logger.debug("running %s", " ".join(argv))
            view.start(progress)
            succeeded = False
            try:
                finished = skopeo.copy(
                    argv, options, lambda text: view.update(progress, progress.feed(text))
                )
                if finished.exit_code != 0:
                    raise skopeo.classify_failure(
                        finished.stderr,
                        finished.exit_code,
                        registry,
                        credentials.source if credentials else "",
                    )
                view.update(progress, progress.finish())
                succeeded = True
            finally:
                view.close(progress, succeeded)
            pushed_digest = (work / "digest").read_text().strip()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if pushed_digest != image.digest:
        raise PushFailed(
            f"the registry stored {destination.reference} as {pushed_digest}, but the local"
            f" image is {image.digest}: the push did not copy the image unchanged"
        )
    view.pushed(destination.reference, pushed_digest)
    return PushResult(destination.reference, pushed_digest, details.size)
