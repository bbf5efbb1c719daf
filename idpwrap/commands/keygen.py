"""``idpwrap keygen``: a sigstore key pair, PREFIX.key and PREFIX.pub, for signing on push."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output-prefix", default="cosign", metavar="PREFIX",
        help="write PREFIX.key (private, 0600) and PREFIX.pub (default: cosign)",
    )  # fmt: skip
    parser.add_argument(
        "--passphrase-file", metavar="FILE",
        help="the passphrase that encrypts the private key (default: $IDPWRAP_SIGN_PASSPHRASE,"
        " else a prompt)",
    )  # fmt: skip


def execute(args: argparse.Namespace) -> int:
    from idpwrap.sign import keys as sigstore

    passphrase = sigstore.read_passphrase(args.passphrase_file, confirm=True, what="new key")
    private, public, tool = sigstore.generate(args.output_prefix, passphrase)
    print(f"Private key: {private} (keep it secret; sign with"
          f" idpwrap push --sign-by-sigstore-private-key {private})")  # fmt: skip
    print(f"Public key: {public} (verify with idpwrap verify IMAGE --key {public})")
    print(f"Made by: {tool}")
    return 0
