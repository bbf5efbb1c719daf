"""``idpwrap push``: resolve the image in the store, map its destination, skopeo copy it.

Everything before skopeo starts is on the critical path of a push, so it is kept to what
is needed to build skopeo's command line; the progress parser and the display are set up
while skopeo is already running.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import namedtuple
from collections.abc import Callable

from idpwrap import creds, log, skopeo
from idpwrap.commands import (
    add_authfile_argument,
    add_tls_arguments,
    notice,
    open_store,
    password_argument_refused,
    refuse_password_argument,
)
from idpwrap.errors import (
    AuthFailed,
    BodyTooLarge,
    ImageNotFound,
    PushFailed,
    RegistryUnreachable,
    UsageError,
)
from idpwrap.refs import (
    DEFAULT_REGISTRY,
    Destination,
    Registry,
    SourceRef,
    destination_host,
    explicit_destination,
    gitea_destination,
    parse_registry,
    parse_source,
    store_candidates,
)
from idpwrap.scratch import private_directory, remove_tree
from idpwrap.store import INDEX_FILE, LAYOUT_FILE, REF_ANNOTATION, Store, StoredImage, indexes

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from idpwrap import gitea
    from idpwrap.display import ProgressView
    from idpwrap.progress import PushProgress
    from idpwrap.signing import Signer

PUSH_LAYOUT_NAME = "image"
PROGRESS_MODES = ("auto", "tty", "plain", "json", "none")


class PushRequest(
    namedtuple(
        "PushRequest",
        "source destination registry owner insecure ca_file cert_dir retry username password"
        " authfile signer platform",
        defaults=(None, None, None, False, None, None, 3, None, None, None, None, None),
    )
):
    """What the user asked for; the password only ever comes from stdin or the environment."""

    __slots__ = ()
    source: str
    destination: str | None
    registry: str | None
    owner: str | None
    insecure: bool
    ca_file: str | Path | None
    cert_dir: str | Path | None
    retry: int
    username: str | None
    password: str | None
    authfile: str | Path | None
    signer: Signer | None  # --sign-by-sigstore-private-key, checked before anything is pushed
    platform: str | None  # of a multi-platform image, push only this child

    def __repr__(self) -> str:
        return f"PushRequest(source={self.source!r}, destination={self.destination!r})"


class PushResult(namedtuple("PushResult", "reference digest size")):
    __slots__ = ()
    reference: str
    digest: str
    size: int


def choose_registry(request: PushRequest, source: SourceRef) -> Registry:
    """--registry (or the config), else the registry SOURCE or DEST names, else the default.

    Credentials and TLS settings are chosen for this registry, so it must be the one the
    image goes to: a SOURCE or DEST naming another one than --registry is an error."""
    named = {"SOURCE": source.host, "DEST": destination_host(request.destination)}
    if request.registry:
        registry = parse_registry(request.registry)
        for argument, host in named.items():
            if host and host.lower() != registry.host:
                raise UsageError(
                    f"{argument} names registry {host} but --registry says {registry.host}:"
                    " drop one of them"
                )
        return registry
    if named["SOURCE"] and named["DEST"] and named["SOURCE"].lower() != named["DEST"]:
        raise UsageError(
            f"SOURCE names registry {named['SOURCE']} and DEST {named['DEST']}: drop one of them"
        )
    if named["SOURCE"] or named["DEST"]:
        return Registry(str(named["SOURCE"] or named["DEST"]).lower())
    return parse_registry(os.environ.get("IDPWRAP_REGISTRY") or DEFAULT_REGISTRY)


def plan_destination(
    request: PushRequest,
    source: SourceRef,
    image: StoredImage,
    registry: Registry,
    credentials: creds.Credentials | None,
) -> Destination:
    if request.destination:
        return explicit_destination(request.destination, registry)
    owner = request.owner
    if not owner and credentials and not credentials.identity_token and len(source.path) == 1:
        owner = credentials.username
    return gitea_destination(registry, source, image.ref, owner)


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)


def write_push_layout(directory: str | Path, store: Store, image: StoredImage) -> str:
    """A one-image OCI layout whose blobs are the store's own (a symlink), pinned to the
    manifest (or index) we resolved: a tag moved by a concurrent build cannot change what we
    push.

    (Plain ``os.path``, like everything before skopeo starts: pathlib costs an import.)"""
    layout = os.path.join(directory, "layout")
    os.mkdir(layout)
    _write(os.path.join(layout, LAYOUT_FILE), b'{"imageLayoutVersion":"1.0.0"}')
    descriptor = {
        key: value
        for key, value in image.descriptor.items()
        if key not in ("annotations", "platform")
    }
    descriptor["annotations"] = {REF_ANNOTATION: PUSH_LAYOUT_NAME}
    index = json.dumps({"schemaVersion": 2, "manifests": [descriptor]}).encode()
    _write(os.path.join(layout, INDEX_FILE), index)
    os.symlink(os.path.join(store.location, "blobs"), os.path.join(layout, "blobs"))
    return layout


def push_source(directory: str, store: Store, image: StoredImage) -> str:
    """The reference skopeo copies from: the pinned layout, or for a docker-format image a
    ``dir:`` view (skopeo 1.9.3 reads only OCI manifests from a layout)."""
    from idpwrap import dirview

    if dirview.is_docker(image.descriptor):
        blob_dir = os.path.join(store.location, "blobs", "sha256")
        view = os.path.join(directory, "image")
        return "dir:" + dirview.write(view, blob_dir, image.digest)
    return f"oci:{write_push_layout(directory, store, image)}:{PUSH_LAYOUT_NAME}"


def trusted_cert_dir(request: PushRequest, directory: str | Path | None) -> str | None:
    if request.cert_dir:
        if not os.path.isdir(request.cert_dir):
            raise UsageError(f"--cert-dir {request.cert_dir} is not a directory")
        return os.fspath(request.cert_dir)
    if request.ca_file:
        if not os.path.isfile(request.ca_file):
            raise UsageError(f"--ca-file {request.ca_file} does not exist")
        cert_dir = os.path.join(os.fspath(directory or "."), "certs")
        os.mkdir(cert_dir)
        with open(request.ca_file, "rb") as ca:
            _write(os.path.join(cert_dir, "ca.crt"), ca.read())
        return cert_dir
    return None


class _LiveProgress:
    """The parser and the display, made once skopeo runs; output waits in the pty till then."""

    def __init__(
        self,
        blobs: list[tuple[str, int, str]],
        label: str,
        make_view: Callable[[str], ProgressView],
    ) -> None:
        self.blobs = blobs  # (digest, size, kind): every child's of an index, each once
        self.label = label
        self.make_view = make_view
        self.progress: PushProgress | None = None
        self.view: ProgressView | None = None
        self.store_root = ""  # named in a message about a damaged blob
        self.image_ref = ""

    def start(self) -> None:
        if self.progress is not None:
            return  # a second attempt carries on with the same counts: they never fall
        from idpwrap.progress import Blob, PushProgress

        self.progress = PushProgress([Blob(*blob) for blob in self.blobs])
        self.view = self.make_view(self.label)
        self.view.start(self.progress)

    def feed(self, text: str) -> None:
        if self.progress is None or self.view is None:
            self.start()
        assert self.progress is not None and self.view is not None
        self.view.update(self.progress, self.progress.feed(text))

    def close(self, succeeded: bool) -> None:
        if self.progress is None or self.view is None:
            if not succeeded:
                return  # skopeo never ran: there is no progress to close
            self.start()
        assert self.progress is not None and self.view is not None
        if succeeded:
            self.view.update(self.progress, self.progress.finish())
        self.view.close(self.progress, succeeded)

    def pending_size(self) -> int:
        """The largest layer the registry did not have already: the one a proxy's body limit
        refuses first (its bar may read "done": skopeo sent it all before the answer came)."""
        layers = [size for _, size, kind in self.blobs if kind == "blob"]
        if self.progress is not None:
            from idpwrap.progress import BlobState

            sent = [b for b in self.progress.blobs if b.state is not BlobState.SKIPPED]
            layers = [blob.total for blob in sent if blob.kind == "blob"] or layers
        return max(layers, default=0)

    def pushed(self, reference: str, digest: str) -> None:
        if self.view is not None:
            self.view.pushed(reference, digest)


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
        tried: list[str] = []
        credentials = creds.resolve(
            registry.host,
            username=request.username,
            password=request.password,
            authfile=request.authfile,
            tried=tried,
        )
        destination = plan_destination(request, source, image, registry, credentials)
        if destination.lowercased_owner:
            notice(
                f"owner {destination.lowercased_owner!r} lowercased to"
                f" {destination.lowercased_owner.lower()!r}: registry namespaces are lowercase"
            )
        if request.insecure and not registry.plain_http:
            notice(f"TLS verification is off for {registry.host} (--insecure)")
        elif registry.plain_http and _answers_tls(registry.host):
            notice(
                f"TLS verification is off for {registry.host}: it answers TLS, and with"
                f" {registry.url} skopeo uses it unverified; use https://{registry.host}"
                " (with --ca-file for a private CA) to verify it"
            )
        lowered_tag = _gitea_lowercases(request, destination, notice)
        log.info("pushing %s (%s) to %s", image.ref, image.digest, destination.reference)

        live = _LiveProgress(blobs, f"{destination.repository}:{destination.tag}", make_view)
        live.store_root = str(store.root)
        live.image_ref = str(image.ref)
        work = private_directory("idpwrap-push-")
        succeeded = False
        try:
            with creds.temporary_auth_file(registry.host, credentials) as auth_fd:
                source = push_source(work, store, image)
                options = skopeo.CopyOptions(
                    registry=registry,
                    authfile_fd=auth_fd,
                    digestfile=os.path.join(work, "digest"),
                    tls_verify=not request.insecure,
                    cert_dir=trusted_cert_dir(request, work),
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
        if lowered_tag and credentials:
            from idpwrap import gitea

            destination = gitea.check_lowercased_tag(
                destination, credentials, image.digest, _tls_of(request)
            )
        if pushed_digest != image.digest:
            raise PushFailed(
                f"the registry stored {destination.reference} as {pushed_digest}, but the local"
                f" image is {image.digest}: the push did not copy the image unchanged"
            )
        live.pushed(destination.reference, pushed_digest)
        if request.signer is not None:
            from idpwrap import signing

            tls = signing.Tls(registry, request.insecure, request.ca_file, request.cert_dir)
            repository = f"{registry.host}/{destination.repository}"
            signing.after_push(request.signer, repository, pushed_digest, tls, credentials, notice)
        return PushResult(destination.reference, pushed_digest, sum(b[1] for b in blobs))


def _answers_tls(host: str) -> bool:
    from idpwrap.tlsprobe import answers_tls

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
    from idpwrap import signing

    repository = f"{registry.host}/{destination.repository}"
    return signing.signing_copy(request.signer, registry.host, repository, digest, argv, notice)


def _copy_with_one_more_try(
    argv: list[str],
    options: skopeo.CopyOptions,
    live: _LiveProgress,
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
        error = skopeo.classify_failure(
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


def _tls_of(request: PushRequest) -> gitea.Tls:
    from pathlib import Path

    from idpwrap import gitea

    cert_dir = Path(request.cert_dir) if request.cert_dir else None
    ca_file = Path(request.ca_file) if request.ca_file else None
    return gitea.Tls(bool(request.insecure), ca_file, cert_dir)


def _gitea_lowercases(
    request: PushRequest, destination: Destination, notice: Callable[[str], None]
) -> bool:
    if destination.tag == destination.tag.lower():
        return False  # the common case pays nothing
    from idpwrap import gitea

    return gitea.announce_lowercased_tag(destination, _tls_of(request), notice)


def _closer_look(
    error: AuthFailed,
    stderr: str,
    request: PushRequest,
    credentials: creds.Credentials,
    destination: Destination,
) -> AuthFailed:
    if not skopeo.refusal_is_unclear(stderr) or credentials.identity_token:
        return error
    from idpwrap import gitea

    return gitea.explain_refused_push(credentials, destination, _tls_of(request)) or error


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


def digestfile_text(results: list[PushResult]) -> str:
    """The digest alone for one image (as podman writes it); ``REFERENCE DIGEST`` lines for
    several, so that each digest says which tag it belongs to."""
    if len(results) == 1:
        return f"{results[0].digest}\n"
    return "".join(f"{result.reference} {result.digest}\n" for result in results)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="[OWNER/]NAME[:TAG] or NAME@sha256:...")
    parser.add_argument(
        "destination", metavar="DEST", nargs="?",
        help="[HOST/]PATH[:TAG]; overrides the Gitea mapping HOST/OWNER/NAME:TAG",
    )  # fmt: skip
    parser.add_argument(
        "--registry", metavar="URL",
        help="https://host:port, host:port or http://host:port (default: $IDPWRAP_REGISTRY,"
        f" else idpbuilder's Gitea, {DEFAULT_REGISTRY})",
    )  # fmt: skip
    parser.add_argument(
        "--owner", help="registry namespace (default: OWNER in SOURCE, else the username)"
    )
    add_tls_arguments(parser)
    parser.add_argument(
        "--retry", type=int, metavar="N",
        help="times skopeo retries a failed transfer (default: $IDPWRAP_RETRY, the config"
        " file's retry, else 3)",
    )  # fmt: skip
    parser.add_argument("-u", "--username", help="registry username (with --password-stdin)")
    refuse_password_argument(parser)
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password or token from stdin"
    )
    add_authfile_argument(parser)
    parser.add_argument(
        "--all-tags", action="store_true", help="push every tag of SOURCE's repository"
    )
    parser.add_argument(
        "--digestfile", metavar="FILE",
        help="write the pushed digest to FILE (with --all-tags: REFERENCE DIGEST lines)",
    )  # fmt: skip
    parser.add_argument(
        "--sign-by-sigstore-private-key", metavar="KEY",
        help="sign the pushed digest with this key (idpwrap keygen's cosign.key); the signature"
        " is stored as the tag sha256-<digest>.sig (config key sign_by_sigstore_private_key)",
    )  # fmt: skip
    parser.add_argument(
        "--sign-passphrase-file", metavar="FILE",
        help="the signing key's passphrase (default: $IDPWRAP_SIGN_PASSPHRASE, else a prompt)",
    )  # fmt: skip
    parser.add_argument(
        "--platform", metavar="OS/ARCH[/VARIANT]",
        help="of a multi-platform image, push only this platform's image (default: the whole"
        " index, every child first)",
    )  # fmt: skip
    parser.add_argument(
        "--json", action="store_true", help='print {"reference", "digest", "size"} on stdout'
    )
    parser.add_argument(
        "--progress", choices=PROGRESS_MODES,
        help="progress on stderr (default: $IDPWRAP_PROGRESS, else auto: bars on a terminal,"
        " plain lines otherwise)",
    )  # fmt: skip


def _signer(args: argparse.Namespace) -> Signer | None:
    from idpwrap import config

    key = config.load().setting(
        "sign_by_sigstore_private_key", args.sign_by_sigstore_private_key,
        "--sign-by-sigstore-private-key",
    ).value  # fmt: skip
    if not key:
        if args.sign_passphrase_file:
            raise UsageError("--sign-passphrase-file goes with --sign-by-sigstore-private-key KEY")
        return None
    from idpwrap import signing

    return signing.prepare(str(key), args.sign_passphrase_file)


def push_platform(text: str | None) -> str | None:
    if not text:
        return None
    from idpwrap import platforms

    found = platforms.parse([text])
    if len(found) != 1:
        raise UsageError(f"--platform {text!r}: push takes one platform (or none: all of them)")
    return found[0]


def execute(args: argparse.Namespace) -> int:
    import sys

    from idpwrap import config

    if args.password_argument is not None:
        raise UsageError(password_argument_refused("push"))
    insecure = None  # not given: --tls-verify=true says False, so the config cannot say True
    if args.insecure or args.tls_verify is not None:
        insecure = args.insecure or not args.tls_verify
    settings = config.for_push(
        source_host=parse_source(args.source).host or destination_host(args.destination),
        registry=args.registry,
        owner=args.owner,
        insecure=insecure,
        ca_file=args.ca_file,
        cert_dir=args.cert_dir,
        retry=args.retry,
        progress=args.progress,
    )  # flags, then IDPWRAP_*, then the config file, then the defaults
    mode = settings["progress"].value
    ca_file = settings["ca_file"].value
    password = None
    if args.password_stdin:
        if sys.stdin.isatty():
            raise UsageError('--password-stdin reads a pipe: echo "$TOKEN" | idpwrap push ...')
        password = sys.stdin.read().rstrip("\r\n")
    request = PushRequest(
        source=args.source,
        destination=args.destination,
        registry=settings["registry"].value,
        owner=settings["owner"].value,
        insecure=settings["insecure"].value,
        ca_file=ca_file or None,
        cert_dir=args.cert_dir or None,
        retry=settings["retry"].value,
        username=args.username,
        password=password,
        authfile=args.authfile or None,
        signer=_signer(args),
        platform=push_platform(args.platform),
    )

    def make_view(label: str) -> ProgressView:
        from idpwrap import display

        return display.make_view(mode, label)

    store = open_store(args)
    try:
        if args.all_tags:
            results = push_all_tags(store, request, make_view, notice)
        else:
            results = [run(store, request, make_view, notice)]
    except RegistryUnreachable as error:
        if settings["registry"].source != "default":
            raise
        raise RegistryUnreachable(
            f"{error} ({DEFAULT_REGISTRY} is idpwrap's built-in default, idpbuilder's Gitea:"
            " start idpbuilder, or name the registry with --registry or IDPWRAP_REGISTRY)"
        ) from error
    if args.digestfile:
        try:
            _write(args.digestfile, digestfile_text(results).encode())
        except OSError as error:
            raise UsageError(
                f"cannot write --digestfile {args.digestfile}: {error.strerror}; the push itself"
                " succeeded"
            ) from error
    for result in results:
        if args.json:
            print(json.dumps(result._asdict()))
        else:
            print(f"Pushed {result.reference}@{result.digest}")
    return 0
