"""Starts and stops a registry that answers as idpbuilder's Gitea 1.24.3 behind ingress-nginx.

``start`` here, or ``localregistry.py start --gitea DIR [--body-limit BYTES]``; standard library
only. The front (front.py: TLS, body limit, auth, routing; content.py: uploads, manifests, tags;
model.py: rules, tokens, users) runs as its own process, ``python -m testing.gitea.front``.
No Gitea binary can be had on these machines, so its answers are modelled on Gitea's source
(tag v1.24.3; each rule below names its file). One TLS origin on 127.0.0.1 answers ``/v2/``,
``/v2/token`` and the OCI API; CNCF distribution on another loopback port (plain HTTP, no auth
of its own) keeps blobs and manifests, and the front forwards to it after its own checks.

- routers/api/packages/api.go (ContainerRoutes, reqPackageAccess, verifyAuth): the route
  table, GET-only ``/v2/token`` (POST is 404), Basic accepted on every endpoint, per-owner
  permission at request time with site admins allowed everywhere, the plain-text 401s.
- routers/api/packages/container/container.go: the challenge, the token answer, name and tag
  patterns, uploads (monolithic, chunked with Content-Range, mount fallback), manifest size.
- routers/api/packages/container/manifest.go: config and layers in the same image with the
  stated sizes, index children present, nested index invalid, tags stored lowercased.
- routers/api/packages/container/errors.go: the error codes and their statuses.
- services/packages/auth.go: the HS256 JWT of 24 h carrying user id and token scope.
- services/auth/basic.go: user:password, user:token, token as user name; password logins have
  the ``all`` scope (GetAccessScope).
- services/context/package.go, services/context/user.go, services/context/base.go: owner
  lookup (404 "Not found."), access modes for users and orgs, ``HTTPError`` bodies.
- modules/httplib/url.go (GuessCurrentHostURL): the realm from X-Forwarded-Proto and Host.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from pathlib import Path

from testing.gitea.model import DEFAULT_BODY_LIMIT, ORG, make_users
from testing.registry import distribution
from testing.registry.certificates import make_certificates
from testing.servers import free_port, helper_argv, spawn_helper, stop_pid


def start_front(directory: Path, config: dict) -> int:
    """The front as its own process; secrets reach it on stdin, never argv or a file."""
    argv = helper_argv("testing.gitea.front")
    return spawn_helper(argv, config, directory / "gitea-front.log", "the Gitea front")


def start(
    directory: Path, body_limit: int = DEFAULT_BODY_LIMIT, refuse_manifest_head: bool = False
) -> dict:
    """Distribution behind, the Gitea front on TLS; DIR/registry.json (0600) gets the facts.

    ``refuse_manifest_head``: a test's variant that answers every HEAD of a manifest with 401
    and still takes pushes."""
    directory.mkdir(parents=True, exist_ok=True)
    backend = distribution.start(directory / "backend", tls=False, auth=False)
    (directory / "backend" / "registry.json").unlink(missing_ok=True)
    try:
        ca, crt, key = make_certificates(directory)
        port = free_port()
        users = make_users()
        front_pid = start_front(
            directory,
            {
                "users": users,
                "secret": secrets.token_hex(32),
                "backend": backend.host,
                "body_limit": body_limit,
                "refuse_manifest_head": refuse_manifest_head,
                "uploads": str(Path(tempfile.mkdtemp(prefix="uploads-", dir=directory))),
                "port": port,
                "tls_cert": str(crt),
                "tls_key": str(key),
            },
        )
    except BaseException:
        backend.stop()
        raise
    facts = {
        "url": f"https://127.0.0.1:{port}",
        "host": f"127.0.0.1:{port}",
        "ca_file": str(ca),
        "pids": [front_pid, backend.pid],
        "port": port,
        "directory": str(directory),
        "backend": backend.url,
        "storage": backend.storage,
        "body_limit": body_limit,
        "org": ORG,
        "users": {
            name: {key: user[key] for key in ("password", "token", "read_token")}
            for name, user in users.items()
        },
    }
    path = directory / "registry.json"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(facts))
    return facts


def stop(facts: dict) -> None:
    for pid in facts.get("pids", []):
        stop_pid(pid)
