"""A throwaway registry on 127.0.0.1 for the demo, the benchmarks and by hand, as a command.

scripts/localregistry.py runs ``main``; standard library only, so it runs before the package is
installed:

    localregistry.py start DIR [--user U] [--plain-http] [--no-auth] [--token]  # facts as JSON
    localregistry.py start --gitea DIR [--body-limit BYTES]  # Gitea 1.24.3 as idpbuilder runs it
    localregistry.py stop DIR

Plain ``start`` runs CNCF distribution with TLS (a throwaway CA) and htpasswd; ``--token`` makes it
Gitea-shaped with our token server (testing.registry.tokens); ``--gitea`` answers as idpbuilder's
Gitea behind ingress-nginx (testing.gitea, which models each answer on Gitea's source).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from testing.gitea import registry as gitea
from testing.registry import distribution
from testing.servers import stop_pid


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="localregistry.py", description=(__doc__ or "").splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start_parser = sub.add_parser("start")
    start_parser.add_argument("directory", type=Path)
    start_parser.add_argument("--user", default="giteaAdmin")
    start_parser.add_argument("--plain-http", action="store_true")
    start_parser.add_argument("--no-auth", action="store_true")
    start_parser.add_argument(
        "--token", action="store_true", help="Gitea-shaped: auth: token and our token server"
    )
    start_parser.add_argument(
        "--gitea", action="store_true", help="Gitea 1.24.3 behind ingress-nginx (testing.gitea)"
    )
    start_parser.add_argument(
        "--body-limit", type=int, default=None, help="with --gitea: the ingress proxy-body-size"
    )
    stop_parser = sub.add_parser("stop")
    stop_parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    if args.command == "start" and args.gitea:
        limit = args.body_limit or gitea.DEFAULT_BODY_LIMIT
        facts = gitea.start(args.directory, limit)
        print(json.dumps({key: facts[key] for key in ("url", "host", "ca_file", "pids")}))
        return 0
    if args.command == "start":
        registry = distribution.start(
            args.directory,
            args.user,
            tls=not args.plain_http,
            auth=not args.no_auth,
            token=args.token,
        )
        print(json.dumps(asdict(registry)))
        return 0
    facts = json.loads((args.directory / "registry.json").read_text())
    for pid in facts.get("pids", []):  # the Gitea mode: its front and the registry behind
        stop_pid(pid)
    if "pid" in facts:
        stop_pid(facts["pid"])
    if facts.get("token_pid"):
        stop_pid(facts["token_pid"])
    return 0
