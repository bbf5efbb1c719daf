"""bases.py: which FROM / COPY --from names a stored image, and the rewritten Containerfile."""

from __future__ import annotations

import json

import pytest

from idpwrap.build import bases, containerfile
from idpwrap.refs import LocalRef
from idpwrap.store.api import StoredImage

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
DIRECTORY = "idpwrap-base-" + "ab" * 8
PINNED = f"oci:{DIRECTORY}:image"


def stored(text: str, digest: str = DIGEST) -> StoredImage:
    name, tag = text.rsplit(":", 1)
    descriptor = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest,
        "size": 500,
        "annotations": {"org.opencontainers.image.ref.name": text},
    }
    return StoredImage(LocalRef(name, tag), descriptor)


IMAGES = [stored("base:v1"), stored("base:latest"), stored("team/tools:2", OTHER)]


def rewrite(text: str, build_args: tuple[str, ...] = ()) -> tuple[str, list[bases.Base]]:
    return bases.rewrite(text, IMAGES, build_args)


def test_from_a_stored_image_points_at_its_pinned_layout():
    text, found = rewrite("FROM base:v1\nRUN echo hi\n")
    assert text == f"FROM {PINNED}\nRUN echo hi\n"
    assert [(b.written, str(b.image.ref), b.directory) for b in found] == [
        ("base:v1", "base:v1", DIRECTORY)
    ]


@pytest.mark.parametrize(
    "line",
    ["FROM scratch", "FROM alpine:3.19", "FROM base:v2", "FROM docker.io/library/base:v1",
     "FROM Base:v1", "FROM base@sha256:" + "00" * 32],
)  # fmt: skip
def test_what_the_store_does_not_have_is_left_alone(line):
    assert rewrite(line + "\n") == (line + "\n", [])


def test_no_tag_means_latest_and_localhost_is_the_store():
    assert rewrite("FROM base\n")[0] == f"FROM {PINNED}\n"
    assert rewrite("FROM localhost/base:v1\n")[0] == f"FROM {PINNED}\n"


def test_by_digest():
    text, found = rewrite(f"FROM team/tools@{OTHER}\n")
    assert text == f"FROM oci:idpwrap-base-{'cd' * 8}:image\n"
    assert str(found[0].image.ref) == "team/tools:2"


def test_flags_stage_names_and_case_are_kept():
    source = "from --platform=linux/amd64 base:v1 AS Build\nRUN true\nFROM build\nCMD x\n"
    text, found = rewrite(source)
    assert text == f"from --platform=linux/amd64 {PINNED} AS Build\nRUN true\nFROM build\nCMD x\n"
    assert len(found) == 1


def test_a_stage_named_like_a_stored_image_wins_over_the_store():
    source = "FROM scratch AS base\nCOPY a /a\nFROM base\nCOPY --from=base /a /b\n"
    assert rewrite(source) == (source, [])


def test_copy_from_a_stored_image_and_from_stages():
    source = (
        "FROM scratch AS one\nCOPY x /x\nFROM scratch\n"
        "COPY --from=team/tools:2 /bin/tool /bin/tool\nCOPY --from=one /x /x\n"
        "COPY --from=0 /x /y\nCOPY --chown=1:1 --from=base:v1 /etc /etc\n"
    )
    text, found = rewrite(source)
    assert f"COPY --from=oci:idpwrap-base-{'cd' * 8}:image /bin/tool" in text
    assert f"COPY --chown=1:1 --from={PINNED} /etc /etc" in text
    assert "COPY --from=one /x /x" in text and "COPY --from=0 /x /y" in text
    assert sorted(b.directory for b in found) == sorted([DIRECTORY, f"idpwrap-base-{'cd' * 8}"])


def test_the_same_base_twice_is_pinned_once():
    text, found = rewrite("FROM base:v1 AS a\nFROM base:latest\nCOPY --from=base /x /x\n")
    assert text.count(PINNED) == 3
    assert len(found) == 1


def test_arguments_before_the_first_from():
    source = "ARG BASE=base\nARG TAG\nFROM ${BASE}:$TAG\n"
    assert rewrite(source)[1] == []  # TAG has no value: left to buildah
    text, found = rewrite(source, ("TAG=v1",))
    assert text == f"ARG BASE=base\nARG TAG\nFROM {PINNED}\n"
    assert found[0].written == "base:v1"
    assert rewrite(source, ("TAG=v1", "BASE=alpine"))[1] == []


def test_a_build_arg_from_the_environment(monkeypatch):
    monkeypatch.setenv("TAG", "v1")
    assert rewrite("ARG TAG\nFROM base:${TAG}\n", ("TAG",))[1] != []


def test_an_arg_after_from_does_not_reach_from():
    assert rewrite("FROM scratch\nARG T=v1\nFROM base:$T\n")[1] == []


def test_continuations_comments_and_directives():
    head = "# syntax=docker/dockerfile:1\n# escape=`\n# a comment\n"
    text, found = rewrite(head + "FROM `\n  base:v1 `\n  AS b\n")
    assert text == head + f"FROM `\n  {PINNED} `\n  AS b\n"
    assert len(found) == 1


def test_instructions_spans():
    text = "FROM a \\\n  # inside\n  AS b\n\nRUN x\n"
    found = containerfile.instructions(text)
    assert [(i.keyword, i.text) for i in found] == [("FROM", "FROM a AS b"), ("RUN", "RUN x")]
    assert text[found[1].start : found[1].end] == "RUN x\n"


def test_prepare_writes_the_copy_and_the_pinned_layouts(tmp_path, store, layouts):
    image = store.add_layout(layouts.make([b"base layer"]).path, [LocalRef("base", "v1")])
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text("FROM base:v1\nRUN true\n")
    work = tmp_path / "work"
    work.mkdir()
    target, found = bases.prepare(store, containerfile, (), work)
    assert target == work / "Containerfile"
    directory = "idpwrap-base-" + image.digest.split(":")[1][:16]
    assert target.read_text() == f"FROM oci:{directory}:image\nRUN true\n"
    layout = work / directory
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.digest
    assert index["manifests"][0]["annotations"] == {"org.opencontainers.image.ref.name": "image"}
    assert (layout / "blobs").resolve() == (store.root / "blobs").resolve()
    assert containerfile.read_text() == "FROM base:v1\nRUN true\n"  # the user's file is untouched
    assert found[0].image.digest == image.digest


def test_prepare_without_stored_bases_keeps_the_file(tmp_path, store):
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text("FROM scratch\n")
    assert bases.prepare(store, containerfile, (), tmp_path) == (containerfile, [])


def test_the_registries_buildah_pulls_from():
    text = (
        "ARG REG=Registry.example:5000\n"
        "FROM ${REG}/team/base:v1 AS one\n"
        "FROM base:v1\n"  # the store's
        "FROM debian:bookworm\n"  # buildah's defaults: no host named
        "FROM one\n"  # a stage
        "COPY --from=127.0.0.1:5000/team/tools:2 /x /x\n"
        "FROM localhost:5000/a/b@" + DIGEST + "\n"
    )
    hosts = bases.registry_hosts(text, [], IMAGES)
    assert hosts == ["registry.example:5000", "127.0.0.1:5000", "localhost:5000"]
    assert bases.registry_hosts(text, ["REG=other.example"], IMAGES)[0] == "other.example"
