"""The exceptions a user can act on, each with its exit code and a one-line next step.

Only ``cli.main`` turns these into a message and an exit code; everything below it raises.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

# Exit codes are part of the interface (docs/exit-codes.md): keep them stable.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_AUTH = 4
EXIT_NETWORK = 5
EXIT_TLS = 6
EXIT_TOOL_MISSING = 7
EXIT_STORE = 8
EXIT_SETUP = 9
EXIT_NOT_VERIFIED = 10
EXIT_TAG_MOVED = 11
EXIT_DELETE_REFUSED = 12
EXIT_HANGUP = 129
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class IdpwrapError(Exception):
    """Base of every error that reaches the user as one line and an exit code."""

    exit_code = EXIT_FAILED


class KeyringNotUsable(IdpwrapError):
    """The credentials cannot be kept: no keyring backend, or it failed (login, logout)."""


class UsageError(IdpwrapError):
    """The command line or its input is wrong."""

    exit_code = EXIT_USAGE


class InvalidReference(UsageError):
    @classmethod
    def for_text(cls, text: str, why: str) -> InvalidReference:
        return cls(f"invalid image reference {text!r}: {why}")


class ContextError(UsageError):
    @classmethod
    def missing_directory(cls, path: str) -> ContextError:
        return cls(
            f"build context {path!r} is not a directory: pass an existing one as CONTEXT"
            " (or --context)"
        )

    @classmethod
    def missing_containerfile(cls, context: str) -> ContextError:
        return cls(
            f"no Containerfile or Dockerfile in {context!r}: add one or name it with -f FILE"
        )

    @classmethod
    def missing_file(cls, path: str, looked: str, in_context: str | None) -> ContextError:
        """-f is relative to the working directory, as in podman, not to the context."""
        hint = (
            f"did you mean -f {in_context}?"
            if in_context
            else "check the path given to -f (it is relative to the working directory)"
        )
        return cls(f"build file {path!r} does not exist (looked for {looked}): {hint}")


class ImageNotFound(IdpwrapError):
    exit_code = EXIT_NOT_FOUND

    @classmethod
    def in_store(cls, name: str, store: str, close: Iterable[str]) -> ImageNotFound:
        close = list(close)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else "build it first with 'idpwrap build' or list images with 'idpwrap images'"
        )
        return cls(f"image {name} is not in the local store {store}: {hint}")


class StoreError(IdpwrapError):
    exit_code = EXIT_STORE

    @classmethod
    def damaged_blob(cls, image: str, blob: str, store: str, got: str = "") -> StoreError:
        """A push found a blob of ``image`` missing from ``store`` or not matching its digest."""
        what = f"is damaged (its content is {got})" if got else "is missing"
        name = image or "the image"
        return cls(
            f"blob {blob} of {name} in the store {store} {what}: remove the image and build it"
            f" again (idpwrap rmi {name}, then idpwrap build), or load it again (idpwrap load)"
        )


class DiskFull(StoreError):
    """A filesystem idpwrap or its tools write to is full (or its quota is reached); the store
    keeps its previous content (exit code 8, as every store problem)."""

    @classmethod
    def on(
        cls,
        mount_point: str,
        fstype: str,
        free: int,
        total: int,
        quota: bool,
        holds: str,
        advice: str,
        kept: str,
    ) -> DiskFull:
        from idpwrap.units import human_size

        what = "disk quota exceeded on" if quota else "no space left on"
        space = f"{human_size(free)} free of {human_size(total)}" if total else "no room"
        return cls(
            f"{what} {mount_point} ({fstype}, {space}), where idpwrap keeps {holds}: {advice};"
            f" {kept}"
        )


class ArchiveError(UsageError):
    """An archive given to ``load`` is not one, is damaged, or names its images badly."""


class ToolMissing(IdpwrapError):
    exit_code = EXIT_TOOL_MISSING

    @classmethod
    def named(cls, tool: str) -> ToolMissing:
        return cls(
            f"{tool} is not installed or not on PATH: install it (Debian: apt-get install {tool})"
        )


class ToolNotRun(IdpwrapError):
    """A short tool run (a credential helper, git, a version probe) could not start, or did not
    finish within its time; ``timed_out`` and ``reason`` let a caller say so in its own words."""

    def __init__(self, message: str, *, timed_out: bool, reason: str) -> None:
        super().__init__(message)
        self.timed_out = timed_out
        self.reason = reason


class BuildFailed(IdpwrapError):
    """buildah failed; ``output`` holds what it printed, for the summary and the log."""

    output: tuple[str, ...] = ()
    buildah_exit_code = 1

    @classmethod
    def with_output(cls, exit_code: int, lines: list[str]) -> BuildFailed:
        tail = " | ".join(line.strip() for line in lines[-6:] if line.strip())
        error = cls(f"buildah bud failed (exit code {exit_code}): {tail}")
        error.output = tuple(lines)
        error.buildah_exit_code = exit_code
        return error

    @classmethod
    def summarised(cls, summary: str, log: str | None) -> BuildFailed:
        where = f" (buildah's whole output: {log})" if log else ""
        return cls(f"{summary}{where}")


class CredentialsError(UsageError):
    """Credentials are incomplete or malformed before anything is sent."""


class AuthFailed(IdpwrapError):
    exit_code = EXIT_AUTH


class RegistryUnreachable(IdpwrapError):
    exit_code = EXIT_NETWORK


class BodyTooLarge(RegistryUnreachable):
    """A proxy in front of the registry refused a request body as too large (HTTP 413): the
    network path, not the registry, said no; retrying cannot help."""

    @classmethod
    def from_proxy(cls, host: str, size: int) -> BodyTooLarge:
        from idpwrap.units import human_size

        refused = f"a layer of {human_size(size)} ({size} bytes)" if size else "a layer"
        return cls(
            f"the proxy in front of {host} refused {refused} with 413 Request Entity Too"
            " Large: its request body limit (ingress-nginx proxy-body-size; idpbuilder sets"
            " 1024m) is below that; raise it with the annotation"
            " nginx.ingress.kubernetes.io/proxy-body-size"
            ' (e.g. "0" for no limit) on the registry\'s Ingress, or make the layer smaller'
        )


class OwnerNotFound(IdpwrapError):
    """The registry has no user or organization of that name (Gitea answers 404)."""

    exit_code = EXIT_NOT_FOUND

    @classmethod
    def on_gitea(cls, host: str, owner: str) -> OwnerNotFound:
        return cls(
            f"{host} has no user or organization {owner!r} (Gitea answered 404 Not found):"
            f" create the organization {owner} in Gitea first, or push to an existing owner"
            " with --owner (your user name, or an organization you may write to)"
        )


class RegistryError(IdpwrapError):
    """The registry answered, but not as a registry does (login's and doctor's own HTTPS)."""


class TlsNotTrusted(IdpwrapError):
    exit_code = EXIT_TLS


class PushFailed(IdpwrapError):
    pass


class TagMoved(PushFailed):
    """The push copied its image, but by the time it read the tag back another push had moved
    it: the tag serves another digest; this push's image stays pullable by its digest."""

    exit_code = EXIT_TAG_MOVED

    @classmethod
    def by_another_push(cls, reference: str, ours: str, served: str, more: int = 0) -> TagMoved:
        repository = reference.rsplit(":", 1)[0]  # HOST[:PORT]/REPO:TAG
        others = f" (and {more} more tag{'s' if more > 1 else ''})" if more else ""
        return cls(
            f"{reference} now serves {served}, not this push's {ours}: another push moved the"
            f" tag after this one copied{others}; this image stays pullable as"
            f" {repository}@{ours}; push again if the tag should serve it"
        )


class DeleteRefused(IdpwrapError):
    """``cache trim``: the registry does not allow deletes (HTTP 405, UNSUPPORTED)."""

    exit_code = EXIT_DELETE_REFUSED

    @classmethod
    def by(cls, where: str, code: str, dry_run_text: str) -> DeleteRefused:
        return cls(
            f"{where} does not allow deletes ({code}): its operator can enable them"
            " (docker-registry: storage: delete: enabled: true), or trim it server-side (a"
            f" Gitea cleanup rule, docs/build.md); {dry_run_text}"
        )


class SigningError(IdpwrapError):
    """A key pair could not be made, or a pushed image could not be signed."""


class NotVerified(IdpwrapError):
    """``verify``: the image carries no valid signature by the given key."""

    exit_code = EXIT_NOT_VERIFIED


class Interrupted(IdpwrapError):
    """SIGINT, SIGTERM or SIGHUP arrived; every process we started, and theirs, was stopped
    and temporary files removed."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, signal_name: str = "SIGINT", exit_code: int = EXIT_INTERRUPTED) -> None:
        super().__init__(f"interrupted by {signal_name}")
        self.exit_code = exit_code


class ConfigError(UsageError):
    """The config file (or an ``IDPWRAP_*`` variable) is not valid: the message names the
    file and line."""


class SetupError(IdpwrapError):
    """This machine or account is not ready for what was asked (rootless builds: subordinate
    IDs, user namespaces); the message gives the command that fixes it."""

    exit_code = EXIT_SETUP

    @classmethod
    def no_emulation(
        cls, platforms: list[str], qemu: list[str], host: str, binfmt_dir: str
    ) -> SetupError:
        names = ", ".join(platforms)
        mounted = os.path.exists(os.path.join(binfmt_dir, "status"))
        steps = ["install qemu-user-static (apt-get install qemu-user-static)"]
        if not mounted:
            steps.append(f"as root: mount -t binfmt_misc binfmt_misc {binfmt_dir}")
        confs = " ".join(f"/usr/lib/binfmt.d/{name}.conf" for name in qemu)
        steps.append(f"register it as root (/usr/lib/systemd/systemd-binfmt {confs})")
        return cls(
            f"the Containerfile has RUN steps and this {host} machine cannot run programs of"
            f" {names} (no binfmt_misc emulation for it): {'; '.join(steps)}; or 'scripts/setup'"
            " does all that. 'idpwrap doctor' lists the platforms this machine can build for"
        )
