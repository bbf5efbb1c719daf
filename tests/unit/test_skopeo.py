"""skopeo.py: the copy command line and what its failures mean to a user."""

from __future__ import annotations

from pathlib import Path

import pytest

from idpwrap.creds.sources import Credentials, temporary_auth_file
from idpwrap.errors import (
    EXIT_AUTH,
    EXIT_FAILED,
    EXIT_NETWORK,
    EXIT_TLS,
    AuthFailed,
    PushFailed,
    RegistryUnreachable,
    TlsNotTrusted,
)
from idpwrap.push.failures import classify_failure
from idpwrap.refs import Registry
from idpwrap.tls import TlsTrust
from idpwrap.tools.skopeo import CopyOptions, copy_argv, fatal_message

HTTPS = Registry("gitea.example:8443")
HTTP = Registry("127.0.0.1:5000", plain_http=True)
SOURCE = "oci:/tmp/idpwrap-push-x/layout:image"
DEST = "docker://gitea.example:8443/giteaadmin/myapp:v1"
ENV_SOURCE = "environment (GITEA_USERNAME, GITEA_TOKEN)"


def options(**changes) -> CopyOptions:
    values = {
        "registry": HTTPS,
        "authfile_fd": 9,
        "digestfile": Path("/tmp/work/digest"),
    }
    values.update(changes)
    return CopyOptions(**values)


def value_after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def fatal(msg: str) -> str:
    """stderr as skopeo 1.9.3 writes it: logrus text format, quotes escaped."""
    escaped = msg.replace('"', '\\"')
    return f'time="2024-05-01T12:00:00Z" level=fatal msg="{escaped}"\n'


# -- copy_argv ----------------------------------------------------------------------------


def test_copy_argv_defaults():
    argv = copy_argv(SOURCE, DEST, options())
    assert argv[:2] == ["skopeo", "copy"]
    assert argv[-2:] == [SOURCE, DEST]
    assert value_after(argv, "--authfile") == "/dev/fd/9"
    assert value_after(argv, "--digestfile") == "/tmp/work/digest"
    assert value_after(argv, "--retry-times") == "3"
    assert "--preserve-digests" in argv
    assert not any(arg.startswith("--dest-tls-verify") for arg in argv)
    assert "--dest-cert-dir" not in argv


def test_copy_argv_insecure_turns_verification_off():
    argv = copy_argv(SOURCE, DEST, options(tls=TlsTrust(insecure=True)))
    assert "--dest-tls-verify=false" in argv
    assert argv.index("--dest-tls-verify=false") < argv.index(SOURCE)


def test_copy_argv_plain_http_turns_verification_off():
    argv = copy_argv(SOURCE, "docker://127.0.0.1:5000/app:v1", options(registry=HTTP))
    assert "--dest-tls-verify=false" in argv


def test_copy_argv_cert_dir_and_retries():
    argv = copy_argv(SOURCE, DEST, options(tls=TlsTrust(cert_dir="/tmp/certs"), retry_times=5))
    assert value_after(argv, "--dest-cert-dir") == "/tmp/certs"
    assert value_after(argv, "--retry-times") == "5"
    assert not any(arg.startswith("--dest-tls-verify") for arg in argv)


def test_copy_argv_never_carries_the_secret():
    secret = "tok-abcdef-0123456789"
    credentials = Credentials("giteaAdmin", secret, ENV_SOURCE)
    with temporary_auth_file(HTTPS.host, credentials) as fd:
        argv = copy_argv(SOURCE, DEST, options(authfile_fd=fd, tls=TlsTrust(insecure=True)))
    assert value_after(argv, "--authfile") == f"/dev/fd/{fd}"
    joined = " ".join(argv)
    assert secret not in joined
    assert "giteaAdmin" not in joined
    assert not any(arg.startswith(("--dest-creds", "--creds", "--dest-password")) for arg in argv)


# -- fatal_message ------------------------------------------------------------------------


def test_fatal_message_unescapes_quotes():
    stderr = "Getting image source signatures\n" + fatal(
        "trying to reuse blob sha256:9edd at destination: pinging container registry"
        ' 127.0.0.1:5000: Get "https://127.0.0.1:5000/v2/": http: server gave HTTP'
        " response to HTTPS client"
    )
    message = fatal_message(stderr)
    assert message.startswith("trying to reuse blob sha256:9edd at destination")
    assert 'Get "https://127.0.0.1:5000/v2/"' in message
    assert "\\" not in message
    assert message.endswith("server gave HTTP response to HTTPS client")


def test_fatal_message_takes_the_last_fatal_line():
    stderr = fatal("first") + 'time="x" level=warning msg="not this"\n' + fatal("second")
    assert fatal_message(stderr) == "second"


def test_fatal_message_without_a_fatal_line_is_the_last_line():
    assert fatal_message("Error: something odd\n  the real reason  \n\n") == "the real reason"
    assert fatal_message("") == "no error output"


# -- classify_failure ---------------------------------------------------------------------


def test_x509_is_tls_not_trusted():
    stderr = fatal(
        "trying to reuse blob sha256:9edd at destination: pinging container registry"
        ' gitea.example:8443: Get "https://gitea.example:8443/v2/": x509: certificate'
        " signed by unknown authority"
    )
    error = classify_failure(stderr, 1, HTTPS, ENV_SOURCE)
    assert isinstance(error, TlsNotTrusted)
    assert error.exit_code == EXIT_TLS == 6
    message = str(error)
    assert "--insecure" in message
    assert "--ca-file" in message
    assert "gitea.example:8443" in message
    assert "x509: certificate signed by unknown authority" in message


def test_certificate_verify_failure_without_x509_prefix():
    stderr = fatal("tls: failed to verify certificate: certificate has expired")
    assert isinstance(classify_failure(stderr, 1, HTTPS, ENV_SOURCE), TlsNotTrusted)


def test_http_answer_to_https_hints_plain_http():
    stderr = fatal(
        'pinging container registry 127.0.0.1:5000: Get "https://127.0.0.1:5000/v2/":'
        " http: server gave HTTP response to HTTPS client"
    )
    error = classify_failure(stderr, 1, Registry("127.0.0.1:5000"), ENV_SOURCE)
    assert isinstance(error, TlsNotTrusted)
    assert error.exit_code == EXIT_TLS
    assert "http://127.0.0.1:5000" in str(error)


@pytest.mark.parametrize(
    "reason",
    [
        "unauthorized: authentication required",
        "authentication required",
        "invalid status code from registry 401 (Unauthorized)",
        "unexpected http status 401",
        "unable to retrieve auth token: invalid username/password: unauthorized",
    ],
)
def test_refused_credentials_name_their_source(reason):
    stderr = fatal(f"trying to reuse blob sha256:9edd at destination: {reason}")
    error = classify_failure(stderr, 1, HTTPS, ENV_SOURCE)
    assert isinstance(error, AuthFailed)
    assert error.exit_code == EXIT_AUTH == 4
    assert ENV_SOURCE in str(error)
    assert "gitea.example:8443" in str(error)


def test_anonymous_refusal_lists_what_was_tried():
    stderr = fatal("writing blob: initiating layer upload: unauthorized: authentication required")
    error = classify_failure(stderr, 1, HTTPS, "")
    assert isinstance(error, AuthFailed)
    message = str(error)
    for tried in ("--username", "--password-stdin", "GITEA_USERNAME", "GITEA_TOKEN",
                  "GITEA_PASSWORD", "REGISTRY_USERNAME", "REGISTRY_PASSWORD"):  # fmt: skip
        assert tried in message


def test_denied_is_auth_failed():
    stderr = fatal(
        "writing manifest: uploading manifest v1 to gitea.example:8443/other/app: denied:"
        " requested access to the resource is denied"
    )
    error = classify_failure(stderr, 1, HTTPS, ENV_SOURCE)
    assert isinstance(error, AuthFailed)
    assert error.exit_code == EXIT_AUTH
    assert ENV_SOURCE in str(error)
    assert "requested access to the resource is denied" in str(error)


def test_anonymous_denied_does_not_show_an_empty_source():
    stderr = fatal("denied: requested access to the resource is denied")
    message = str(classify_failure(stderr, 1, HTTPS, ""))
    assert "credentials from  " not in message
    assert "GITEA_USERNAME" in message


@pytest.mark.parametrize(
    "reason",
    [
        'Get "https://gitea.example:8443/v2/": dial tcp 127.0.0.1:8443: connect: connection'
        " refused",
        'Get "https://nohost.example/v2/": dial tcp: lookup nohost.example: no such host',
        "dial tcp 10.1.1.1:443: i/o timeout",
        'Patch "https://gitea.example:8443/v2/x/blobs/uploads/1": EOF',
    ],
)
def test_network_failures_are_registry_unreachable(reason):
    error = classify_failure(fatal(f"pinging container registry: {reason}"), 1, HTTPS, "")
    assert isinstance(error, RegistryUnreachable)
    assert error.exit_code == EXIT_NETWORK == 5
    assert "https://gitea.example:8443" in str(error)


def test_connection_refused_names_the_plain_http_url():
    error = classify_failure(fatal("dial tcp: connect: connection refused"), 1, HTTP, "")
    assert "http://127.0.0.1:5000" in str(error)


def test_eof_inside_a_word_is_not_a_network_failure():
    stderr = fatal(
        "writing manifest: uploading manifest v1 to gitea.example:8443/geoffrey/app:"
        " manifest invalid: manifest invalid"
    )
    error = classify_failure(stderr, 1, HTTPS, ENV_SOURCE)
    assert not isinstance(error, RegistryUnreachable)
    assert isinstance(error, PushFailed)


def test_anything_else_is_push_failed_with_skopeo_reason():
    stderr = fatal("writing manifest: manifest invalid: manifest blob unknown")
    error = classify_failure(stderr, 2, HTTPS, ENV_SOURCE)
    assert type(error) is PushFailed
    assert error.exit_code == EXIT_FAILED == 1
    assert "exit code 2" in str(error)
    assert "manifest blob unknown" in str(error)


# skopeo 1.9.3's own words for Gitea 1.24.3's answers, seen against the Gitea mode.
GITEA_TEXTS = {
    "unknown_owner": 'time="x" level=fatal msg="writing blob: initiating layer upload to'
    ' /v2/nosuch/hello/blobs/uploads/ in 127.0.0.1:5000: StatusCode: 404, Not found.\\n"',
    "body_limit": 'time="x" level=fatal msg="writing blob: uploading layer chunked: StatusCode:'
    ' 413, <html>\\r\\n<head><title>413 Request Entity Too Large<..."',
    "no_permission": 'time="x" level=fatal msg="writing blob: initiating layer upload to'
    ' /v2/platform/app/blobs/uploads/ in 127.0.0.1:5000: unauthorized: authentication required"',
    # skopeo 1.18.0 (Debian 13) quotes the body
    "unknown_owner_1_18": 'time="x" level=fatal msg="writing blob: initiating layer upload to'
    ' /v2/nosuch/hello/blobs/uploads/ in 127.0.0.1:5000: StatusCode: 404, \\"Not found.\\\\n\\""',
    "wrong_password": 'time="x" level=fatal msg="trying to reuse blob sha256:aa at destination:'
    " unable to retrieve auth token: invalid username/password: unauthorized: authentication"
    ' required"',
}


@pytest.mark.parametrize("text", ["unknown_owner", "unknown_owner_1_18"])
def test_gitea_unknown_owner_is_not_found(text):
    from idpwrap.errors import OwnerNotFound

    error = classify_failure(GITEA_TEXTS[text], 1, HTTPS, ENV_SOURCE)
    assert isinstance(error, OwnerNotFound)
    assert "no user or organization 'nosuch'" in str(error)


def test_ingress_413_names_the_size_and_the_annotation():
    from idpwrap.errors import BodyTooLarge

    error = classify_failure(GITEA_TEXTS["body_limit"], 1, HTTPS, ENV_SOURCE, pending_size=2048)
    assert isinstance(error, BodyTooLarge) and isinstance(error, RegistryUnreachable)
    assert "2.0 KiB (2048 bytes)" in str(error)
    assert "nginx.ingress.kubernetes.io/proxy-body-size" in str(error)


def test_only_a_plain_unauthorized_after_a_token_is_unclear():
    from idpwrap.push.failures import refusal_is_unclear

    assert refusal_is_unclear(GITEA_TEXTS["no_permission"])
    assert not refusal_is_unclear(GITEA_TEXTS["wrong_password"])
    assert not refusal_is_unclear('level=fatal msg="denied: requested access is denied"')


def test_a_damaged_store_blob_names_image_blob_and_store():
    from idpwrap.errors import StoreError

    blob = "sha256:" + "a" * 64
    missing = (
        f'level=fatal msg="reading blob {blob}: open /tmp/idpwrap-push-1/layout/blobs/sha256/'
        f'{"a" * 64}: no such file or directory"'
    )
    error = classify_failure(missing, 1, HTTPS, ENV_SOURCE, image="hello:v1", store_root="/s")
    assert isinstance(error, StoreError)
    assert str(error).startswith(f"blob {blob} of hello:v1 in the store /s is missing")
    altered = (
        'level=fatal msg="writing blob: Patch \\"https://h/v2/x/blobs/uploads/1\\": happened'
        f' during read: Digest did not match, expected {blob}, got sha256:{"b" * 64}"'
    )
    error = classify_failure(altered, 1, HTTPS, ENV_SOURCE, image="hello:v1", store_root="/s")
    assert f"is damaged (its content is sha256:{'b' * 64})" in str(error)


@pytest.mark.parametrize(
    "said",
    [
        "invalid status code from registry 404 (Not Found)",  # skopeo 1.9.3, 1.18.0
        "received unexpected HTTP status: 404 Not Found",  # skopeo 1.22.0
    ],
)
def test_identity_token_against_gitea_says_there_is_no_oauth_endpoint(said):
    stderr = (
        'level=fatal msg="trying to reuse blob sha256:aa at destination: Trying to obtain access'
        f' token: {said}"'
    )
    error = classify_failure(stderr, 1, HTTPS, "auth file /a.json")
    assert isinstance(error, AuthFailed)
    assert "no OAuth2 token endpoint" in str(error) and "identity token from auth file" in str(
        error
    )
