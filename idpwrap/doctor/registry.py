"""doctor's registry check: the registry a push would use, probed (``GET /v2/``: reachable,
TLS trusted, a registry), and the credentials a push would use tried against it (credcheck),
both with the TLS trust a push would use."""

from __future__ import annotations

from collections.abc import Mapping

from idpwrap.doctor.result import ERROR, OK, WARNING, Check
from idpwrap.errors import IdpwrapError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.tls import TlsTrust

PROBE_TIMEOUT = 5


def registry_probe(url: str, trust: TlsTrust, where: str) -> Check:
    """``GET /v2/``: reachable, TLS trusted, a registry (200, or 401 with a challenge)."""
    import ssl
    import urllib.error
    import urllib.parse
    import urllib.request

    context = None
    if url.startswith("https://"):
        context = trust.context(urllib.parse.urlsplit(url).netloc)
    request = urllib.request.Request(f"{url}/v2/", headers={"User-Agent": "idpwrap-doctor"})
    tls_fix = (
        "trust its CA: --ca-file PEM, or ca_file: in the config file (registries: HOST:"
        " ca_file:); or skip verification with --insecure / insecure: true"
    )
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT, context=context) as answer:
            status, challenge = answer.status, answer.headers.get("WWW-Authenticate", "")
    except urllib.error.HTTPError as error:
        status, challenge = error.code, error.headers.get("WWW-Authenticate", "")
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, ssl.SSLCertVerificationError):
            detail = reason.verify_message or str(reason)
            return Check("registry", ERROR, f"{url} ({where}): TLS not trusted: {detail}", tls_fix)
        if isinstance(reason, ssl.SSLError):
            text = str(reason)
            if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
                plain = url.replace("https://", "http://", 1)
                return Check(
                    "registry", ERROR, f"{url} ({where}) speaks plain HTTP, not TLS",
                    f"use {plain}",
                )  # fmt: skip
            return Check("registry", ERROR, f"{url} ({where}): TLS failed: {text}", tls_fix)
        return Check(
            "registry", ERROR, f"{url} ({where}) cannot be reached: {reason}",
            "start the registry (idpbuilder create), or point idpwrap at another:"
            " --registry, IDPWRAP_REGISTRY or registry: in the config file",
        )  # fmt: skip
    scheme = challenge.split(" ", 1)[0] if challenge else ""
    verified = "TLS not verified (insecure)" if trust.insecure else "TLS trusted"
    if url.startswith("http://"):
        verified = "plain HTTP"
    if status == 200 or (status == 401 and scheme):
        asks = f", asks for {scheme} credentials" if status == 401 else ""
        return Check("registry", OK, f"{url} ({where}): reachable, {verified}{asks}")
    return Check(
        "registry", ERROR, f"{url} ({where}) answered {status} to /v2/: not a registry API",
        "check the URL: the registry's host and port, not a web page",
    )  # fmt: skip


def registry_and_credentials(
    registry: str | None,
    tls_flags: Mapping[str, object] | None = None,
    authfile: str | None = None,
) -> list[Check]:
    """The registry a push would use, and its credentials tried against it (credcheck).

    ``tls_flags``: the command line's ``insecure``, ``ca_file`` and ``cert_dir`` (None: not
    given), resolved with the config file as for a push."""
    from idpwrap.config import settings as config
    from idpwrap.creds import sources as creds
    from idpwrap.doctor import credentials as credcheck
    from idpwrap.refs import parse_registry

    tls_flags = tls_flags or {}
    try:
        settings = config.effective_settings(config.load(), registry, tls_flags=tls_flags)
        chosen = parse_registry(str(settings["registry"].value))
        trust = config.trust_of(settings, tls_flags.get("cert_dir"))
    except IdpwrapError as error:
        return [Check("config", ERROR, str(error), "fix the config file or the flag")]
    source = settings["registry"].source
    where = "default" if source == "default" else f"from {source}"
    probe = registry_probe(chosen.url, trust, where)
    checks = [probe]
    try:
        found = creds.resolve(chosen.host, authfile=authfile)
    except IdpwrapError as error:
        checks.append(Check("credentials", ERROR, str(error), "see the message"))
        return checks
    if found is None:
        checks.append(
            Check(
                "credentials",
                WARNING,
                f"none found for {chosen.host}: pushes go anonymously",
                "idpwrap login, or set GITEA_USERNAME and GITEA_TOKEN",
            )
        )
    elif probe.status == ERROR:
        checks.append(
            Check("credentials", WARNING, f"{found.source} (user {found.username}): not tried,"
                  f" {chosen.host} is not usable", "fix the registry check first")
        )  # fmt: skip
    else:
        checks.append(credcheck.check(chosen, found, trust))
    return checks
