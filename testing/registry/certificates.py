"""A throwaway certificate authority and server certificate, and htpasswd files, for the
registries of the tests (openssl and htpasswd do the work; secrets go to them on stdin)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost signed by it.

    A registry started again in the same directory keeps them, as a restarted registry keeps
    its certificate: clients that trusted it go on trusting it.
    """
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    if ca_crt.exists() and crt.exists() and key.exists():
        return ca_crt, crt, key
    ext = directory / "server.ext"
    # What Python 3.13's VERIFY_X509_STRICT and OpenSSL 3.5 ask of a CA and a leaf: a CA
    # marked critical with keyCertSign, a leaf naming its issuer's key.
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:gitea.cnoe.localtest.me\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=idpwrap throwaway test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
            "-keyout",
            str(ca_key),
            "-out",
            str(ca_crt),
        ],
        **quiet,
    )
    subprocess.run(
        [
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(csr),
        ],
        **quiet,
    )
    subprocess.run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca_crt),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            str(ext),
            "-out",
            str(crt),
        ],
        **quiet,
    )
    return ca_crt, crt, key


def write_htpasswd(path: Path, username: str, password: str) -> None:
    # The password goes to htpasswd on stdin (-i), never on its command line.
    result = subprocess.run(
        ["htpasswd", "-niB", username], input=password, capture_output=True, text=True, check=True
    )
    path.write_text(result.stdout)
