"""idpbuilder's own Gitea credentials, for idpbuilder's Gitea when nothing else gave any.

``idpbuilder get secrets -p gitea -o json`` prints a list of secrets; versions differ in shape:
``[{"data": {"username": ..., "password": ..., "token": ...}}]`` or the same keys at the top
level of the first item. The password is preferred; a token is taken when there is none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from idpwrap import log
from idpwrap.creds.credentials import Credentials

GITEA_HOST = "gitea.cnoe.localtest.me"
DEFAULT_USERNAME = "giteaAdmin"
COMMAND = ("idpbuilder", "get", "secrets", "-p", "gitea", "-o", "json")
TIMEOUT_SECONDS = 60
SOURCE = "idpbuilder (idpbuilder get secrets -p gitea)"


def serves(registry_host: str) -> bool:
    """Whether ``registry_host`` (``host[:port]``) is idpbuilder's Gitea."""
    return registry_host.lower().split(":", 1)[0] == GITEA_HOST


def parse(output: str) -> tuple[str, str] | None:
    """(username, password or token) from idpbuilder's JSON, either shape; None if absent."""
    try:
        secrets = json.loads(output)
    except ValueError:
        return None
    if isinstance(secrets, dict):
        secrets = [secrets]
    if not isinstance(secrets, list) or not secrets or not isinstance(secrets[0], dict):
        return None
    first = secrets[0]
    fields = first.get("data") if isinstance(first.get("data"), dict) else first
    secret = fields.get("password") or fields.get("token") or ""
    username = fields.get("username") or DEFAULT_USERNAME
    if not isinstance(secret, str) or not isinstance(username, str) or not secret:
        return None
    return username, secret


def lookup(environ: Mapping[str, str], tried: list[str] | None = None) -> Credentials | None:
    """Run idpbuilder if it is on PATH; a failure is a warning, and the push goes on."""
    from idpwrap.creds.authfiles import helper_environment
    from idpwrap.errors import ToolNotRun
    from idpwrap.tools import procs

    executable = procs.find_program(COMMAND[0], environ.get("PATH") or os.defpath)
    if executable is None:
        if tried is not None:
            tried.append("idpbuilder (not on PATH)")
        return None
    if tried is not None:
        tried.append("idpbuilder get secrets -p gitea")
    log.debug("running %s", " ".join(COMMAND))
    try:
        completed = procs.run(
            [executable, *COMMAND[1:]],
            env=helper_environment(environ),  # its kubeconfig, not our secrets
            timeout=TIMEOUT_SECONDS,
        )
    except ToolNotRun as error:
        log.info("credentials: warning: idpbuilder failed (%s); going on", error)
        return None
    if completed.exit_code != 0:
        said = completed.stderr.strip().splitlines()
        log.info(
            "credentials: warning: idpbuilder get secrets failed (exit code %d%s); going on",
            completed.exit_code,
            f": {said[-1][:200]}" if said else "",
        )
        return None
    found = parse(completed.stdout)
    if found is None:
        log.info("credentials: warning: idpbuilder printed no Gitea username and password")
        return None
    return Credentials(found[0], found[1], SOURCE)
