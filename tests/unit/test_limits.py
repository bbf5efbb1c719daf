"""buildah's RUN steps as root where the hard limits are below buildah 1.39's 1048576."""

from __future__ import annotations

import resource

from idpwrap.doctor import checks as doctor
from idpwrap.tools import limits
from idpwrap.tools.buildah import BuildOptions, bud_argv


def test_root_below_buildahs_limits_passes_the_hard_limits() -> None:
    low = limits.low_hard_limits(0, lambda: {"nofile": 20000, "nproc": 96363}, lambda: False)
    assert low == {"nofile": 20000, "nproc": 96363}
    assert limits.ulimit_arguments(low) == [
        "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=96363:96363",
    ]  # fmt: skip
    described = limits.describe(low, "buildah version 1.39.3 (image-spec 1.1.0)")
    assert "nofile 20000, nproc 96363" in described
    assert "--ulimit nofile=20000:20000 --ulimit nproc=96363:96363" in described
    assert "none are passed" in limits.describe(low, "buildah version 1.28.2 (image-spec 1.0.2)")


def test_only_the_limit_that_is_low() -> None:
    low = limits.low_hard_limits(0, lambda: {"nofile": 1048576, "nproc": 4096}, lambda: False)
    assert limits.ulimit_arguments(low) == ["--ulimit", "nproc=4096:4096"]


def test_high_limits_rootless_or_cap_sys_resource_leave_buildah_alone() -> None:
    no_cap = lambda: False  # noqa: E731
    assert limits.low_hard_limits(0, lambda: {"nofile": 1 << 20, "nproc": 1 << 21}, no_cap) == {}
    assert limits.low_hard_limits(1000, lambda: {"nofile": 1024, "nproc": 1024}, no_cap) == {}
    assert limits.low_hard_limits(0, lambda: {"nofile": 1024}, lambda: True) == {}
    assert limits.ulimit_arguments({}) == []


def test_this_process_limits(monkeypatch) -> None:
    monkeypatch.setattr(limits.os, "geteuid", lambda: 0)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    found = limits.low_hard_limits(can_raise=lambda: False)
    if hard == resource.RLIM_INFINITY or hard >= limits.BUILDAH_ROOT_LIMIT:
        assert "nofile" not in found
    else:
        assert found["nofile"] == hard


def test_bud_argv_carries_the_ulimits_before_the_destination(tmp_path) -> None:
    ulimits = ("--ulimit", "nofile=20000:20000")
    argv = bud_argv(BuildOptions(tmp_path, tmp_path / "Containerfile", ulimits=ulimits), "oci:x")
    assert argv[-5:] == ["--ulimit", "nofile=20000:20000", "-t", "oci:x", str(tmp_path)]
    assert "--ulimit" not in bud_argv(BuildOptions(tmp_path, tmp_path / "Containerfile"), "oci:x")


def test_only_a_buildah_that_raises_the_limits_gets_the_flags(monkeypatch) -> None:
    monkeypatch.setattr(limits, "low_hard_limits", lambda: {"nofile": 20000})
    newer = limits.buildah_ulimits("buildah", lambda _: "buildah version 1.39.3 (image-spec 1.1.0)")
    assert newer == ["--ulimit", "nofile=20000:20000"]
    assert limits.buildah_ulimits("buildah", lambda _: "buildah version 1.28.2 (x)") == []
    asked = []
    monkeypatch.setattr(limits, "low_hard_limits", lambda: {})
    assert limits.buildah_ulimits("buildah", lambda path: asked.append(path) or "") == []
    assert asked == []  # no buildah --version where the limits are fine


def test_doctor_names_low_limits(monkeypatch) -> None:
    monkeypatch.setattr(limits, "low_hard_limits", lambda: {"nofile": 20000})
    monkeypatch.setattr(doctor.procs, "find_program", lambda name: f"/usr/bin/{name}")
    check = doctor.resource_limits(lambda argv: (0, "buildah version 1.39.3 (image-spec 1.1.0)"))
    assert check.name == "limits" and check.status == doctor.OK
    assert "nofile 20000" in check.message and "--ulimit nofile=20000:20000" in check.message
    monkeypatch.setattr(limits, "low_hard_limits", lambda: {})
    assert "buildah's defaults" in doctor.resource_limits().message


def test_buildahs_version_is_asked_once_per_binary(tmp_path, monkeypatch) -> None:
    """A real tiny buildah that counts its runs: a second build reads the kept answer, a
    replaced binary is asked again."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    runs = tmp_path / "runs"
    buildah = bin_dir / "buildah"

    def install(version: str) -> None:
        buildah.unlink(missing_ok=True)  # a new inode, as a package upgrade gives
        buildah.write_text(f"#!/bin/sh\necho x >> {runs}\necho 'buildah version {version} (x)'\n")
        buildah.chmod(0o755)

    install("1.39.3")
    monkeypatch.setenv("PATH", str(bin_dir))
    cache = str(tmp_path / "storage.buildah-version")
    assert "1.39.3" in limits.remembered_version("buildah", cache)
    assert "1.39.3" in limits.remembered_version("buildah", cache)
    assert runs.read_text().count("x") == 1
    install("1.28.2")
    assert "1.28.2" in limits.remembered_version("buildah", cache)
    assert runs.read_text().count("x") == 2
    (tmp_path / "storage.buildah-version").write_text("torn")
    assert "1.28.2" in limits.remembered_version("buildah", cache)
    assert runs.read_text().count("x") == 3
