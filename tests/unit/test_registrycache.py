"""The build cache in a registry: its command-line pieces and how buildah's output is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from idpwrap import log
from idpwrap.build import cachesteps
from idpwrap.build.registrycache import entry_tag, parse_repository
from idpwrap.config.keys import convert
from idpwrap.errors import ConfigError, UsageError
from idpwrap.tools import buildah

REMOTE_HIT_OUTPUT = """\
STEP 1/3: FROM scratch
STEP 2/3: COPY busybox /bin/busybox
--> Cache pulled from remote host:5000/o/c:ac65
--> Using cache fd307bec5538
STEP 3/3: COPY app.txt /app.txt
--> Using cache 1234
"""


def test_the_cache_flags_and_the_credentials_only_as_a_descriptor():
    options = buildah.BuildOptions(
        context=Path("/ctx"), containerfile=Path("/ctx/Containerfile"),
        cache_from=("h:1/o/c",), cache_to=("h:1/o/c",), cache_ttl="168h", authfile_fd=7,
        tls_verify=False, cert_dir="/private/certs",
    )  # fmt: skip
    argv = buildah.bud_argv(options, "oci:/x:build")
    joined = " ".join(argv)
    assert "--cache-from h:1/o/c --cache-to h:1/o/c --cache-ttl 168h" in joined
    assert "--authfile /dev/fd/7" in joined and "--tls-verify=false" in joined
    assert "--cert-dir /private/certs" in joined and "--layers" in argv


def test_no_ttl_without_a_cache_repository():
    options = buildah.BuildOptions(context=Path("/c"), containerfile=Path("/c/F"), cache_ttl="1h")
    assert "--cache-ttl" not in buildah.bud_argv(options, "oci:/x:build")


def test_repositories_and_entry_tags():
    registry, path = parse_repository("Gitea.example:8443/giteaadmin/app-buildcache")
    assert (registry.host, path) == ("gitea.example:8443", "giteaadmin/app-buildcache")
    for wrong in ("app-buildcache", "host:1/app:tag", "host:1/app@sha256:00"):
        with pytest.raises(UsageError):
            parse_repository(wrong)
    assert len(entry_tag("0" * 64)) <= 128  # the distribution spec's limit for a tag


def test_each_step_says_where_it_came_from(capsys):
    log.configure(True, False)
    try:
        shown: list[str] = []
        steps = cachesteps.StepSources(shown.append)
        steps(REMOTE_HIT_OUTPUT[:50])
        steps(REMOTE_HIT_OUTPUT[50:])
        steps.report()
    finally:
        log.configure(False, False)
    assert "".join(shown) == REMOTE_HIT_OUTPUT
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "idpwrap: step 2/3: COPY busybox /bin/busybox: from the registry (host:5000/o/c:ac65)",
        "idpwrap: step 3/3: COPY app.txt /app.txt: from the local layer cache",
    ]


@pytest.mark.parametrize(("version", "said"), [((1, 28), True), ((1, 29), False), ((1, 39), False)])
def test_an_arg_inside_a_stage_is_said_for_buildah_before_1_29(monkeypatch, version, said):
    monkeypatch.setattr(buildah, "version", lambda: version)
    text = "ARG BASE=scratch\nFROM scratch\nARG X=1\nRUN true\n"
    notice = cachesteps.arg_miss_notice(text)
    assert (notice is not None) == said
    if said:
        assert "line 3" in notice and "#4315" in notice and "1.29" in notice
    assert cachesteps.arg_miss_notice("ARG A=1\nFROM scratch\nRUN true\n") is None


def test_cache_ttl_is_a_go_duration():
    assert convert("cache_ttl", "1h30m", "here") == "1h30m"
    with pytest.raises(ConfigError):
        convert("cache_ttl", "7d", "here")
