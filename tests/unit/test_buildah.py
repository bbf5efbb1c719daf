"""buildah.py: finding the Containerfile, the bud command line, and a failed build."""

from __future__ import annotations

from pathlib import Path

import pytest

from idpwrap.errors import EXIT_FAILED, EXIT_USAGE, BuildFailed, ContextError
from idpwrap.tools import buildah
from idpwrap.tools.buildah import BuildOptions, bud_argv, build, find_containerfile

DESTINATION = "oci:/store/.idpwrap.tmp/build-1-x/layout:build"


def value_after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


# -- find_containerfile -------------------------------------------------------------------


def test_containerfile_preferred_over_dockerfile(tmp_path):
    (tmp_path / "Containerfile").write_text("FROM scratch\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert find_containerfile(tmp_path, None) == tmp_path / "Containerfile"


def test_dockerfile_when_no_containerfile(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert find_containerfile(tmp_path, None) == tmp_path / "Dockerfile"


def test_file_option_relative_to_the_working_directory(tmp_path, monkeypatch):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text("FROM scratch\n")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "Custom.file").write_text("FROM scratch\n")
    monkeypatch.chdir(tmp_path)
    assert find_containerfile(context, "build/Custom.file") == Path("build/Custom.file")


def test_missing_context_directory(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ContextError) as caught:
        find_containerfile(missing, None)
    assert str(caught.value) == (
        f"build context {str(missing)!r} is not a directory: pass an existing one as CONTEXT"
        " (or --context)"
    )
    assert caught.value.exit_code == EXIT_USAGE


def test_context_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ContextError, match="is not a directory"):
        find_containerfile(tmp_path / "file", None)


def test_no_containerfile_in_the_context(tmp_path):
    with pytest.raises(ContextError) as caught:
        find_containerfile(tmp_path, None)
    assert str(caught.value) == (
        f"no Containerfile or Dockerfile in {str(tmp_path)!r}: add one or name it with -f FILE"
    )
    assert caught.value.exit_code == EXIT_USAGE


def test_missing_file_option(tmp_path):
    (tmp_path / "Containerfile").write_text("FROM scratch\n")
    with pytest.raises(ContextError) as caught:
        find_containerfile(tmp_path, str(tmp_path / "Other"))
    other = tmp_path / "Other"
    assert str(caught.value) == (
        f"build file {str(other)!r} does not exist (looked for {other}): check the path given"
        " to -f (it is relative to the working directory)"
    )


def test_missing_file_option_found_in_the_context_is_suggested(tmp_path, monkeypatch):
    """-f is relative to the working directory (podman's rule); the file in the context is
    named as what was probably meant."""
    context = tmp_path / "webapp"
    context.mkdir()
    (context / "Containerfile").write_text("FROM scratch\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ContextError) as caught:
        find_containerfile(Path("webapp"), "Containerfile")
    assert str(caught.value) == (
        f"build file 'Containerfile' does not exist (looked for {tmp_path / 'Containerfile'}):"
        " did you mean -f webapp/Containerfile?"
    )


def test_file_option_that_is_a_directory(tmp_path):
    with pytest.raises(ContextError, match="does not exist"):
        find_containerfile(tmp_path, str(tmp_path))


# -- bud_argv -----------------------------------------------------------------------------


def test_bud_argv(tmp_path, monkeypatch):
    monkeypatch.delenv("BUILDAH_ISOLATION", raising=False)
    options = BuildOptions(
        context=tmp_path,
        containerfile=tmp_path / "Containerfile",
        build_args=("VERSION=1.2", "EMPTY="),
    )
    argv = bud_argv(options, DESTINATION)
    assert argv[:2] == ["buildah", "bud"]
    assert "--disable-compression=false" in argv
    assert value_after(argv, "--isolation") == "chroot"
    assert "--layers" in argv
    assert "--force-rm" in argv
    assert value_after(argv, "-f") == str(tmp_path / "Containerfile")
    assert [argv[i + 1] for i, arg in enumerate(argv) if arg == "--build-arg"] == [
        "VERSION=1.2",
        "EMPTY=",
    ]
    assert argv[-3:] == ["-t", DESTINATION, str(tmp_path)]


def test_bud_argv_isolation_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BUILDAH_ISOLATION", "oci")
    argv = bud_argv(BuildOptions(tmp_path, tmp_path / "Containerfile"), DESTINATION)
    assert value_after(argv, "--isolation") == "oci"
    assert "chroot" not in argv


def test_bud_argv_docker_format_goes_to_buildahs_storage_then_the_layout(tmp_path):
    options = BuildOptions(tmp_path, tmp_path / "Containerfile", format="docker")
    argv = bud_argv(options, None, "/w/image-id")
    assert value_after(argv, "--format") == "docker"
    assert value_after(argv, "--iidfile") == "/w/image-id" and "-t" not in argv  # unnamed
    assert "--format" not in bud_argv(BuildOptions(tmp_path, tmp_path / "C"), DESTINATION)
    push = buildah.copy_to_layout_argv(None, "sha256:" + "a" * 64, DESTINATION)
    assert push == ["buildah", "push", "--format", "v2s2", "--disable-compression=false",
                    "--quiet", "sha256:" + "a" * 64, DESTINATION]  # fmt: skip


def test_bud_argv_without_layers(tmp_path, monkeypatch):
    monkeypatch.delenv("BUILDAH_ISOLATION", raising=False)
    argv = bud_argv(BuildOptions(tmp_path, tmp_path / "Containerfile", layers=False), DESTINATION)
    assert "--layers" not in argv
    assert "--build-arg" not in argv


# -- build --------------------------------------------------------------------------------


def test_build_failure_carries_the_last_lines():
    # build() runs whatever argv it is given: a real shell plays a failing buildah.
    script = (
        'for i in 1 2 3 4 5 6 7 8; do echo "STEP $i/8: RUN step-$i"; done; '
        "echo 'error building at STEP \"RUN false\": exit status 1' >&2; "
        "printf 'Error: no final newline'; exit 125"
    )
    shown = []
    with pytest.raises(BuildFailed) as caught:
        build(["/bin/sh", "-c", script], shown.append)
    message = str(caught.value)
    assert message.startswith("buildah bud failed (exit code 125): ")
    assert "STEP 8/8: RUN step-8" in message
    assert 'error building at STEP "RUN false": exit status 1' in message  # stderr is merged
    assert message.endswith("Error: no final newline")
    assert "STEP 1/8" not in message  # only the last lines
    assert "\n" not in message
    assert caught.value.exit_code == EXIT_FAILED
    assert "STEP 1/8: RUN step-1" in "".join(shown)  # everything was streamed


def test_build_success_streams_and_returns():
    shown = []
    assert build(["/bin/sh", "-c", "echo STEP 1/1: FROM scratch"], shown.append) is None
    assert "".join(shown).strip() == "STEP 1/1: FROM scratch"
