"""A push: resolve the image in the store, map its destination, skopeo copy it, check the
digest the registry stored, sign it when asked.

Everything before skopeo starts is on the critical path of a push, so it is kept to what
is needed to build skopeo's command line; the progress parser and the display are set up
while skopeo is already running.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from idpwrap import log
from idpwrap.creds import sources as creds
from idpwrap.errors import (
    AuthFailed,
    BodyTooLarge,
    ImageNotFound,
    PushFailed,
    RegistryUnreachable,
    UsageError,
)
from idpwrap.push.liveprogress import LiveProgress
from idpwrap.push.request import PushRequest, PushResult, choose_registry, plan_destination
from idpwrap.push.source import push_source
from idpwrap.refs import Destination, Registry, parse_source, store_candidates
from idpwrap.scratch import private_directory, remove_tree
from idpwrap.store import indexes
from idpwrap.store.api import Store, StoredImage
from idpwrap.tools import skopeo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.push.display import ProgressView
    from idpwrap.push.tagstate import TagState


def run(
    store: Store,
    request: PushRequest,
    make_view: Callable[[str], ProgressView],
    notice: Callable[[str], None],
) -> PushResult:
    source = parse_source(request.source)
    registry = choose_registry(request, source)
    # Held from the lookup on: a concurrent rmi or prune cannot take the blobs from under us.
    with store.reading() if os.path.exists(store.index_file) else contextlib.nullcontext():
        image = store.resolve(store_candidates(source), source.tag, source.digest)
        whole = indexes.is_index(image) and request.platform is None
        if request.platform is not None:
            image = indexes.child(store, image, request.platform)
        blobs = indexes.copied_blobs(store, image)
        log.phase("push: image resolved in the store")
        tried: list[str] = []
        credentials = creds.resolve(
            registry.host,
            username=request.username,
            password=request.password,
            authfile=request.authfile,
            tried=tried,
        )
        log.phase("push: credentials resolved")
        destination = plan_destination(request, source, image, registry, credentials)
        if destination.lowercased_owner:
            notice(
                f"owner {destination.lowercased_owner!r} lowercased to"
                f" {destination.lowercased_owner.lower()!r}: registry namespaces are lowercase"
            )
        if request.tls.insecure and not registry.plain_http:
            notice(f"TLS verification is off for {registry.host} (--insecure)")
        elif registry.plain_http and _answers_tls(registry.host):
            notice(
                f"TLS verification is off for {registry.host}: it answers TLS, and with"
                f" {registry.url} skopeo uses it unverified; use https://{registry.host}"
                " (with --ca-file for a private CA) to verify it"
            )
        lowered_tag = _gitea_lowercases(request, destination, notice)
        from idpwrap.push.tagstate import TagState

        tag_state = TagState(request, destination, credentials, lowered_tag)
        size = sum(b[1] for b in blobs)
        checked = _check_first(request) and tag_state.up_to_date(image.digest)
        log.phase("push: registry asked what the tag serves")
        if checked:
            result = _already_there(request, tag_state, image.digest, size, make_view, notice)
            if request.signer is not None:
                repository = f"{registry.host}/{destination.repository}"
                _attest(store, image, whole, request, repository, registry, credentials, notice)
            attached = _unsigned(store, image, whole, request, registry, destination, credentials,
                                 notice)  # fmt: skip
            return result._replace(provenance=attached)
        log.info("pushing %s (%s) to %s", image.ref, image.digest, destination.reference)
        log.debug("TLS of %s: %s", registry.host, request.tls.describe())

        live = LiveProgress(blobs, f"{destination.repository}:{destination.tag}", make_view)
        live.store_root = str(store.root)
        live.image_ref = str(image.ref)
        work = private_directory("idpwrap-push-")
        succeeded = False
        try:
            with creds.temporary_auth_file(registry.host, credentials) as auth_fd:
                source = push_source(work, store, image)
                trust = request.tls
                options = skopeo.CopyOptions(
                    registry=registry,
                    authfile_fd=auth_fd,
                    digestfile=os.path.join(work, "digest"),
                    tls=trust._replace(ca_file=None, cert_dir=trust.cert_dir_in(work)),
                    retry_times=request.retry,
                    all_images=whole,
                )
                argv = skopeo.copy_argv(source, f"docker://{destination.reference}", options)
                with _signing_copy(request, registry, destination, image.digest, argv, notice) as (
                    argv,
                    fds,
                ):
                    options = options._replace(extra_fds=fds)
                    log.debug("running %s", " ".join(argv))
                    log.phase("push: skopeo's command line ready")
                    try:
                        _copy_with_one_more_try(
                            argv, options, live, request, credentials, notice, destination, tried
                        )
                        succeeded = True
                    finally:
                        live.close(succeeded)
                with open(os.path.join(work, "digest"), encoding="utf-8") as digestfile:
                    pushed_digest = digestfile.read().strip()
        finally:
            remove_tree(work)
        if pushed_digest != image.digest:
            raise PushFailed(
                f"the registry stored {destination.reference} as {pushed_digest}, but the local"
                f" image is {image.digest}: the push did not copy the image unchanged"
            )
        served = tag_state.served_after_copy(pushed_digest)
        if lowered_tag:
            destination = destination._replace(tag=tag_state.tag)
            if not served:
                raise PushFailed(
                    f"after the push {destination.reference} is missing, not {image.digest}:"
                    " Gitea did not keep the image under the lowercased tag"
                )
        live.pushed(destination.reference, pushed_digest)
        log.phase("push: digest checked, progress closed")
        if request.signer is not None:
            from idpwrap.sign import signing

            repository = f"{registry.host}/{destination.repository}"
            signing.after_push(
                request.signer, repository, pushed_digest, registry, request.tls, credentials,
                notice,
            )  # fmt: skip
            _attest(store, image, whole, request, repository, registry, credentials, notice)
        attached = _unsigned(store, image, whole, request, registry, destination, credentials,
                             notice)  # fmt: skip
        return PushResult(destination.reference, pushed_digest, size, False, served, attached)


def _unsigned(
    store: Store,
    image: StoredImage,
    whole: bool,
    request: PushRequest,
    registry: Registry,
    destination: Destination,
    credentials: creds.Credentials | None,
    notice: Callable[[str], None],
) -> tuple[str, ...] | None:
    """--provenance without a signer: the stored provenance attached unsigned (push/
    provenance.py). With a signer the signed attestation already is the provenance."""
    if not request.provenance:
        return None
    if request.signer is not None:
        log.info("--provenance: the signed attestation (.att) carries the provenance")
        return None
    from idpwrap.push.provenance import attach_unsigned

    return attach_unsigned(
        store, image, whole, registry, destination.repository, request.tls, credentials, notice
    )


def _attest(
    store: Store,
    image: StoredImage,
    whole: bool,
    request: PushRequest,
    repository: str,
    registry: Registry,
    credentials: creds.Credentials | None,
    notice: Callable[[str], None],
) -> None:
    """The build's provenance as a signed attestation, once per digest: the index's and each
    child's (sign/attest.py); an image without a recorded provenance gets a notice."""
    from idpwrap.sign import attest
    from idpwrap.store.referrers import statements

    provenance = statements(store, image, whole)
    attest.after_push(
        request.signer, repository, provenance, registry, request.tls, credentials, notice
    )


def _check_first(request: PushRequest) -> bool:
    """Whether to ask the registry before the copy. skopeo signs during its copy (cosign after
    it), so a push that skopeo signs runs the copy: it skips every blob and adds the signature."""
    signer = request.signer
    return request.up_to_date_check and (signer is None or signer.tool != "skopeo")


def _already_there(
    request: PushRequest,
    tag_state: TagState,
    digest: str,
    size: int,
    make_view: Callable[[str], ProgressView],
    notice: Callable[[str], None],
) -> PushResult:
    """The tag already serves the image: nothing is copied; a cosign signer still signs."""
    reference = tag_state.reference
    log.info("%s already serves %s: nothing to copy", reference, digest)
    make_view(reference.split("/", 1)[1]).up_to_date(reference, digest)
    if request.signer is not None:
        from idpwrap.sign import signing

        destination = tag_state.reader
        signing.after_push(
            request.signer, f"{destination.registry.host}/{destination.repository}", digest,
            destination.registry, request.tls, destination.credentials, notice,
        )  # fmt: skip
    return PushResult(reference, digest, size, True, digest)


def _answers_tls(host: str) -> bool:
    from idpwrap.registry.tlsprobe import answers_tls

    return answers_tls(host)


def _signing_copy(
    request: PushRequest,
    registry: Registry,
    destination: Destination,
    digest: str,
    argv: list[str],
    notice: Callable[[str], None],
) -> contextlib.AbstractContextManager[tuple[list[str], tuple[int, ...]]]:
    if request.signer is None:
        return contextlib.nullcontext((argv, ()))
    from idpwrap.sign import signing

    repository = f"{registry.host}/{destination.repository}"
    return signing.signing_copy(request.signer, registry.host, repository, digest, argv, notice)


def _copy_with_one_more_try(
    argv: list[str],
    options: skopeo.CopyOptions,
    live: LiveProgress,
    request: PushRequest,
    credentials: creds.Credentials | None,
    notice: Callable[[str], None],
    destination: Destination | None = None,
    tried: list[str] | None = None,
) -> None:
    """skopeo retries a failed blob itself (--retry-times), but not every failure, e.g. a
    connection reset before the manifest is written; when retries are allowed, a network
    failure gets one more whole ``skopeo copy``, which skips the blobs already uploaded."""
    attempts = 2 if request.retry > 0 else 1
    for attempt in range(1, attempts + 1):
        os.lseek(options.authfile_fd, 0, os.SEEK_SET)
        finished = skopeo.copy(argv, options, live.feed, on_started=live.start)
        if finished.exit_code == 0:
            return
        from idpwrap.push import failures  # a failure's path only: a push pays nothing for it

        error = failures.classify_failure(
            finished.stderr,
            finished.exit_code,
            options.registry,
            credentials.source if credentials else "",
            username=credentials.username if credentials else "",
            repository=destination.repository if destination else "",
            tried=tried or (),
            pending_size=live.pending_size(),
            image=live.image_ref,
            store_root=live.store_root,
        )
        if isinstance(error, AuthFailed) and credentials and destination:
            error = _closer_look(error, finished.stderr, request, credentials, destination)
        if (
            attempt == attempts
            or not isinstance(error, RegistryUnreachable)
            or isinstance(error, BodyTooLarge)
        ):
            raise error
        if "no such host" in finished.stderr.lower():
            raise error  # a name that does not resolve will not resolve a second later
        notice(f"{error}; trying once more")


def _gitea_lowercases(
    request: PushRequest, destination: Destination, notice: Callable[[str], None]
) -> bool:
    if destination.tag == destination.tag.lower():
        return False  # the common case pays nothing
    from idpwrap.registry import gitea

    return gitea.announce_lowercased_tag(destination, request.tls, notice)


def _closer_look(
    error: AuthFailed,
    stderr: str,
    request: PushRequest,
    credentials: creds.Credentials,
    destination: Destination,
) -> AuthFailed:
    from idpwrap.push import failures

    if not failures.refusal_is_unclear(stderr) or credentials.identity_token:
        return error
    from idpwrap.registry import gitea

    return gitea.explain_refused_push(credentials, destination, request.tls) or error


def push_all_tags(
    store: Store,
    request: PushRequest,
    make_view: Callable[[str], ProgressView],
    notice: Callable[[str], None],
) -> list[PushResult]:
    """Every tag of SOURCE's repository in the store, like ``docker push --all-tags``."""
    source = parse_source(request.source)
    if source.tag or source.digest:
        raise UsageError(f"--all-tags takes a name without a tag or digest, not {request.source}")
    if request.destination and ":" in request.destination.rsplit("/", 1)[-1]:
        raise UsageError("--all-tags keeps each tag: give DEST without a tag")
    images = store.images()
    for name in store_candidates(source):
        tags = [image.ref.tag for image in images if image.ref.name == name]
        if tags:
            break
    else:
        raise ImageNotFound.in_store(f"{request.source}:*", str(store.root), [])
    results = []
    said: set[str] = set()

    def once(message: str) -> None:
        """A notice about the push (an owner lowercased, TLS off) once, not once per tag."""
        if message not in said:
            said.add(message)
            notice(message)

    for tag in tags:
        destination = f"{request.destination}:{tag}" if request.destination else None
        tagged = request._replace(source=f"{request.source}:{tag}", destination=destination)
        results.append(run(store, tagged, make_view, once))
    return results
