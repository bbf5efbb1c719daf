"""The test matrix: version and doctor say whether buildah, skopeo and Python are a tested
combination, and an untested one is a warning, never a refusal."""

from __future__ import annotations

import json
from pathlib import Path

from idpwrap.cli import main
from idpwrap.doctor import checks as doctor
from idpwrap.tools import matrix


def test_each_row_is_tested_and_a_mix_is_not() -> None:
    assert matrix.verdict("1.28.2", "1.9.3", "3.11.2")[0]
    tested, said = matrix.verdict("1.39.3", "1.18.0", "3.13.5")
    assert tested and "Debian 13 (trixie)" in said and "scripts/test --in trixie" in said
    tested, said = matrix.verdict("1.39.3", "1.9.3", "3.13.5")
    assert not tested
    assert said.startswith("untested combination (buildah 1.39.3, skopeo 1.9.3, Python 3.13.5)")
    assert "Debian 12 (bookworm): buildah 1.28, skopeo 1.9, Python 3.11" in said
    assert not matrix.verdict("not found", "1.18.0", "3.13.5")[0]


def test_major_minor() -> None:
    assert matrix.major_minor("1.43.0-dev") == (1, 43)
    assert matrix.major_minor("not found") is None


def fake_tools(directory: Path, buildah: str, skopeo: str) -> None:
    for name, version in (("buildah", buildah), ("skopeo", skopeo)):
        path = directory / name
        path.write_text(f'#!/bin/sh\necho "{name} version {version} (x)"\n')
        path.chmod(0o755)


def test_version_warns_about_an_untested_combination_and_exits_0(tmp_path, monkeypatch, capsys):
    fake_tools(tmp_path, "1.43.0", "1.22.1")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["version"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[3] == f"python   {matrix.python_version()}"
    assert out[4].startswith("matrix   untested combination (buildah 1.43.0, skopeo 1.22.1")
    assert main(["version", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["tested"] is False
    assert captured.err.startswith("idpwrap: warning: untested combination")


def test_doctor_matrix_check(monkeypatch) -> None:
    monkeypatch.setattr(doctor.procs, "find_program", lambda name: f"/usr/bin/{name}")
    answers = {
        "/usr/bin/buildah": "buildah version 1.39.3 (x)",
        "/usr/bin/skopeo": "skopeo version 1.18.0",
    }
    runner = lambda argv: (0, answers[argv[0]])  # noqa: E731
    monkeypatch.setattr(matrix, "python_version", lambda: "3.13.5")
    assert doctor.toolchain(runner).status == doctor.OK
    monkeypatch.setattr(matrix, "python_version", lambda: "3.12.3")
    check = doctor.toolchain(runner)
    assert check.status == doctor.WARNING and "untested combination" in check.message
