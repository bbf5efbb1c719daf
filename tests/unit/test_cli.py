"""cli.py: what a user sees: one error line and a stable exit code, never a traceback."""

from __future__ import annotations

import io
import tempfile

import pytest

from idpwrap import __version__
from idpwrap.cli import main
from idpwrap.refs import LocalRef
from idpwrap.store.api import Store

SECRET = "pa55-from-stdin-0123"
CLEARED = ("GITEA_USERNAME", "GITEA_TOKEN", "GITEA_PASSWORD", "REGISTRY_USERNAME",
           "REGISTRY_PASSWORD", "IDPWRAP_STORE", "IDPWRAP_REGISTRY", "IDPWRAP_PROGRESS",
           "BUILDAH_ISOLATION")  # fmt: skip


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture
def no_tools(monkeypatch, tmp_path):
    """A PATH with neither buildah nor skopeo on it."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def seeded(store_dir, layouts):
    """A store holding myapp:v1.0.0."""
    store = Store(store_dir)
    store.ensure()
    store.add_layout(layouts.make([b"layer" * 100]).path, [LocalRef("myapp", "v1.0.0")])
    return store


class TtyStdin(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("idpwrap: error: ")
    assert "Traceback" not in err
    return lines[0]


def test_version(capsys):
    code, out, err = run(capsys, "--version")
    assert code == 0
    assert out == f"{__version__}\n"
    assert err == ""


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2


# -- build --------------------------------------------------------------------------------


def test_build_invalid_tag(capsys, tmp_path, store_dir):
    (tmp_path / "Containerfile").write_text("FROM scratch\n")
    code, out, err = run(
        capsys, "build", "--store", str(store_dir), "--context", str(tmp_path), "-t", "MyApp:v1"
    )
    assert code == 2
    line = assert_one_error_line(err)
    assert "'MyApp:v1'" in line
    assert line.endswith("myapp")
    assert out == ""
    assert not store_dir.exists()


def test_build_bad_tag_text(capsys, tmp_path, store_dir):
    code, _, err = run(capsys, "build", "--store", str(store_dir), "--context", str(tmp_path),
                       "-t", "app:-x")  # fmt: skip
    assert code == 2
    assert_one_error_line(err)


def test_build_missing_context(capsys, tmp_path, store_dir):
    missing = tmp_path / "no-such-dir"
    code, _, err = run(capsys, "build", "--store", str(store_dir), "--context", str(missing),
                       "-t", "app:v1")  # fmt: skip
    assert code == 2
    line = assert_one_error_line(err)
    assert str(missing) in line
    assert "--context" in line


def test_build_without_containerfile(capsys, tmp_path, store_dir):
    context = tmp_path / "ctx"
    context.mkdir()
    code, _, err = run(capsys, "build", "--store", str(store_dir), "--context", str(context),
                       "-t", "app:v1")  # fmt: skip
    assert code == 2
    line = assert_one_error_line(err)
    assert "no Containerfile or Dockerfile" in line
    assert "-f FILE" in line


def test_build_missing_file_option(capsys, tmp_path, store_dir):
    code, _, err = run(capsys, "build", "--store", str(store_dir), "--context", str(tmp_path),
                       "-t", "app:v1", "-f", str(tmp_path / "Nope"))  # fmt: skip
    assert code == 2
    assert "Nope" in assert_one_error_line(err)


def test_build_context_as_positional_argument(capsys, tmp_path, store_dir):
    """`build -t x DIR` as in podman: DIR is the context (here without a Containerfile)."""
    context = tmp_path / "webapp"
    context.mkdir()
    code, _, err = run(capsys, "build", "--store", str(store_dir), "-t", "app:v1", str(context))
    assert code == 2
    assert f"no Containerfile or Dockerfile in {str(context)!r}" in assert_one_error_line(err)


def test_build_context_positional_and_option_must_agree(capsys, tmp_path, store_dir):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    code, _, err = run(capsys, "build", "--store", str(store_dir), "-t", "app:v1",
                       "--context", str(tmp_path / "a"), str(tmp_path / "b"))  # fmt: skip
    assert code == 2
    line = assert_one_error_line(err)
    assert "two build contexts" in line
    assert "idpwrap build --help" in line


def usage_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as caught:
        main(list(argv))
    assert caught.value.code == 2
    return assert_one_error_line(capsys.readouterr().err)


def test_unknown_option_names_the_commands_help_and_the_closest_option(capsys, store_dir):
    assert usage_error(capsys, "build", "-t", "app:v1", "--no-cach", ".") == (
        "idpwrap: error: unrecognized arguments: --no-cach; did you mean --no-cache?"
        " (see 'idpwrap build --help')"
    )


def test_an_unknown_command_names_the_closest_one(capsys):
    assert usage_error(capsys, "biuld", "-t", "x", ".") == (
        "idpwrap: error: unknown command 'biuld'; did you mean build? (see 'idpwrap --help')"
    )


def test_extra_words_name_the_commands_help(capsys):
    line = usage_error(capsys, "push", "--insecrue", "app:v1")
    assert line.endswith("(see 'idpwrap push --help')")
    assert "did you mean --insecure?" in line
    assert "did you mean" not in usage_error(capsys, "version", "extra")


def test_build_without_buildah(capsys, tmp_path, store_dir, no_tools):
    (tmp_path / "Containerfile").write_text("FROM scratch\n")
    code, _, err = run(capsys, "build", "--store", str(store_dir), "--context", str(tmp_path),
                       "-t", "app:v1", "-q")  # fmt: skip
    assert code == 7
    assert "buildah is not installed" in assert_one_error_line(err)


# -- push ---------------------------------------------------------------------------------


def test_push_an_image_not_in_the_store(capsys, store_dir):
    store_dir.mkdir()
    code, out, err = run(capsys, "push", "--store", str(store_dir), "--registry",
                         "https://gitea.example:8443", "giteaAdmin/myapp:v1.0.0")  # fmt: skip
    assert code == 3
    line = assert_one_error_line(err)
    assert "myapp:v1.0.0" in line
    assert str(store_dir) in line
    assert out == ""


def test_push_suggests_a_close_name(capsys, seeded):
    code, _, err = run(capsys, "push", "--store", str(seeded.root), "myap:v1.0.0")
    assert code == 3
    assert "did you mean myapp:v1.0.0?" in assert_one_error_line(err)


def test_push_invalid_registry(capsys, seeded):
    code, _, err = run(capsys, "push", "--store", str(seeded.root), "--registry",
                       "ftp://gitea.example", "myapp:v1.0.0")  # fmt: skip
    assert code == 2
    assert "ftp://gitea.example" in assert_one_error_line(err)


def test_push_invalid_progress_mode_from_the_environment(capsys, seeded, monkeypatch):
    monkeypatch.setenv("IDPWRAP_PROGRESS", "fancy")
    code, _, err = run(capsys, "push", "--store", str(seeded.root), "myapp:v1.0.0")
    assert code == 2
    assert "IDPWRAP_PROGRESS" in assert_one_error_line(err)


def test_push_password_stdin_from_a_terminal(capsys, seeded, monkeypatch):
    monkeypatch.setattr("sys.stdin", TtyStdin(SECRET))
    code, _, err = run(capsys, "push", "--store", str(seeded.root), "-u", "giteaAdmin",
                       "--password-stdin", "myapp:v1.0.0")  # fmt: skip
    assert code == 2
    assert "--password-stdin" in assert_one_error_line(err)


def test_push_password_stdin_without_username(capsys, seeded, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
    code, _, err = run(capsys, "push", "--store", str(seeded.root), "--password-stdin",
                       "myapp:v1.0.0")  # fmt: skip
    assert code == 2
    line = assert_one_error_line(err)
    assert "--username" in line
    assert SECRET not in line


def test_push_half_an_environment_pair(capsys, seeded, monkeypatch):
    monkeypatch.setenv("GITEA_USERNAME", "giteaAdmin")
    code, _, err = run(capsys, "push", "--store", str(seeded.root), "myapp:v1.0.0")
    assert code == 2
    line = assert_one_error_line(err)
    assert "GITEA_TOKEN" in line
    assert "GITEA_PASSWORD" in line


def test_push_with_password_stdin_never_shows_it(capsys, seeded, monkeypatch, no_tools, tmp_path):
    # Everything up to running skopeo, which is not on PATH: exit 7, and the secret nowhere.
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
    code, out, err = run(capsys, "push", "-v", "--debug", "--store", str(seeded.root), "--registry",
                         "https://gitea.example:8443", "-u", "giteaAdmin", "--password-stdin",
                         "--progress", "none", "myapp:v1.0.0")  # fmt: skip
    assert code == 7
    assert err.splitlines()[-1].startswith("idpwrap: error: skopeo is not installed")
    assert "Traceback" not in err
    assert SECRET not in out + err
    assert "command line (--username, --password-stdin)" in err  # the source, named by -v
    assert list((tmp_path / "scratch").iterdir()) == []  # auth file and push layout removed


def test_push_says_it_lowercased_the_owner(capsys, seeded, no_tools):
    code, _, err = run(capsys, "push", "--store", str(seeded.root), "--registry",
                       "https://gitea.example:8443", "--progress", "none",
                       "giteaAdmin/myapp:v1.0.0")  # fmt: skip
    assert code == 7
    assert "idpwrap: owner 'giteaAdmin' lowercased to 'giteaadmin'" in err


@pytest.fixture
def skopeo_without_dns(tmp_path, monkeypatch):
    """A skopeo that fails as a name lookup does, and counts its runs."""
    bin_dir = tmp_path / "dns-bin"
    bin_dir.mkdir()
    runs = tmp_path / "skopeo-runs"
    script = bin_dir / "skopeo"
    script.write_text(
        f'#!/bin/sh\necho run >> {runs}\necho \'time="x" level=fatal msg="trying to reuse'
        " blob: pinging container registry gitea.cnoe.localtest.me:8443: Get"
        ' \\"https://gitea.cnoe.localtest.me:8443/v2/\\": dial tcp: lookup'
        " gitea.cnoe.localtest.me: no such host\"' >&2\nexit 1\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return runs


def test_push_names_the_default_registry_and_does_not_retry_a_dns_failure(
    capsys, seeded, skopeo_without_dns, monkeypatch
):
    monkeypatch.setenv("GITEA_USERNAME", "giteaAdmin")
    monkeypatch.setenv("GITEA_TOKEN", "not-used")
    code, _, err = run(capsys, "push", "--store", str(seeded.root), "--progress", "none",
                       "myapp:v1.0.0")  # fmt: skip
    assert code == 5
    line = assert_one_error_line(err.splitlines()[-1])
    assert "no such host" in line
    assert "https://gitea.cnoe.localtest.me:8443 is idpwrap's built-in default" in line
    assert "--registry" in line
    assert "trying once more" not in err
    assert skopeo_without_dns.read_text() == "run\n", "a name that does not resolve: one run"


def test_push_with_a_registry_given_does_not_call_it_the_default(
    capsys, seeded, skopeo_without_dns, monkeypatch
):
    monkeypatch.setenv("IDPWRAP_REGISTRY", "https://gitea.cnoe.localtest.me:8443")
    code, _, err = run(capsys, "push", "--store", str(seeded.root), "--progress", "none",
                       "--owner", "team", "myapp:v1.0.0")  # fmt: skip
    assert code == 5
    assert "built-in default" not in err


def test_digestfile_text_names_the_reference_for_several_images():
    from idpwrap.push.request import PushResult, digestfile_text

    one = PushResult("h/o/a:v1", "sha256:" + "1" * 64, 1)
    two = PushResult("h/o/a:v2", "sha256:" + "2" * 64, 1)
    assert digestfile_text([one]) == f"{one.digest}\n"
    assert digestfile_text([one, two]) == f"h/o/a:v1 {one.digest}\nh/o/a:v2 {two.digest}\n"


def test_push_insecure_says_so(capsys, seeded, no_tools):
    code, _, err = run(capsys, "push", "--store", str(seeded.root), "--registry",
                       "gitea.example:8443", "--insecure", "--progress", "none",
                       "myapp:v1.0.0")  # fmt: skip
    assert code == 7
    assert "TLS verification is off for gitea.example:8443" in err


# -- images and rmi -----------------------------------------------------------------------


def test_images_on_an_empty_store(capsys, store_dir):
    code, out, err = run(capsys, "images", "--store", str(store_dir))
    assert code == 0
    assert out.split() == ["REPOSITORY", "TAG", "DIGEST", "SIZE", "PLATFORMS", "CREATED"]
    assert err == ""


def test_images_lists_the_store(capsys, seeded):
    code, out, _ = run(capsys, "images", "--store", str(seeded.root))
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["REPOSITORY", "TAG", "DIGEST", "SIZE", "PLATFORMS", "CREATED"]
    image = seeded.find(LocalRef("myapp", "v1.0.0"))
    cells = row.split()
    assert cells[:3] == ["myapp", "v1.0.0", image.digest.split(":", 1)[1][:12]]
    assert row.endswith("ago")


def test_images_uses_idpwrap_store(capsys, seeded, monkeypatch):
    monkeypatch.setenv("IDPWRAP_STORE", str(seeded.root))
    code, out, _ = run(capsys, "images")
    assert code == 0
    assert "myapp" in out


def test_rmi_an_unknown_tag(capsys, store_dir):
    store_dir.mkdir()
    code, out, err = run(capsys, "rmi", "--store", str(store_dir), "myapp:v9")
    assert code == 3
    assert "myapp:v9" in assert_one_error_line(err)
    assert out == ""


def test_rmi_on_a_store_that_does_not_exist(capsys, store_dir):
    code, _, err = run(capsys, "rmi", "--store", str(store_dir), "myapp:v9")
    assert code == 3
    assert "not in the local store" in err
    assert not store_dir.exists()


def test_rmi_removes_and_reports_bytes(capsys, seeded):
    code, out, _ = run(capsys, "rmi", "--store", str(seeded.root), "myapp:v1.0.0")
    assert code == 0
    assert out.startswith("Untagged: myapp:v1.0.0 (freed ")
    assert seeded.images() == []


def test_rmi_invalid_name(capsys, seeded):
    code, _, err = run(capsys, "rmi", "--store", str(seeded.root), "MyApp")
    assert code == 2
    assert_one_error_line(err)


@pytest.mark.parametrize(
    ("given", "read_as"),
    [
        (["--debug", "images"], ["images", "--debug"]),
        (["-v", "--store", "/s", "push", "a:v1"], ["push", "-v", "--store", "/s", "a:v1"]),
        (["--store=/s", "--verbose", "rmi", "x"], ["rmi", "--store=/s", "--verbose", "x"]),
        (["images", "--debug"], ["images", "--debug"]),
        (["--debug"], ["--debug"]),
        (["--debug", "nosuch"], ["--debug", "nosuch"]),
        (["--store"], ["--store"]),
    ],
)
def test_common_options_before_the_command_are_read_as_podman_reads_them(given, read_as):
    from idpwrap.cli import common_options_after_command

    assert common_options_after_command(given) == read_as


def test_a_store_given_before_the_command_is_used(capsys, tmp_path):
    store = tmp_path / "before"
    assert main(["--store", str(store), "images", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"
