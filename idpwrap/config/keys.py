"""The settings idpwrap knows: each key's environment variable and kind, and the one check
that turns a value (from the environment or the config file) into that kind."""

from __future__ import annotations

import os
import re

from idpwrap.errors import ConfigError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

PROGRESS_MODES = ("auto", "tty", "plain", "json", "none")
IMAGE_FORMATS = ("oci", "docker")
TLS_KEYS = ("insecure", "ca_file")
# key: (environment variable, kind); the order is the order of `idpwrap config show`.
KEYS: dict[str, tuple[str, str]] = {
    "registry": ("IDPWRAP_REGISTRY", "registry"),
    "owner": ("IDPWRAP_OWNER", "text"),
    "insecure": ("IDPWRAP_INSECURE", "bool"),
    "ca_file": ("IDPWRAP_CA_FILE", "path"),
    "store": ("IDPWRAP_STORE", "path"),
    "progress": ("IDPWRAP_PROGRESS", "progress"),
    "retry": ("IDPWRAP_RETRY", "count"),
    "timestamp": ("IDPWRAP_TIMESTAMP", "timestamp"),
    # buildah's and podman's own variable: the same setting means the same here
    "format": ("BUILDAH_FORMAT", "format"),
    "sign_by_sigstore_private_key": ("IDPWRAP_SIGN_BY_SIGSTORE_PRIVATE_KEY", "path"),
    "platform": ("IDPWRAP_PLATFORM", "platforms"),
    # push: attach the build's provenance (unsigned without a signing key)
    "provenance": ("IDPWRAP_PROVENANCE", "bool"),
    # push: ask the registry what the tag serves first, and skip the copy when it is the image
    "up_to_date_check": ("IDPWRAP_UP_TO_DATE_CHECK", "bool"),
    # push: seconds each question about a tag may take before the push goes on without it
    "tag_lookup_timeout": ("IDPWRAP_TAG_LOOKUP_TIMEOUT", "count"),
    # the build cache: HOST/PATH (or PATH on the registry, or auto: next to a --push image)
    "cache": ("IDPWRAP_CACHE", "text"),
    "cache_ttl": ("IDPWRAP_CACHE_TTL", "duration"),
    # the provenance's runDetails.builder.id (build/provenance.py)
    "builder_id": ("IDPWRAP_BUILDER_ID", "text"),
}
REGISTRY_KEYS = ("insecure", "ca_file", "owner")
# Go's durations as buildah's --cache-ttl takes them: 168h, 90m, 1h30m, 45s.
DURATION_RE = re.compile(r"(?:\d+(?:\.\d+)?(?:h|m|s|ms))+")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def parse_bool(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    return None


def convert(key: str, value: object, where: str, base: Path | None = None) -> object:
    """``value`` for ``key`` checked and normalised; ConfigError naming ``where`` if wrong.

    Text from the environment and YAML values both come through here. A relative path in the
    file is taken relative to the file's directory (``base``).
    """
    kind = KEYS[key][1]
    if kind == "bool":
        if isinstance(value, bool):
            return value
        parsed = parse_bool(value) if isinstance(value, str) else None
        if parsed is None:
            raise ConfigError(f"{where}: '{key}' must be true or false, not {value!r}")
        return parsed
    if kind == "count":
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}: '{key}' must be a whole number >= 0, not {value!r}")
        return value
    if kind == "timestamp":
        from idpwrap.build.timestamps import parse_setting

        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        try:
            return parse_setting(str(value), f"{where}: 'timestamp'")
        except UsageError as error:
            raise ConfigError(str(error)) from error
    if kind == "platforms" and isinstance(value, list):
        value = ",".join(str(item) for item in value)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: '{key}' must be a non-empty string, not {value!r}")
    value = value.strip()
    if kind == "progress" and value not in PROGRESS_MODES:
        raise ConfigError(
            f"{where}: '{key}' must be one of {', '.join(PROGRESS_MODES)}, not {value!r}"
        )
    if kind == "format" and value not in IMAGE_FORMATS:
        raise ConfigError(
            f"{where}: '{key}' must be one of {', '.join(IMAGE_FORMATS)}, not {value!r}"
        )
    if kind == "registry":
        from idpwrap.refs import parse_registry

        try:
            parse_registry(value)
        except UsageError as error:
            raise ConfigError(f"{where}: {error}") from error
    if kind == "duration" and not DURATION_RE.fullmatch(value):
        raise ConfigError(
            f"{where}: '{key}' must be a duration such as 168h, 30m or 1h30m, not {value!r}"
        )
    if kind == "platforms":
        from idpwrap.platforms import parse

        try:
            return ",".join(parse([value]))
        except UsageError as error:
            raise ConfigError(f"{where}: {error}") from error
    if kind == "path":
        path = os.path.expanduser(str(value))
        if base is not None and not os.path.isabs(path):
            path = os.path.join(base, path)
        return os.path.normpath(path)
    return value
