"""The TLS context of idpwrap's own HTTPS (``login``, ``doctor``): trust what skopeo trusts.

skopeo verifies with Go's crypto/x509: the chain must reach a trusted root and the host name
must match a subjectAltName (never the subject's CN). Go does not ask a CA for a keyUsage
extension, nor for the other RFC 5280 details that Python 3.13 turns on by default with
``VERIFY_X509_STRICT``; a CA made by plain ``openssl req -x509`` has none, so with the default
context ``idpwrap login`` would refuse a registry that ``idpwrap push`` reaches with the same
flags. The flag is cleared; chain and host name verification stay as they are.
"""

from __future__ import annotations

import ssl


def client_context(cafile: str | None = None) -> ssl.SSLContext:
    """The system's CAs (plus ``cafile``), verified as Go verifies them."""
    context = ssl.create_default_context(cafile=cafile)
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    # Go has ignored the CN since 1.15: a certificate without a subjectAltName fails there.
    context.hostname_checks_common_name = False
    return context


def unverified_context() -> ssl.SSLContext:
    """``--insecure``: no chain, no host name, as skopeo's ``--tls-verify=false``."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
