"""Each failure a user can act on: its exit code and one line that says what to do, no traceback."""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path

import pytest

from testing.cli import Cli, Result, python_module_command
from testing.images import make_context, read_index, store_digests
from testing.servers import free_port

pytestmark = pytest.mark.integration

FAILING_CONTAINERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN /bin/busybox echo the step before the failing one
RUN /bin/busybox false
"""


def error_line(result: Result, exit_code: int) -> str:
    """The run failed with ``exit_code`` and one ``idpwrap: error:`` line, and no traceback."""
    assert result.returncode == exit_code, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    lines = result.error_lines()
    assert len(lines) == 1, result.describe()
    return lines[0]


# -- push ----------------------------------------------------------------------------------


def test_untrusted_tls_exits_6_and_names_the_flags(prebuilt_cli: Cli, registry) -> None:
    result = prebuilt_cli.run(
        "push",
        "--registry",
        registry.url,
        "hello:v1",
        "giteaadmin/errors-tls:v1",
        credentials=registry.credentials,
    )
    line = error_line(result, 6)
    assert "--insecure" in line and "--ca-file" in line, line
    assert registry.host in line


def test_insecure_skips_verification(prebuilt, prebuilt_cli: Cli, registry) -> None:
    result = prebuilt_cli.run(
        "push",
        "--registry",
        registry.url,
        "--insecure",
        "--progress",
        "none",
        "hello:v1",
        "giteaadmin/errors-insecure:v1",
        credentials=registry.credentials,
    )
    assert result.returncode == 0, result.describe()
    assert "--insecure" in result.stderr  # the notice that verification is off
    digest = prebuilt.hello.digest
    assert f"Pushed {registry.host}/giteaadmin/errors-insecure:v1@{digest}" in result.stdout
    assert registry.client().manifest_digest("giteaadmin/errors-insecure", "v1") == digest


def test_wrong_password_exits_4_names_the_source_not_the_secret(
    prebuilt_cli: Cli, registry
) -> None:
    wrong = "wrong-" + secrets.token_urlsafe(12)
    result = prebuilt_cli.run(
        "push",
        "--registry",
        registry.url,
        *registry.tls_options(),
        "hello:v1",
        "giteaadmin/errors-auth:v1",
        credentials=(registry.username, wrong),
    )
    # Checked before anything prints the output, which would put the secret in the test log.
    leaked = wrong in result.stdout or wrong in result.stderr
    assert not leaked, "the password is in idpwrap's output"
    assert result.returncode == 4
    assert "Traceback" not in result.stderr
    lines = result.error_lines()
    assert len(lines) == 1
    assert "GITEA_TOKEN" in lines[0], lines[0]


def test_no_credentials_exits_4_and_says_what_was_tried(prebuilt_cli: Cli, registry) -> None:
    result = prebuilt_cli.run(
        "push",
        "--registry",
        registry.url,
        *registry.tls_options(),
        "hello:v1",
        "giteaadmin/errors-anonymous:v1",
    )
    line = error_line(result, 4)
    for tried in ("GITEA_USERNAME", "GITEA_TOKEN", "REGISTRY_USERNAME", "--password-stdin"):
        assert tried in line, line


def test_unreachable_registry_exits_5(prebuilt_cli: Cli, registry) -> None:
    port = free_port()  # bound and released: nobody listens there
    result = prebuilt_cli.run(
        "push",
        "--registry",
        f"https://127.0.0.1:{port}",
        *registry.tls_options(),
        "--retry",
        "0",
        "hello:v1",
        credentials=registry.credentials,
    )
    line = error_line(result, 5)
    assert f"127.0.0.1:{port}" in line, line


def test_https_to_a_plain_http_registry_exits_6_and_suggests_http(
    prebuilt_cli: Cli, http_registry
) -> None:
    result = prebuilt_cli.run(
        "push",
        "--registry",
        f"https://{http_registry.host}",
        "hello:v1",
        "giteaadmin/errors-scheme:v1",
        credentials=http_registry.credentials,
    )
    line = error_line(result, 6)
    assert f"http://{http_registry.host}" in line, line


@pytest.mark.parametrize(
    ("source", "close"),
    [("thre:v1", "three:v1"), ("giteaAdmin/hello:v2", "hello:v1")],
)
def test_image_not_in_store_exits_3_with_close_names(
    prebuilt_cli: Cli, registry, source: str, close: str
) -> None:
    result = prebuilt_cli.run(
        "push",
        "--registry",
        registry.url,
        *registry.tls_options(),
        source,
        credentials=registry.credentials,
    )
    line = error_line(result, 3)
    assert close in line, line
    assert str(prebuilt_cli.store) in line, line


def test_missing_skopeo_exits_7(prebuilt_cli: Cli, registry, tmp_path: Path) -> None:
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    result = prebuilt_cli.run(
        "push",
        "--registry",
        registry.url,
        *registry.tls_options(),
        "--no-up-to-date-check",  # the registry may hold it already: the copy must need skopeo
        "hello:v1",
        credentials=registry.credentials,
        env={"PATH": str(empty_bin)},
        command=python_module_command(),
    )
    line = error_line(result, 7)
    assert "skopeo" in line, line


# -- build ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["MyApp:v1.0.0", "myapp:-v1", "my app:v1", "myapp:v1@sha256:00"])
def test_invalid_tag_exits_2(cli: Cli, hello_context: Path, tag: str) -> None:
    result = cli.run("build", "--context", str(hello_context), "--tag", tag)
    line = error_line(result, 2)
    assert repr(tag) in line or tag in line, line
    assert not (cli.store / "index.json").exists() or read_index(cli.store)["manifests"] == []


def test_missing_context_exits_2(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-context"
    result = cli.run("build", "--context", str(missing), "--tag", "app:v1")
    line = error_line(result, 2)
    assert str(missing) in line and "--context" in line, line


def test_context_without_containerfile_exits_2(cli: Cli, tmp_path: Path) -> None:
    context = tmp_path / "empty-context"
    context.mkdir()
    (context / "README").write_text("no Containerfile here\n")
    result = cli.run("build", "--context", str(context), "--tag", "app:v1")
    line = error_line(result, 2)
    assert "Containerfile" in line and str(context) in line, line


def test_failing_run_step_exits_1_and_leaves_the_store_as_it_was(
    prebuilt_copy: Cli, tmp_path: Path
) -> None:
    store = prebuilt_copy.store
    context = make_context(tmp_path / "failing", FAILING_CONTAINERFILE)
    index_before = (store / "index.json").read_bytes()
    blobs_before = store_digests(store)

    result = prebuilt_copy.run("build", "-q", "--context", str(context), "--tag", "broken:v1")
    line = error_line(result, 1)
    assert result.stderr.strip() == line, "with -q the error line is all there is"
    log = prebuilt_copy.home / ".local" / "state" / "idpwrap" / "last-failed-build.log"
    assert line == (
        f"idpwrap: error: {context}/Containerfile:5: RUN /bin/busybox false exited with status 1"
        f" (buildah's whole output: {log})"
    )
    assert "STEP 5/5: RUN /bin/busybox false" in log.read_text()

    assert (store / "index.json").read_bytes() == index_before
    assert store_digests(store) == blobs_before
    leftovers = (
        list((store / ".idpwrap.tmp").iterdir()) if (store / ".idpwrap.tmp").exists() else []
    )
    assert leftovers == []
    assert list(prebuilt_copy.tmpdir.iterdir()) == []


BUILD_FAILURES = {
    "typo": (
        "FROM scratch\nCOPPY Makefile /m\n",
        "Containerfile:2: unknown instruction COPPY (did you mean COPY?)",
    ),
    "run-false": (
        "FROM scratch\nCOPY busybox /bin/sh\nRUN false\n",
        "Containerfile:3: RUN false exited with status 1",
    ),
    "missing-copy-source": (
        "FROM scratch\nCOPY nosuch.txt /x\n",
        "Containerfile:2: COPY source nosuch.txt is not in the context"
        " (or is ignored by .dockerignore)",
    ),
}


@pytest.mark.parametrize(
    ("containerfile", "expected"), list(BUILD_FAILURES.values()), ids=list(BUILD_FAILURES)
)
def test_a_failed_build_is_one_line_with_the_containerfiles_line(
    cli: Cli, tmp_path: Path, containerfile: str, expected: str
) -> None:
    """From the context's directory, as `podman build .` is typed; the step's output is
    shown without Go structs or timestamps, and --verbose shows buildah's own."""
    context = make_context(tmp_path / "ctx", containerfile)
    cli = dataclasses.replace(cli, cwd=context)
    result = cli.run("build", "-t", "broken:v1", ".")
    line = error_line(result, 1)
    log = cli.home / ".local" / "state" / "idpwrap" / "last-failed-build.log"
    assert line == f"idpwrap: error: {expected} (buildah's whole output: {log})"
    assert "&imagebuilder" not in result.stderr and "time=" not in result.stderr
    assert "STEP 1/" in log.read_text()
    verbose = cli.run("build", "-t", "broken:v1", "--verbose", ".")
    assert error_line(verbose, 1) == line
    if "COPPY" in containerfile:
        assert "&imagebuilder.Step{" in verbose.stderr, "buildah's own words with --verbose"


def test_missing_buildah_exits_7(cli: Cli, hello_context: Path, tmp_path: Path) -> None:
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    result = cli.run(
        "build",
        "--context",
        str(hello_context),
        "--tag",
        "app:v1",
        env={"PATH": str(empty_bin)},
        command=python_module_command(),
    )
    line = error_line(result, 7)
    assert "buildah" in line, line
