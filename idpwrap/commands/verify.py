"""``idpwrap verify IMAGE --key cosign.pub``: does the registry's image carry our signature?
Without ``--key``: what does the unsigned provenance ``push --provenance`` attached say?"""

from __future__ import annotations

from idpwrap.commands.shared import add_credential_arguments, add_tls_arguments, read_password
from idpwrap.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from idpwrap.creds.credentials import Credentials
    from idpwrap.refs import Destination
    from idpwrap.sign import attest
    from idpwrap.tls import TlsTrust


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "image", metavar="IMAGE", help="[HOST/]OWNER/NAME[:TAG] or ...@sha256:... in a registry"
    )
    parser.add_argument(
        "--key", metavar="PUB",
        help="the public key (cosign.pub); without it the unsigned provenance (push"
        " --provenance) is read and checked, which proves nothing about who made the image",
    )  # fmt: skip
    parser.add_argument(
        "--registry", metavar="URL",
        help="the registry when IMAGE names none (default: $IDPWRAP_REGISTRY, the config file)",
    )  # fmt: skip
    add_tls_arguments(parser)
    add_credential_arguments(parser)
    parser.add_argument(
        "--source-uri", metavar="URI",
        help="refuse (exit 10) unless the provenance names this source repository",
    )  # fmt: skip
    parser.add_argument(
        "--source-commit", metavar="SHA",
        help="refuse (exit 10) unless the provenance names this commit (7+ hex digits)",
    )  # fmt: skip
    parser.add_argument(
        "--builder", metavar="ID",
        help="refuse (exit 10) unless the provenance names this builder.id",
    )  # fmt: skip


def execute(args: argparse.Namespace) -> int:

    from idpwrap.config import settings as config
    from idpwrap.creds import sources as creds
    from idpwrap.refs import destination_host, explicit_destination, parse_registry
    from idpwrap.sign import attest, verifying

    password = read_password(args, "verify")
    insecure = config.insecure_flag(args.insecure, args.tls_verify)
    named = destination_host(args.image)
    settings = config.for_push(
        source_host=named, registry=args.registry, owner=None, insecure=insecure,
        ca_file=args.ca_file, cert_dir=args.cert_dir, retry=None, progress=None,
    )  # fmt: skip
    registry = parse_registry(str(settings["registry"].value or named))
    text, _, digest = args.image.partition("@")
    destination = explicit_destination(text, registry)
    if named and args.registry and parse_registry(args.registry).host != named:
        raise UsageError(f"IMAGE names registry {named} but --registry says {registry.host}")
    if digest:
        reference = f"{destination.registry.host}/{destination.repository}@{digest}"
    else:
        reference = destination.reference
    credentials = creds.resolve(
        destination.registry.host, username=args.username, password=password,
        authfile=args.authfile or None,
    )  # fmt: skip
    trust = config.trust_of(settings, args.cert_dir)
    expected = attest.Expected(args.source_uri, args.source_commit, args.builder)
    if not args.key:
        return _unsigned(destination, digest, reference, trust, credentials, expected)
    signed, count = verifying.verify(reference, args.key, destination.registry, trust, credentials)
    # the provenance of the digest the signatures vouch for, checked before anything is said
    pinned = f"{destination.registry.host}/{destination.repository}@{signed}"
    statements = attest.verify(pinned, args.key, destination.registry, trust, credentials)
    provenance = attest.check(statements, signed, expected)
    print(f"Verified {reference}: signed by {args.key}"
          f" ({count} signature{'s' if count != 1 else ''})")  # fmt: skip
    print(f"Digest: {signed}")
    print(f"Provenance: {provenance}")
    return 0


def _unsigned(
    destination: Destination,
    digest: str,
    reference: str,
    trust: TlsTrust,
    credentials: Credentials | None,
    expected: attest.Expected,
) -> int:
    """No --key: the unsigned provenance found through the referrers API or tag schema."""
    from idpwrap.sign import attest, unsigned

    found, statements, how = unsigned.statements(
        destination.registry, destination.repository, digest or destination.tag, trust,
        credentials,
    )  # fmt: skip
    if not statements:
        raise unsigned.none_attached(reference, found)
    provenance = attest.check(statements, found, expected)
    print(f"Unsigned provenance of {reference}: no --key, so nothing says who made the image"
          " (anyone who may push there may replace it)")  # fmt: skip
    print(f"Digest: {found}")
    print(f"Provenance: UNSIGNED {provenance} (found through the {how})")
    return 0
