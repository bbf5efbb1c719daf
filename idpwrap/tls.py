"""How a registry's TLS certificate is trusted, as one value: ``TlsTrust``.

Every command that reaches a registry (push, verify, login, doctor) resolves ``--insecure``,
``--tls-verify``, ``--ca-file``, ``--cert-dir`` and the config file into one ``TlsTrust``; the
tools' flags are made from it in ``idpwrap.tools`` (skopeo, cosign), and idpwrap's own HTTPS
uses ``TlsTrust.context``.

That context trusts what skopeo trusts. skopeo verifies with Go's crypto/x509: the chain must
reach a trusted root and the host name must match a subjectAltName (never the subject's CN). Go
does not ask a CA for a keyUsage extension, nor for the other RFC 5280 details that Python 3.13
turns on by default with ``VERIFY_X509_STRICT``; a CA made by plain ``openssl req -x509`` has
none, so with the default context ``idpwrap login`` would refuse a registry that ``idpwrap
push`` reaches with the same flags. The flag is cleared; chain and host name verification stay.

A namedtuple rather than a dataclass, and paths as strings: this module is on every push's
path, where ``dataclasses`` and ``pathlib`` would cost about 30 ms of imports.
"""

from __future__ import annotations

import os
from collections import namedtuple

from idpwrap.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl

# Where skopeo (containers/image) and docker look for a registry's CAs when no --cert-dir is given.
SYSTEM_CERT_DIRS = ("/etc/containers/certs.d", "/etc/docker/certs.d")


class TlsTrust(namedtuple("TlsTrust", "insecure ca_file cert_dir", defaults=(False, None, None))):
    """Not verified at all (``insecure``), or the system's CAs plus a CA file (``ca_file``) or
    the ``*.crt`` of a directory (``cert_dir``, skopeo's ``--cert-dir``). Immutable."""

    __slots__ = ()
    insecure: bool
    ca_file: str | None
    cert_dir: str | None

    @classmethod
    def of(
        cls,
        insecure: bool = False,
        ca_file: str | os.PathLike[str] | None = None,
        cert_dir: str | os.PathLike[str] | None = None,
    ) -> TlsTrust:
        """From flags or settings: an empty path is no path, a ``Path`` becomes a string."""
        return cls(
            bool(insecure),
            os.fspath(ca_file) if ca_file else None,
            os.fspath(cert_dir) if cert_dir else None,
        )

    def describe(self) -> str:
        """What is trusted, in the words of the flags that chose it."""
        if self.insecure:
            return "not verified (--insecure)"
        if self.ca_file:
            return f"the system's CAs and --ca-file {self.ca_file}"
        if self.cert_dir:
            return f"the system's CAs and the *.crt in --cert-dir {self.cert_dir}"
        return "the system's CAs"

    def context(self, host: str, lazy_roots: bool = False) -> ssl.SSLContext:
        """The context of idpwrap's own HTTPS to ``host`` (``host[:port]``): what skopeo trusts,
        the system's ``certs.d/HOST`` included when no --cert-dir is given, and a client
        certificate (``*.cert`` with its ``*.key``) found there, as skopeo reads it.

        ``lazy_roots``: the system's CAs looked up in its hashed directory when a chain needs
        one, instead of parsing the whole bundle first (20 to 60 ms here, more than a push's
        up-to-date check takes otherwise). It trusts no more than the full context; a caller
        whose handshake it fails must try again with the full one (a system whose directory
        lacks some of the bundle's CAs)."""
        if self.insecure:
            return unverified_context()
        context = lazy_client_context() if lazy_roots else client_context()
        if self.ca_file is not None:
            context.load_verify_locations(cafile=self.ca_file)
        if self.cert_dir:
            directories = [self.cert_dir]
        else:
            directories = [os.path.join(base, host) for base in SYSTEM_CERT_DIRS]
        for directory in directories:
            if not os.path.isdir(directory):
                continue
            names = sorted(os.listdir(directory))
            for name in names:
                if name.endswith(".crt"):
                    context.load_verify_locations(cafile=os.path.join(directory, name))
            for name in names:
                key = os.path.join(directory, name.removesuffix(".cert") + ".key")
                if name.endswith(".cert") and os.path.isfile(key):
                    context.load_cert_chain(os.path.join(directory, name), key)
        return context

    def cert_dir_in(self, directory: str | os.PathLike[str] | None) -> str | None:
        """A directory of CAs for skopeo's ``--dest-cert-dir``: the --cert-dir itself, or one
        made in ``directory`` (private to the run) holding the --ca-file as ``ca.crt``; skopeo
        reads CAs only from a directory, and a ``*.key`` next to them would make it look for a
        client certificate, so the CA file is copied rather than its directory used."""
        if self.cert_dir:
            if not os.path.isdir(self.cert_dir):
                raise UsageError(f"--cert-dir {self.cert_dir} is not a directory")
            return self.cert_dir
        if self.ca_file:
            if not os.path.isfile(self.ca_file):
                raise UsageError(f"--ca-file {self.ca_file} does not exist")
            cert_dir = os.path.join(os.fspath(directory or "."), "certs")
            os.mkdir(cert_dir)
            with open(self.ca_file, "rb") as ca:
                data = ca.read()
            with open(os.path.join(cert_dir, "ca.crt"), "wb") as copy:
                copy.write(data)
            return cert_dir
        return None

    def bundle_in(self, directory: str) -> str | None:
        """One PEM file of CAs, for a tool that takes a file (cosign's ``--registry-cacert``):
        the --ca-file itself, or the --cert-dir's ``*.crt`` joined in ``directory``."""
        if self.ca_file:
            return self.ca_file
        if not self.cert_dir:
            return None
        bundle = os.path.join(directory, "ca-bundle.crt")
        with open(bundle, "wb") as out:
            for name in sorted(os.listdir(self.cert_dir)):
                if name.endswith(".crt"):
                    with open(os.path.join(self.cert_dir, name), "rb") as part:
                        out.write(part.read().rstrip(b"\n") + b"\n")
        return bundle


def client_context(cafile: str | None = None) -> ssl.SSLContext:
    """The system's CAs (plus ``cafile``), verified as Go verifies them."""
    import ssl

    context = ssl.create_default_context(cafile=cafile)
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    # Go has ignored the CN since 1.15: a certificate without a subjectAltName fails there.
    context.hostname_checks_common_name = False
    return context


def lazy_client_context() -> ssl.SSLContext:
    """As ``client_context()``, with the system's CAs read from its hashed CA directory
    (``/etc/ssl/certs``: OpenSSL opens the one file a chain names) rather than loaded whole
    from its bundle; the full context where there is no such directory."""
    import ssl

    capath = ssl.get_default_verify_paths().capath
    if not capath or not os.path.isdir(capath):
        return client_context()
    # create_default_context loads the default bundle only when given no location
    context = ssl.create_default_context(capath=capath)
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    context.hostname_checks_common_name = False
    return context


def unverified_context() -> ssl.SSLContext:
    """``--insecure``: no chain, no host name, as skopeo's ``--tls-verify=false``; no CA is
    loaded, since none is asked (loading the system's bundle alone costs 20 to 60 ms here)."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
