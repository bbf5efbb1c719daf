"""The build cache in a registry: whole builds by their fingerprint, and how buildah reaches it.

A whole-build entry is a tag in the cache repository, ``REPO:idpwrap-build-<fingerprint>``
(cache.py's 64 hex digits), on the very image the build made (a manifest, or the index of a
multi-platform build, children included). A runner asks which digest the tag serves with one
HEAD (registry/manifests.py, push's up-to-date check: no process started, so a miss costs a
few milliseconds); when that cannot tell (an identity token, a proxy, a refusal, an answer
without a digest or a known media type) it reads the manifest with ``skopeo inspect --raw``
(its SHA-256 is the entry's digest), as it always did. It then copies that digest, not the
tag, into the store: a tag moved by another runner in between cannot give a different image,
and skopeo checks the manifest and every blob against it. The store's copy must then hold
exactly that digest, or the entry is ignored with a warning and buildah runs.

After a real build, the image is pushed under its entry tag. One build adds one such tag per
cache repository (plus buildah's one tag per layer step, see docs/build.md).

The cache is an optimisation, never a reason for a build to fail: an unreachable, refusing or
too-small registry is one warning line, and the build goes on without it. Credentials and TLS
are push's (creds.sources, the one 0600 auth file as /dev/fd/N).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from idpwrap import log
from idpwrap.creds import sources as creds
from idpwrap.errors import StoreError, UsageError
from idpwrap.refs import Registry, looks_like_host, validate_name
from idpwrap.registry import manifests
from idpwrap.scratch import private_directory, remove_tree
from idpwrap.tools import skopeo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.build.request import CacheRequest
    from idpwrap.refs import LocalRef
    from idpwrap.store.api import Store, StoredImage

ENTRY_PREFIX = "idpwrap-build-"
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
KNOWN_TYPES = (
    *INDEX_TYPES,
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
# skopeo's words for a tag the registry does not have (docker-registry, Gitea).
NO_ENTRY_MARKERS = ("manifest unknown", "not found", "name unknown", "statuscode: 404")


def parse_repository(text: str) -> tuple[Registry, str]:
    """``HOST[:PORT]/PATH`` (no tag, no digest) -> the registry and the path."""
    host, _, path = text.partition("/")
    if not path or not looks_like_host(host) or ":" in path or "@" in path:
        raise UsageError(
            f"cache repository {text!r}: expected HOST[:PORT]/PATH without a tag, e.g."
            " gitea.cnoe.localtest.me:8443/giteaadmin/myapp-buildcache"
        )
    validate_name(text, path)
    return Registry(host.lower()), path


def entry_tag(fingerprint: str) -> str:
    return f"{ENTRY_PREFIX}{fingerprint}"


class Access(namedtuple("Access", "registry authfile_fd tls retry credentials writable")):
    """The cache's registry while a build runs: the open auth file (/dev/fd/N), the TLS trust
    with its CAs in a directory (what skopeo and buildah read), skopeo's retries, and the
    credentials themselves for idpwrap's own requests (the entries' marks)."""

    __slots__ = ()
    registry: Registry
    authfile_fd: int
    tls: object  # TlsTrust, its CA file already put in a directory
    retry: int
    credentials: object  # Credentials or None
    writable: tuple[str, ...]  # the --cache-to repositories: a hit there refreshes its mark

    def copy_options(self, digestfile: str, all_images: bool = False) -> skopeo.CopyOptions:
        return skopeo.CopyOptions(
            registry=self.registry,
            authfile_fd=self.authfile_fd,
            digestfile=digestfile,
            tls=self.tls,
            retry_times=self.retry,
            all_images=all_images,
        )


@contextlib.contextmanager
def opened(cache: CacheRequest) -> Iterator[Access]:
    """Credentials resolved as a push resolves them, in a 0600 auth file with no name: the
    cache's registry and the FROM registries (``cache.pulls``) in the one file."""
    repositories = list(cache.cache_from or cache.cache_to)
    if repositories:
        registry = parse_repository(repositories[0])[0]
    else:
        registry = Registry(cache.pulls[0])
    found = {}
    for host in dict.fromkeys([registry.host, *cache.pulls]):
        found[host] = creds.resolve(
            host, username=cache.username, password=cache.password, authfile=cache.authfile
        )
        log.info("%s: %s, credentials: %s", "build cache" if repositories and host ==
                 registry.host else "FROM registry", host,
                 found[host].source if found[host] else "none (anonymous)")  # fmt: skip
    credentials = found.pop(registry.host)
    work = private_directory("idpwrap-cache-")
    try:
        trust = cache.tls._replace(ca_file=None, cert_dir=cache.tls.cert_dir_in(work))
        with creds.temporary_auth_file(registry.host, credentials, found) as fd:
            yield Access(registry, fd, trust, cache.retry, credentials, tuple(cache.cache_to))
    finally:
        remove_tree(work)


def _reason(stderr: str, exit_code: int) -> str:
    return skopeo.innermost(skopeo.parse_failure(stderr, exit_code).message)


class Lookup(namedtuple("Lookup", "image entry reason reachable")):
    """A whole-build lookup: the stored image (a hit), or why not and whether the registry
    answered at all (if not, buildah gets no cache flags either)."""

    __slots__ = ()
    image: StoredImage | None
    entry: str | None
    reason: str
    reachable: bool


def fetch(
    store: Store,
    access: Access,
    repositories: Sequence[str],
    fingerprint: str,
    tags: list[LocalRef],
    warn: Callable[[str], None],
) -> Lookup:
    """The image of an identical build from the first repository that has its entry."""
    reasons = []
    for repository in repositories:
        entry = f"{repository}:{entry_tag(fingerprint)}"
        served = _served(access, repository, fingerprint)
        if served.state == manifests.FAILED:
            log.info("build cache: %s asked with skopeo (%s)", entry, served.reason)
            served = _inspected(access, entry)
        if served.state == manifests.MISSING:
            reasons.append(f"{repository} has no entry for this fingerprint")
            continue
        if served.state == manifests.FAILED:
            warn(f"the build cache {repository} cannot be read ({served.reason}): building"
                 " without it")  # fmt: skip
            return Lookup(None, None, f"{repository} cannot be read", False)
        digest = served.digest
        image = _pull(
            store, access, f"{repository}@{digest}", digest, served.media_type, tags, warn
        )
        if image is not None:
            if repository in access.writable:
                mark(access, repository, fingerprint, warn)
            return Lookup(image, entry, "", True)
        reasons.append(f"{entry} was not usable")
    return Lookup(None, None, "; ".join(reasons), True)


def _served(access: Access, repository: str, fingerprint: str) -> manifests.Lookup:
    """What the entry tag serves, by one HEAD with the cache's credentials and TLS; ``failed``
    (so skopeo is asked) unless the answer names a digest and a manifest or index type."""
    reader = manifests.TagReader(
        access.registry, parse_repository(repository)[1], access.credentials, access.tls
    )
    try:
        served = reader.digest(entry_tag(fingerprint))
    finally:
        reader.close()
    if served.state == manifests.FOUND and served.media_type not in KNOWN_TYPES:
        return manifests.Lookup(manifests.FAILED, reason=f"media type {served.media_type!r}")
    if served.state == manifests.FOUND:
        log.info("build cache: %s:%s serves %s", repository, entry_tag(fingerprint), served.digest)
    return served


def _inspected(access: Access, entry: str) -> manifests.Lookup:
    """What the entry tag serves, from ``skopeo inspect --raw`` (the manifest's SHA-256)."""
    argv = skopeo.inspect_raw_argv(entry, access.authfile_fd, access.registry, access.tls, 0)
    finished, raw = skopeo.run_quietly(argv, access.authfile_fd)
    if finished.exit_code != 0:
        reason = _reason(finished.stderr, finished.exit_code)
        if any(marker in reason.lower() for marker in NO_ENTRY_MARKERS):
            return manifests.Lookup(manifests.MISSING)
        return manifests.Lookup(manifests.FAILED, reason=reason)
    try:
        media_type = json.loads(raw).get("mediaType", "")
    except (ValueError, AttributeError):
        media_type = ""
    digest = "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
    return manifests.Lookup(manifests.FOUND, digest, media_type=media_type)


def _pull(
    store: Store,
    access: Access,
    reference: str,
    digest: str,
    media_type: str,
    tags: list[LocalRef],
    warn: Callable[[str], None],
) -> StoredImage | None:
    work = store.temp_dir("cache")
    # skopeo's oci: transport takes everything after the first colon as the image name.
    scratch = Path(private_directory("idpwrap-cache-")) if ":" in str(work) else work
    try:
        layout = scratch / "layout"
        options = access.copy_options(str(scratch / "digest"), media_type in INDEX_TYPES)
        argv = skopeo.pull_argv(reference, f"oci:{layout}:build", options)
        finished, _ = skopeo.run_quietly(argv, access.authfile_fd)
        if finished.exit_code != 0:
            reason = _reason(finished.stderr, finished.exit_code)
            warn(f"the build cache's entry {reference} could not be copied ({reason}): building")
            return None
        found = json.loads((layout / "index.json").read_text())["manifests"]
        if len(found) != 1 or found[0].get("digest") != digest:
            got = ", ".join(str(item.get("digest")) for item in found)
            warn(f"the build cache's entry names {digest} but the copy is {got}: ignored, building")
            return None
        image = store.add_layout(layout, tags)
        if image.digest != digest:
            warn(f"the build cache's entry names {digest} but the store holds {image.digest}")
            return None
        return image
    except (OSError, ValueError, KeyError, StoreError) as error:
        warn(f"the build cache's entry {reference} could not be stored ({error}): building")
        return None
    finally:
        store.release(work)
        if scratch != work:
            remove_tree(scratch)


def mark(access: Access, repository: str, fingerprint: str, warn: Callable[[str], None]) -> None:
    """The entry's mark written (cachemarks.py): when it was last written or used, for trim."""
    from idpwrap.build.cachemarks import write_mark
    from idpwrap.errors import IdpwrapError
    from idpwrap.registry.repository import Repository

    path = parse_repository(repository)[1]
    client = Repository(access.registry, path, access.credentials, access.tls)
    try:
        write_mark(client, fingerprint, entry_tag(fingerprint))
    except (IdpwrapError, OSError) as error:
        warn(f"the build cache entry's time could not be written to {repository} ({error}):"
             " idpwrap cache trim will keep it as of unknown age")  # fmt: skip


def publish(
    store: Store,
    access: Access,
    repositories: Sequence[str],
    fingerprint: str,
    image: StoredImage,
    warn: Callable[[str], None],
) -> list[str]:
    """Push ``image`` under its entry tag to each repository; the entries written."""
    from idpwrap.push.source import push_source
    from idpwrap.store import indexes

    written = []
    work = private_directory("idpwrap-cache-")
    try:
        with store.reading():  # the image's blobs stay while skopeo reads them
            source = push_source(work, store, image)
            for repository in repositories:
                entry = f"{repository}:{entry_tag(fingerprint)}"
                digestfile = os.path.join(work, "digest")
                options = access.copy_options(digestfile, indexes.is_index(image))
                os.lseek(access.authfile_fd, 0, os.SEEK_SET)
                argv = skopeo.copy_argv(source, f"docker://{entry}", options)
                finished, _ = skopeo.run_quietly(["skopeo", "copy", "--quiet", *argv[2:]],
                                                 access.authfile_fd)  # fmt: skip
                if finished.exit_code != 0:
                    reason = _reason(finished.stderr, finished.exit_code)
                    warn(f"the build cache {repository} was not written ({reason}): the image"
                         " is built and stored; the next runner builds it again")  # fmt: skip
                    continue
                log.info("build cache: wrote %s (%s)", entry, image.digest)
                mark(access, repository, fingerprint, warn)
                written.append(entry)
    finally:
        remove_tree(work)
    return written
