"""buildah.py: the build options of `idpwrap build` as buildah 1.28's command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from idpwrap.errors import EXIT_USAGE, UsageError
from idpwrap.platforms import parse as parse_platforms
from idpwrap.tools.buildah import (
    BuildOptions,
    bud_argv,
    parse_label,
    parse_secret,
    read_build_arg_file,
    resolve_build_args,
)
from idpwrap.tools.rootless import Storage

DESTINATION = "oci:/store/.idpwrap.tmp/build-1-x/layout:build"


def values_after(argv: list[str], flag: str) -> list[str]:
    return [argv[index + 1] for index, arg in enumerate(argv) if arg == flag]


@pytest.fixture(autouse=True)
def default_isolation(monkeypatch):
    monkeypatch.delenv("BUILDAH_ISOLATION", raising=False)


def test_every_option(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("s3cr3t")
    options = BuildOptions(
        context=tmp_path,
        containerfile=tmp_path / "Containerfile",
        build_args=("A=1",),
        target="builder",
        labels=("org.example.team=core", "empty="),
        no_cache=True,
        pull="never",
        secrets=(("token", secret),),
        platform="linux/arm64",
    )
    argv = bud_argv(options, DESTINATION)
    assert argv[:2] == ["buildah", "bud"]
    assert values_after(argv, "--target") == ["builder"]
    assert values_after(argv, "--label") == ["org.example.team=core", "empty="]
    assert "--no-cache" in argv and "--layers" in argv
    assert "--pull=never" in argv
    assert values_after(argv, "--secret") == [f"id=token,src={secret}"]
    assert values_after(argv, "--platform") == ["linux/arm64"]
    assert values_after(argv, "--build-arg") == ["A=1"]
    assert "s3cr3t" not in " ".join(argv)  # the secret's path, never its content
    assert argv[-3:] == ["-t", DESTINATION, str(tmp_path)]


@pytest.mark.parametrize(
    ("mode", "argument"), [("never", "--pull=never"), ("missing", "--pull=missing"),
                           ("always", "--pull=always")],
)  # fmt: skip
def test_pull_modes(tmp_path, mode, argument):
    argv = bud_argv(BuildOptions(tmp_path, tmp_path / "C", pull=mode), DESTINATION)
    assert [arg for arg in argv if arg.startswith("--pull")] == [argument]


def test_default_pull_never_asks_a_registry_for_what_is_here(tmp_path):
    argv = bud_argv(BuildOptions(tmp_path, tmp_path / "C"), DESTINATION)
    assert "--pull=missing" in argv  # buildah's default, "true", asks for a newer base each time


def test_storage_options_come_before_bud(tmp_path):
    storage = Storage(Path("/data/b"), Path("/run/b"), "vfs", None, "test")
    argv = bud_argv(BuildOptions(tmp_path, tmp_path / "C", storage=storage), DESTINATION)
    assert argv[: argv.index("bud")] == [
        "buildah", "--root", "/data/b", "--runroot", "/run/b", "--storage-driver", "vfs",
    ]  # fmt: skip


def test_parse_secret(tmp_path, monkeypatch):
    (tmp_path / "tok").write_text("x")
    monkeypatch.chdir(tmp_path)
    assert parse_secret("id=tok,src=tok") == ("tok", tmp_path / "tok")
    assert parse_secret("type=file,id=a,src=tok") == ("a", tmp_path / "tok")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tok", "expected id=ID,src=FILE"),
        ("id=a", "expected id=ID,src=FILE"),
        ("id=a,src=/nonexistent/x", "is not a readable file"),
        ("id=a,env=HOME", "expected id=ID,src=FILE"),
        ("type=env,id=a,src=x", "only type=file"),
    ],
)
def test_bad_secrets(text, message):
    with pytest.raises(UsageError, match=message) as caught:
        parse_secret(text)
    assert caught.value.exit_code == EXIT_USAGE


def test_parse_platforms_takes_repeated_and_comma_separated_values_in_order():
    assert parse_platforms(["linux/arm64"]) == ("linux/arm64",)
    assert parse_platforms(["linux/arm/v7"]) == ("linux/arm/v7",)
    assert parse_platforms(["linux/amd64,linux/arm64", "linux/AMD64", "linux/s390x"]) == (
        "linux/amd64",
        "linux/arm64",
        "linux/s390x",
    )
    with pytest.raises(UsageError, match="expected OS/ARCH"):
        parse_platforms(["arm64"])
    with pytest.raises(UsageError, match="an empty platform"):
        parse_platforms(["linux/amd64,"])


def test_parse_label():
    assert parse_label("a=b=c") == "a=b=c"
    with pytest.raises(UsageError, match="expected KEY=VALUE"):
        parse_label("novalue")


def test_build_arg_file(tmp_path):
    path = tmp_path / "args"
    path.write_text("# versions\nA=1\n\n  B = two  \nC=\n")
    assert read_build_arg_file(str(path)) == ["A=1", "B = two", "C="]
    path.write_text("A=1\n=oops\n")
    with pytest.raises(UsageError, match=r"args:2: expected KEY=VALUE"):
        read_build_arg_file(str(path))
    with pytest.raises(UsageError, match="--build-arg-file"):
        read_build_arg_file(str(tmp_path / "missing"))


def test_build_args_files_then_flags_then_environment(tmp_path):
    first = tmp_path / "one"
    first.write_text("A=from-file\nB=from-file\n")
    second = tmp_path / "two"
    second.write_text("B=from-second\n")
    values = resolve_build_args(
        [str(first), str(second)], ["A=from-flag", "HOME", "UNSET"], {"HOME": "/h"}
    )
    assert values == {"A": "from-flag", "B": "from-second", "HOME": "/h"}


def test_clearing_the_cache_removes_containers_then_images():
    from idpwrap.tools.buildah import clear_cache_argvs

    storage = Storage(Path("/d/b"), Path("/run/b"), "overlay", None, "test")
    prefix = ["buildah", *storage.argv()]
    assert clear_cache_argvs(storage) == [
        [*prefix, "rm", "--all"],
        [*prefix, "rmi", "--all", "--force"],
    ]
