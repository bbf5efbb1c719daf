"""ignore.py: .containerignore/.dockerignore as buildah 1.28 applies them (the integration
test test_build_options.py checks the same cases against real buildah)."""

from __future__ import annotations

import os

import pytest

from idpwrap.build import ignore


def excluded(text: str, paths: list[str]) -> list[str]:
    rules = ignore.parse(text)
    return [path for path in paths if rules.excluded(path)]


@pytest.mark.parametrize(
    ("text", "paths", "expected"),
    [
        ("*.log\n", ["a.log", "d/a.log"], ["a.log"]),
        ("**/*.log\n", ["a.log", "d/a.log", "d/e/b.log"], ["a.log", "d/a.log", "d/e/b.log"]),
        ("/root.txt\n", ["root.txt", "sub/root.txt"], ["root.txt"]),
        ("  root.txt  \n", ["root.txt"], ["root.txt"]),
        ("./a/../root.txt\n", ["root.txt"], ["root.txt"]),
        ("build/\n", ["build/o", "builder"], ["build/o"]),
        ("**/foo\n", ["foo/f", "foo/bar/g", "x/foo", "food"], ["foo/f", "foo/bar/g", "x/foo"]),
        ("*/temp*\n", ["a/temp/t", "a/tempo", "temp"], ["a/temp/t", "a/tempo"]),
        ("temp?\n", ["temp1", "tempXY", "temp"], ["temp1"]),
        ("a\n!a/d.txt\n", ["a/b/c.txt", "a/d.txt"], ["a/b/c.txt"]),
        ("*\n!src\nsrc/*.md\n", ["a.txt", "src/x", "src/y.md"], ["a.txt", "src/y.md"]),
        ("!a/x\n*/x\n", ["a/x", "b/x"], ["a/x", "b/x"]),
        ("x[0-9]\n", ["x1", "xa"], ["x1"]),
        ("a+b\n", ["ab", "aab", "a+b"], ["ab", "aab"]),
        ("# comment\n\n   \nd/e\n", ["d/e/f", "d/g", "# comment"], ["d/e/f"]),
        ("a b\n", ["a b", "c"], ["a b"]),
        ("t/**/*.log\n", ["t/a.log", "t/u/b.log", "c.log"], ["t/a.log", "t/u/b.log"]),
        ("file.$x\n", ["file.$x", "fileA$x"], ["file.$x"]),
    ],
)
def test_matching(text, paths, expected):
    assert excluded(text, paths) == expected


@pytest.mark.parametrize("text", ["a\\*b\n", "x{2}\n", "[\n"])
def test_unsure_patterns_exclude_nothing(text):
    rules = ignore.parse(text)
    assert not rules.certain
    assert not rules.excluded("a*b")
    assert not rules.excluded("xx")


def test_prunes_only_without_exceptions():
    assert ignore.parse("node_modules\n").prunes("node_modules")
    assert ignore.parse("**/foo\n").prunes("x/foo")
    assert not ignore.parse("node_modules\n!node_modules/keep\n").prunes("node_modules")
    assert not ignore.parse("node_modules\n").prunes("src")


def test_containerignore_wins_over_dockerignore(tmp_path):
    (tmp_path / ".dockerignore").write_text("a\n")
    assert ignore.for_context(tmp_path).source == ".dockerignore"
    (tmp_path / ".containerignore").write_text("b\n")
    rules = ignore.for_context(tmp_path)
    assert rules.source == ".containerignore"
    assert rules.excluded("b") and not rules.excluded("a")


def test_no_ignore_file(tmp_path):
    rules = ignore.for_context(tmp_path)
    assert rules.source is None and rules.certain and not rules.excluded("x")


def test_byte_order_mark_is_dropped(tmp_path):
    (tmp_path / ".containerignore").write_bytes("\ufeffz\n".encode())
    assert ignore.for_context(tmp_path).excluded("z")


def test_walk_lists_what_a_build_may_copy(tmp_path):
    for name in ("a.txt", "logs/a.log", "logs/b.txt", "node_modules/m/i.js", "empty/"):
        path = tmp_path / name
        if name.endswith("/"):
            path.mkdir(parents=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    os.symlink("a.txt", tmp_path / "link")
    (tmp_path / ".containerignore").write_text("node_modules\n*.log\nlogs/*.log\n")
    listed = [path for path, _ in ignore.walk(tmp_path, ignore.for_context(tmp_path))]
    assert listed == [".containerignore", "a.txt", "empty", "link", "logs", "logs/b.txt"]


def test_walk_enters_excluded_directories_when_an_exception_may_apply(tmp_path):
    (tmp_path / "n" / "keep").mkdir(parents=True)
    (tmp_path / "n" / "keep" / "k").write_text("k")
    (tmp_path / "n" / "drop").write_text("d")
    (tmp_path / ".dockerignore").write_text("n\n!n/keep\n")
    listed = [path for path, _ in ignore.walk(tmp_path, ignore.for_context(tmp_path))]
    assert "n/keep/k" in listed
    assert "n/drop" not in listed
