"""buildlog.py: buildah's failures as one line with the Containerfile's line, and its output in
the user's names. The inputs are buildah's own output (tests/data/buildah): 1.28 (Debian 12)
and 1.39 (Debian 13, captured in `scripts/env trixie`). They differ in the Go struct (1.39 adds
``Heredocs``), in "Storing signatures" (gone in 1.39), a blank line after the last ``-->`` and
the cache lines; the parser reads both the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from idpwrap.build import buildlog

DATA = Path(__file__).resolve().parents[1] / "data" / "buildah"
NAMES = {"idpwrap-base-531efe7865aa2856": "base:1", "idpwrap-base-ba04af1fa6a26b68": "base:1"}
VERSIONS = ("1.28", "1.39")
CONTAINERFILES = {
    "typo": "FROM scratch\nCOPPY Makefile /m\n",
    "runfalse": "FROM scratch\nCOPY busybox /bin/sh\nRUN false\n",
    "nocopy": "FROM scratch\nCOPY nosuch.txt /x\n",
    "ign": "FROM scratch\nCOPY secret.txt /x\n",
    "multi": 'FROM base:1 AS build\nRUN ["/bin/busybox","true"]\n\nFROM scratch\n'
    'COPY --from=build /bin/busybox /bb\nHEALTHCHECK CMD /bb true\nRUN ["/bb", "false"]\n',
}
EXPECTED = {
    "typo": "Containerfile:2: unknown instruction COPPY (did you mean COPY?)",
    "runfalse": "Containerfile:3: RUN false exited with status 1",
    "nocopy": "Containerfile:2: COPY source nosuch.txt is not in the context"
    " (or is ignored by .dockerignore)",
    "ign": "Containerfile:2: COPY source secret.txt is excluded by .dockerignore",
    "multi": 'Containerfile:7: RUN ["/bb", "false"] exited with status 127',
}


def output(name: str, version: str = "1.28") -> list[str]:
    return (DATA / f"{version}-{name}.txt").read_text().splitlines()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_failure_is_one_line_with_the_containerfiles_line(name, version):
    summary = buildlog.failure_summary(
        output(name, version), 1, "Containerfile", CONTAINERFILES[name], NAMES
    )
    assert summary == EXPECTED[name]
    assert "&imagebuilder" not in summary and "time=" not in summary


def test_a_step_is_found_by_stage_and_number_with_continuations_and_comments():
    text = "# syntax\nARG X=1\nFROM scratch AS a\nRUN one \\\n  two\n\nFROM a\n# c\nRUN three\n"
    assert buildlog.line_of(text, buildlog.Step(1, 2, "RUN one two")) == (4, "RUN one two")
    assert buildlog.line_of(text, buildlog.Step(2, 2, "RUN three")) == (9, "RUN three")
    # numbering that does not fit (a --target build skips stages): found by its text
    assert buildlog.line_of(text, buildlog.Step(1, 2, "RUN three")) == (9, "RUN three")
    # a text of buildah's own spelling: the instruction at the step's place, if of its kind
    assert buildlog.line_of(text, buildlog.Step(1, 2, "RUN  four")) == (4, "RUN one two")
    assert buildlog.line_of(text, buildlog.Step(1, 3, "RUN four")) is None
    assert buildlog.line_of(text, buildlog.Step(1, 1, "RUN four")) is None
    # a base's ONBUILD trigger: a step more in the stage, in no line of this file
    assert buildlog.line_of(text, buildlog.Step(1, 2, "RUN four", 3)) is None
    assert buildlog.line_of(text, buildlog.Step(1, 2, "RUN four", 2)) == (4, "RUN one two")


def test_a_failure_before_any_step_keeps_buildahs_words_without_timestamps():
    lines = [
        'time="2026-12-01T21:04:48Z" level=error msg="no FROM statement found"',
    ]
    assert buildlog.failure_summary(lines, 125, "Containerfile", "") == (
        "buildah bud failed (exit code 125): no FROM statement found"
    )
    lines = ["Error: no FROM statement found"]
    assert buildlog.failure_summary(lines, 125, "Containerfile", "") == (
        "buildah bud failed (exit code 125): no FROM statement found"
    )


def test_an_unknown_reason_names_the_step_and_hides_internal_names():
    lines = [
        "STEP 1/1: FROM oci:idpwrap-base-531efe7865aa2856:image",
        'Error: building at STEP "FROM oci:idpwrap-base-531efe7865aa2856:image": reading'
        " oci:idpwrap-base-531efe7865aa2856:image: permission denied",
    ]
    summary = buildlog.failure_summary(lines, 125, "app/Containerfile", "FROM base:1\n", NAMES)
    assert summary == "app/Containerfile:1: FROM base:1: reading base:1: permission denied"


@pytest.mark.parametrize("version", VERSIONS)
def test_the_output_shows_the_users_names_and_ends_cleanly(version):
    shown: list[str] = []
    show = buildlog.OutputFilter(shown.append, NAMES, "two:1")
    for line in output("based", version):
        show(line + "\n")  # streamed a line at a time
    show.flush()
    text = "".join(shown)
    assert "idpwrap-base-" not in text and ".idpwrap.tmp" not in text
    assert "STEP 1/2: FROM base:1\n" in text
    assert text.endswith("COMMIT two:1\n")


@pytest.mark.parametrize("version", VERSIONS)
def test_the_output_filter_joins_partial_chunks_and_drops_go_structs(version):
    shown: list[str] = []
    show = buildlog.OutputFilter(shown.append, {}, "x:1")
    raw = "\n".join(output("typo", version)) + "\n"
    for start in range(0, len(raw), 7):
        show(raw[start : start + 7])
    show.flush()
    text = "".join(shown)
    assert "&imagebuilder" not in text and "UNHANDLED" not in text
    assert 'Unknown instruction: "COPPY"' in text


def test_the_log_is_private_and_in_the_state_directory(tmp_path):
    environ = {"HOME": str(tmp_path)}
    path = buildlog.keep(["STEP 1/1: FROM scratch", "Error: x"], environ)
    assert path == str(tmp_path / ".local" / "state" / "idpwrap" / "last-failed-build.log")
    assert Path(path).read_text() == "STEP 1/1: FROM scratch\nError: x\n"
    assert Path(path).stat().st_mode & 0o777 == 0o600
    assert buildlog.log_path({"XDG_STATE_HOME": "/s", "HOME": "/h"}) == (
        "/s/idpwrap/last-failed-build.log"
    )


def test_an_unnamed_commit_into_buildahs_storage_shows_the_tags():
    shown: list[str] = []
    show = buildlog.OutputFilter(shown.append, NAMES, "two:1")
    show("STEP 2/2: COPY app.txt /app.txt\nCOMMIT\n--> 3f2a\n")
    show.flush()
    assert "".join(shown).endswith("COMMIT two:1\n--> 3f2a\n")


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (
            "creating build container: initializing source docker://127.0.0.1:5000/o/base:v1:"
            " reading manifest v1 in 127.0.0.1:5000/o/base: authentication required",
            "give credentials for that registry as for a push",
        ),
        (
            "creating build container: initializing source docker://127.0.0.1:5000/o/base:v1:"
            ' pinging container registry 127.0.0.1:5000: Get "https://127.0.0.1:5000/v2/":'
            " tls: failed to verify certificate: x509: certificate signed by unknown authority",
            "trust that registry as for a push: --ca-file PEM",
        ),
    ],
)
def test_a_refused_or_untrusted_from_pull_says_what_to_give(error, hint):
    lines = [
        "STEP 1/2: FROM 127.0.0.1:5000/o/base:v1",
        f'Error: building at STEP "FROM 127.0.0.1:5000/o/base:v1": {error}',
    ]
    text = "FROM 127.0.0.1:5000/o/base:v1\nCOPY a /a\n"
    summary = buildlog.failure_summary(lines, 125, "Containerfile", text)
    assert summary.startswith("Containerfile:1: FROM 127.0.0.1:5000/o/base:v1: ")
    assert hint in summary
    assert "\n" not in summary
