"""Docker's and podman's auth files, read as containers/image reads them, and credential helpers.

In order (the first one holding the registry wins):

1. ``--authfile FILE``: the command line's choice;
2. ``$DOCKER_AUTH_CONFIG``: a config.json's content itself, as GitLab CI and kaniko pass it;
   set for the job, it beats every file on the machine;
3. ``$REGISTRY_AUTH_FILE`` (unless 1.), else ``$XDG_RUNTIME_DIR/containers/auth.json``
   (``/run/containers/UID/auth.json`` without ``XDG_RUNTIME_DIR``), where podman login writes;
4. ``$XDG_CONFIG_HOME/containers/auth.json`` (default ``~/.config``), unless 1. or
   ``$REGISTRY_AUTH_FILE`` was given (containers/image skips it then too);
5. ``$DOCKER_CONFIG/config.json`` (a directory, as docker and kaniko read it), else
   ``~/.docker/config.json``.

In the variable and in each file: ``credHelpers[HOST]`` (the helper named for this registry),
then the ``auths[HOST]`` entry (base64 ``auth`` of ``USER:PASSWORD``, or an ``identitytoken``;
keys may carry a scheme or a path: ``https://HOST/v2/`` and ``HOST/namespace`` count for
``HOST``), then ``credsStore`` (docker's one helper for every registry, which skopeo itself does
not use).
A helper is run as ``docker-credential-NAME get`` with the registry on stdin and answers with
``{"Username": ..., "Secret": ...}`` on stdout; ``<token>`` as username means an identity token.
"""

from __future__ import annotations

import binascii
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from idpwrap import log
from idpwrap.creds.credentials import Credentials
from idpwrap.errors import CredentialsError, ToolNotRun
from idpwrap.tools import procs

HELPER_PREFIX = "docker-credential-"
HELPER_TIMEOUT_SECONDS = 60
IDENTITY_TOKEN_USERNAME = "<token>"
# Never handed to a credential helper: the secrets idpwrap itself reads from the environment.
SECRET_VARIABLES = ("GITEA_TOKEN", "GITEA_PASSWORD", "REGISTRY_PASSWORD", "DOCKER_AUTH_CONFIG")
# GitLab CI's and kaniko's way: the JSON of a docker config.json in the variable itself.
AUTH_CONFIG_VARIABLE = "DOCKER_AUTH_CONFIG"
DOCKER_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")


def candidate_files(
    environ: Mapping[str, str], authfile: str | os.PathLike[str] | None = None
) -> list[tuple[Path, bool]]:
    """The auth files to read, in order, each with whether the user named it explicitly."""
    files: list[tuple[Path, bool]] = []
    explicit = authfile or environ.get("REGISTRY_AUTH_FILE")
    home = environ.get("HOME") or (os.path.expanduser("~") if environ is os.environ else "")
    if explicit:
        files.append((Path(explicit), bool(authfile)))
    elif environ.get("XDG_RUNTIME_DIR"):
        files.append((Path(environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json", False))
    else:
        files.append((Path("/run/containers") / str(os.getuid()) / "auth.json", False))
    if not explicit:
        config_home = environ.get("XDG_CONFIG_HOME") or (
            os.path.join(home, ".config") if home else ""
        )
        if config_home:
            files.append((Path(config_home) / "containers" / "auth.json", False))
    if environ.get("DOCKER_CONFIG"):
        files.append((Path(environ["DOCKER_CONFIG"]) / "config.json", False))
    elif home:
        files.append((Path(home) / ".docker" / "config.json", False))
    return files


def lookup(
    registry_host: str,
    environ: Mapping[str, str],
    authfile: str | os.PathLike[str] | None = None,
    tried: list[str] | None = None,
) -> Credentials | None:
    """The first credentials for ``registry_host`` in DOCKER_AUTH_CONFIG and the auth files."""
    host = normalize_host(registry_host)
    read: list[str] = []
    variable = "not set" if not environ.get(AUTH_CONFIG_VARIABLE, "").strip() else "unread"
    try:
        for where, content in _contents(environ, authfile):
            if where == AUTH_CONFIG_VARIABLE:
                variable = f"nothing for {host}"
            else:
                read.append(where.removeprefix("auth file "))
            found = lookup_in(content, where, host, environ)
            if found is not None:
                return found
            log.info("credentials: nothing for %s in %s", host, where)
    finally:
        if tried is not None:
            tried.append(f"{AUTH_CONFIG_VARIABLE} ({variable})")
            tried.append(f"auth files ({', '.join(read)})" if read else "auth files (none found)")
    return None


def _contents(
    environ: Mapping[str, str], authfile: str | os.PathLike[str] | None
) -> Iterator[tuple[str, dict[str, object]]]:
    """(where, content) in order, each read only when the ones before had nothing: a broken
    file after the one that answers stays unread, as with containers/image."""
    files = candidate_files(environ, authfile)
    # --authfile is the command line's choice and comes first; the variable then beats files.
    if files and files[0][1]:
        yield from _files(files[:1])
        files = files[1:]
    content = load_variable(environ)
    if content is not None:
        yield AUTH_CONFIG_VARIABLE, content
    yield from _files(files)


def _files(files: list[tuple[Path, bool]]) -> Iterator[tuple[str, dict[str, object]]]:
    for path, named in files:
        content = load(path, named)
        if content is not None:
            yield f"auth file {path}", content


def load_variable(environ: Mapping[str, str]) -> dict[str, object] | None:
    """``$DOCKER_AUTH_CONFIG``'s JSON object; None when it is unset or empty. Its value is a
    secret: no message quotes it."""
    value = environ.get(AUTH_CONFIG_VARIABLE, "")
    if not value.strip():
        return None
    try:
        content = json.loads(value)
    except ValueError as error:
        where = f" (line {error.lineno})" if isinstance(error, json.JSONDecodeError) else ""
        raise CredentialsError(
            f"{AUTH_CONFIG_VARIABLE} is not valid JSON{where}: it must hold a docker"
            ' config.json\'s content, such as {"auths": {"HOST": {"auth": "BASE64"}}}, not a'
            " path (for a directory holding config.json, set DOCKER_CONFIG)"
        ) from None
    if not isinstance(content, dict):
        raise CredentialsError(
            f"{AUTH_CONFIG_VARIABLE} is not a JSON object: it must hold a docker config.json's"
            ' content, such as {"auths": {"HOST": {"auth": "BASE64"}}}'
        )
    return content


def load(path: Path, named: bool) -> dict[str, object] | None:
    """An auth file's JSON object; None if it does not exist (an error if it was named)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if named:
            raise CredentialsError(
                f"--authfile {path} does not exist: check the path, or log in with podman login"
                f" --authfile {path}"
            ) from None
        return None
    except IsADirectoryError:
        raise CredentialsError(f"auth file {path} is a directory, not a JSON file") from None
    except PermissionError as error:
        if not named and not os.access(path.parent, os.X_OK):
            # e.g. /run/containers/UID without XDG_RUNTIME_DIR: root's 0700 directory
            log.info("credentials: %s cannot be entered: no auth file there", path.parent)
            return None
        raise CredentialsError(f"cannot read auth file {path}: {error.strerror}") from None
    except OSError as error:
        raise CredentialsError(f"cannot read auth file {path}: {error.strerror}") from None
    if not data.strip():
        return {}
    try:
        content = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        where = f" (line {error.lineno})" if isinstance(error, json.JSONDecodeError) else ""
        raise CredentialsError(
            f"auth file {path} is not valid JSON{where}: fix it, or remove it and log in again"
        ) from None
    if not isinstance(content, dict):
        raise CredentialsError(
            f"auth file {path} is not a JSON object: fix it, or remove it and log in again"
        )
    return content


def normalize_host(key: str) -> str:
    """``https://Host:443/v2/`` -> ``host:443``; docker.io's aliases -> ``docker.io``."""
    value = key.strip()
    lowered = value.lower()
    for scheme in ("https://", "http://"):
        if lowered.startswith(scheme):
            value = value[len(scheme) :]
            break
    host = value.split("/", 1)[0].lower()
    return "docker.io" if host in DOCKER_HUB_ALIASES else host


def _section(content: Mapping[str, object], name: str, where: str) -> dict[str, object]:
    section = content.get(name)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise CredentialsError(
            f"{where}: {name!r} is not a JSON object: fix it, or remove it and log in again"
        )
    return section


def _matching_key(section: Mapping[str, object], host: str) -> str | None:
    """The key for ``host``: as written first, then with a scheme or path stripped."""
    if host in section:
        return host
    keys = [key for key in section if normalize_host(key) == host]
    keys.sort(key=lambda key: ("/" in key.split("://", 1)[-1].rstrip("/"), len(key)))
    return keys[0] if keys else None


def lookup_in(
    content: Mapping[str, object], where: str, host: str, environ: Mapping[str, str]
) -> Credentials | None:
    """``where`` names the content in messages: ``auth file PATH`` or ``DOCKER_AUTH_CONFIG``."""
    name = where.removeprefix("auth file ")
    helpers = _section(content, "credHelpers", where)
    key = _matching_key(helpers, host)
    if key is not None:
        helper = helpers[key]
        if not isinstance(helper, str) or not helper:
            raise CredentialsError(f"{where}: credHelpers[{key!r}] is not a helper name")
        found = run_helper(helper, host, environ, f"credHelpers in {name}", required=True)
        if found is not None:
            return found
    auths = _section(content, "auths", where)
    key = _matching_key(auths, host)
    if key is not None:
        entry = auths[key]
        if not isinstance(entry, dict):
            raise CredentialsError(f"{where}: auths[{key!r}] is not a JSON object")
        found = decode_entry(entry, where, key)
        if found is not None:
            return found
    store = content.get("credsStore")
    if store:
        if not isinstance(store, str):
            raise CredentialsError(f"{where}: credsStore is not a helper name")
        return run_helper(store, host, environ, f"credsStore in {name}", required=False)
    return None


def decode_entry(entry: Mapping[str, object], where: str, key: str) -> Credentials | None:
    """An ``auths`` entry; None for an empty one (docker writes those beside a helper)."""
    encoded = entry.get("auth") or ""
    identity_token = entry.get("identitytoken") or ""
    if not isinstance(encoded, str) or not isinstance(identity_token, str):
        raise CredentialsError(f"{where}: auths[{key!r}] has a non-string value")
    username, password = "", ""
    if encoded:
        try:
            decoded = binascii.a2b_base64(encoded.encode()).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if ":" not in decoded:
            raise CredentialsError(
                f"{where}: the 'auth' of {key!r} is not base64 of USER:PASSWORD: fix"
                " it, or remove it and log in again"
            )
        username, password = decoded.split(":", 1)
        password = password.strip("\n")
    source = f"{where} ({key})"
    if identity_token:
        return Credentials(
            username or IDENTITY_TOKEN_USERNAME, identity_token, source, identity_token=True
        )
    if username and password:
        return Credentials(username, password, source)
    return None


def helper_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """A helper needs its session (D-Bus, HOME, PATH, ...) but none of our own secrets."""
    return {key: value for key, value in environ.items() if key not in SECRET_VARIABLES}


def run_helper(
    name: str, host: str, environ: Mapping[str, str], where: str, *, required: bool
) -> Credentials | None:
    """``docker-credential-NAME get`` for ``host``; None when it has nothing for it.

    A helper named for this very registry (``credHelpers``) must exist; docker's ``credsStore``
    is used for every registry, so a missing one is a warning and the lookup goes on.
    """
    program = HELPER_PREFIX + name
    executable = procs.find_program(program, environ.get("PATH") or os.defpath)
    if executable is None:
        if required:
            raise CredentialsError(
                f"{program} (named in {where}) is not on PATH: install it, or remove the entry"
            )
        log.info("credentials: warning: %s (%s) is not on PATH; going on", program, where)
        return None
    log.debug("running %s get", executable)
    try:
        completed = procs.run(
            [executable, "get"],
            stdin=host.encode(),
            env=helper_environment(environ),
            timeout=HELPER_TIMEOUT_SECONDS,
        )
    except ToolNotRun as error:
        if error.timed_out:
            raise CredentialsError(
                f"{program} get did not answer within {HELPER_TIMEOUT_SECONDS} s ({where}): is"
                " it waiting for an unlock prompt?"
            ) from None
        raise CredentialsError(f"cannot run {program} ({where}): {error.reason}") from None
    output = completed.stdout.strip()
    if completed.exit_code != 0:
        said = output or completed.stderr.strip()
        if "credentials not found" in said.lower():
            log.info("credentials: %s has nothing for %s", program, host)
            return None
        reason = said.splitlines()[0][:200] if said else "no output"
        raise CredentialsError(
            f"{program} get failed for {host} (exit code {completed.exit_code}, {where}): {reason}"
        )
    try:
        answer = json.loads(output)
        username, secret = answer.get("Username") or "", answer.get("Secret") or ""
    except (ValueError, AttributeError):
        raise CredentialsError(
            f"{program} get printed no JSON object with Username and Secret ({where})"
        ) from None
    if not isinstance(username, str) or not isinstance(secret, str):
        raise CredentialsError(f"{program} get printed a non-string Username or Secret ({where})")
    if not secret:
        return None
    source = f"credential helper {program} ({where})"
    if username == IDENTITY_TOKEN_USERNAME or not username:
        return Credentials(IDENTITY_TOKEN_USERNAME, secret, source, identity_token=True)
    return Credentials(username, secret, source)
