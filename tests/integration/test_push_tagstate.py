"""What the destination tag serves, before and after the copy (issue 19 items 1 and 5, issue 20
item 4), against docker-registry and the Gitea mode.

Whether skopeo ran is seen for real: ``skopeo`` on the push's PATH is a wrapper that writes a
line to a log and runs the real skopeo. The racing push is made deterministic by the same
wrapper: once push A's copy is done, it says so in a file and waits on a FIFO; the test pushes B
to the same tag meanwhile, then lets A go on to read the tag back.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from testing.cli import Cli, json_events
from testing.processes import wait_for
from testing.toolruns import logging_wrapper, on_path, started

pytestmark = pytest.mark.integration

EXIT_TAG_MOVED = 11


class Target:
    """One registry as the tests push to it: its flags, credentials and a client."""

    def __init__(self, kind: str, running) -> None:
        self.kind = kind
        self.running = running
        if kind == "gitea":
            self.credentials = ("giteaAdmin", running.secret("giteaAdmin", "token"))
        else:
            self.credentials = running.credentials

    def push(self, cli: Cli, *args: str, env: dict[str, str] | None = None):
        return cli.run(
            "push", "--registry", self.running.url, *self.running.tls_options(), *args,
            credentials=self.credentials, env=env,
        )  # fmt: skip

    def popen(self, cli: Cli, *args: str, env: dict[str, str] | None = None):
        return cli.popen(
            "push", "--registry", self.running.url, *self.running.tls_options(), *args,
            credentials=self.credentials, env=env,
        )  # fmt: skip

    def served(self, repository: str, tag: str) -> str:
        return self.running.client().manifest_digest(repository, tag)


@pytest.fixture(params=["registry", "gitea"])
def target(request) -> Target:
    if request.param == "gitea":
        return Target("gitea", request.getfixturevalue("gitea_registry"))
    return Target("registry", request.getfixturevalue("registry"))


def unique(name: str) -> str:
    return f"giteaadmin/{name}-{uuid.uuid4().hex[:8]}"


def test_a_tag_that_serves_the_image_starts_no_skopeo(
    prebuilt, prebuilt_cli: Cli, target: Target, tmp_path: Path
) -> None:
    repository, digest = unique("same"), prebuilt.hello.digest
    first = target.push(prebuilt_cli, "--progress", "none", "hello:v1", f"{repository}:v1")
    assert first.returncode == 0, first.describe()
    wrapper = logging_wrapper(tmp_path)
    digestfile = tmp_path / "digest"
    again = target.push(
        prebuilt_cli, "--progress", "json", "--json", "--digestfile", str(digestfile),
        "hello:v1", f"{repository}:v1", env=on_path(wrapper),
    )  # fmt: skip
    assert again.returncode == 0, again.describe()
    assert started(tmp_path) == []  # skopeo never started
    reference = f"{target.running.host}/{repository}:v1"
    result = json.loads(again.stdout)
    assert result == {
        "reference": reference, "digest": digest, "size": result["size"], "up_to_date": True,
        "tag_digest": digest,
    }  # fmt: skip
    events = json_events(again.stderr)
    assert events == [{"event": "up_to_date", "reference": reference, "digest": digest}]
    assert digestfile.read_text() == f"{digest}\n"
    plain = target.push(
        prebuilt_cli, "--progress", "plain", "hello:v1", f"{repository}:v1",
        env=on_path(wrapper),
    )  # fmt: skip
    assert plain.returncode == 0, plain.describe()
    assert plain.stdout == f"Up to date {reference}@{digest} (already in the registry)\n"
    assert "up to date" in plain.stderr
    assert started(tmp_path) == []
    forced = target.push(
        prebuilt_cli, "--progress", "none", "--no-up-to-date-check", "hello:v1",
        f"{repository}:v1", env=on_path(wrapper),
    )  # fmt: skip
    assert forced.returncode == 0, forced.describe()
    assert started(tmp_path) == ["copy"]
    assert forced.stdout == f"Pushed {reference}@{digest}\n"


def test_a_tag_that_serves_another_image_is_copied(
    prebuilt, prebuilt_cli: Cli, target: Target, tmp_path: Path
) -> None:
    repository = unique("other")
    first = target.push(prebuilt_cli, "--progress", "none", "hello:v1", f"{repository}:v1")
    assert first.returncode == 0, first.describe()
    wrapper = logging_wrapper(tmp_path)
    second = target.push(
        prebuilt_cli, "--progress", "none", "--json", "three:v1", f"{repository}:v1",
        env=on_path(wrapper),
    )  # fmt: skip
    assert second.returncode == 0, second.describe()
    assert started(tmp_path) == ["copy"]
    result = json.loads(second.stdout)
    assert result["up_to_date"] is False
    assert result["digest"] == result["tag_digest"] == prebuilt.three.digest
    assert target.served(repository, "v1") == prebuilt.three.digest


def test_all_tags_checks_each_tag(prebuilt, prebuilt_copy: Cli, target: Target, tmp_path) -> None:
    repository = unique("all")
    for tag in ("v2", "v3"):
        assert prebuilt_copy.run("tag", "hello:v1", f"hello:{tag}").returncode == 0
    one = target.push(prebuilt_copy, "--progress", "none", "hello:v2", f"{repository}:v2")
    assert one.returncode == 0, one.describe()
    wrapper = logging_wrapper(tmp_path)
    every = target.push(
        prebuilt_copy, "--progress", "none", "--json", "--all-tags", "hello", repository,
        env=on_path(wrapper),
    )  # fmt: skip
    assert every.returncode == 0, every.describe()
    results = {
        json.loads(line)["reference"].rsplit(":", 1)[1]: json.loads(line)
        for line in every.stdout.splitlines()
    }
    assert {tag: result["up_to_date"] for tag, result in results.items()} == {
        "v1": False, "v2": True, "v3": False,
    }  # fmt: skip
    assert started(tmp_path) == ["copy", "copy"]


def test_gitea_tag_with_capitals_is_compared_as_gitea_keeps_it(
    prebuilt, prebuilt_copy: Cli, gitea_registry, tmp_path: Path
) -> None:
    target = Target("gitea", gitea_registry)
    repository = unique("caps")
    assert prebuilt_copy.run("tag", "hello:v1", "hello:Up-1").returncode == 0
    first = target.push(prebuilt_copy, "--progress", "none", "hello:Up-1", f"{repository}:Up-1")
    assert first.returncode == 0, first.describe()
    wrapper = logging_wrapper(tmp_path)
    again = target.push(
        prebuilt_copy, "--progress", "none", "hello:Up-1", f"{repository}:Up-1",
        env=on_path(wrapper),
    )  # fmt: skip
    assert again.returncode == 0, again.describe()
    assert started(tmp_path) == []
    host, digest = gitea_registry.host, prebuilt.hello.digest
    assert f"Up to date {host}/{repository}:up-1@{digest}" in again.stdout


@pytest.fixture
def head_refusing_gitea(tmp_path_factory):
    from testing.gitea.running import start_gitea

    running = start_gitea(tmp_path_factory.mktemp("gitea-no-head"), refuse_manifest_head=True)
    try:
        yield running
    finally:
        running.stop()


def test_a_refused_lookup_falls_back_to_the_copy(
    prebuilt, prebuilt_cli: Cli, head_refusing_gitea, tmp_path: Path
) -> None:
    target = Target("gitea", head_refusing_gitea)
    repository = unique("refused")
    first = target.push(prebuilt_cli, "--progress", "none", "hello:v1", f"{repository}:v1")
    assert first.returncode == 0, first.describe()
    wrapper = logging_wrapper(tmp_path)
    again = target.push(
        prebuilt_cli, "-v", "--progress", "none", "hello:v1", f"{repository}:v1",
        env=on_path(wrapper),
    )  # fmt: skip
    assert again.returncode == 0, again.describe()
    assert started(tmp_path) == ["copy"]
    reference = f"{head_refusing_gitea.host}/{repository}:v1"
    assert again.stdout == f"Pushed {reference}@{prebuilt.hello.digest}\n"
    assert f"could not ask what {reference} serves (HTTP 401" in again.stderr
    assert "could not read" in again.stderr and "trusting the digest skopeo wrote" in again.stderr


def test_a_lookup_that_times_out_falls_back_to_the_copy(
    prebuilt, prebuilt_cli: Cli, registry, relay_to, tmp_path: Path
) -> None:
    repository = unique("slow")
    target = Target("registry", registry)
    first = target.push(prebuilt_cli, "--progress", "none", "hello:v1", f"{repository}:v1")
    assert first.returncode == 0, first.describe()
    relay = relay_to(registry, float(1 << 40))
    relay.hold_next(1)  # the first connection is the lookup's: nothing goes before it
    wrapper = logging_wrapper(tmp_path)
    again = prebuilt_cli.run(
        "push", "-v", "--registry", f"https://{relay.host}", *registry.tls_options(),
        "--progress", "none", "hello:v1", f"{repository}:v1", credentials=registry.credentials,
        env={**on_path(wrapper), "IDPWRAP_TAG_LOOKUP_TIMEOUT": "1"},
    )  # fmt: skip
    assert again.returncode == 0, again.describe()
    assert relay.held == 1
    assert started(tmp_path) == ["copy"]
    reference = f"{relay.host}/{repository}:v1"
    assert again.stdout == f"Pushed {reference}@{prebuilt.hello.digest}\n"
    assert f"could not ask what {reference} serves" in again.stderr


def test_racing_pushes_are_told_apart(
    prebuilt, prebuilt_cli: Cli, target: Target, tmp_path: Path
) -> None:
    """A copies hello; before A reads the tag back, B pushes three to the same tag."""
    repository = unique("race")
    wrapper = logging_wrapper(tmp_path, pause=True)
    digestfile = tmp_path / "digest"
    pusher_a = target.popen(
        prebuilt_cli, "--progress", "none", "--json", "--digestfile", str(digestfile),
        "hello:v1", f"{repository}:v1", env=on_path(wrapper),
    )  # fmt: skip
    try:
        copied = wait_for(
            lambda: (tmp_path / "copied").exists() or pusher_a.poll() is not None, 120
        )
        assert copied and pusher_a.poll() is None, pusher_a.communicate(timeout=30)
        pusher_b = target.push(prebuilt_cli, "--progress", "none", "three:v1", f"{repository}:v1")
        assert pusher_b.returncode == 0, pusher_b.describe()
        with open(tmp_path / "go", "w") as go:  # lets A's skopeo wrapper finish
            go.write("go\n")
        stdout, stderr = pusher_a.communicate(timeout=120)
    finally:
        if pusher_a.poll() is None:
            pusher_a.kill()
            pusher_a.wait()
    ours, theirs = prebuilt.hello.digest, prebuilt.three.digest
    assert pusher_a.returncode == EXIT_TAG_MOVED, stderr
    reference = f"{target.running.host}/{repository}:v1"
    errors = [line for line in stderr.splitlines() if line.startswith("idpwrap: error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    assert f"{reference} now serves {theirs}, not this push's {ours}" in errors[0]
    assert f"pullable as {target.running.host}/{repository}@{ours}" in errors[0]
    result = json.loads(stdout)
    assert (result["digest"], result["tag_digest"], result["up_to_date"]) == (ours, theirs, False)
    assert digestfile.read_text() == f"{ours} {theirs}\n"
    assert target.served(repository, "v1") == theirs
    assert target.running.client().manifest(repository, ours).status == 200  # still pullable
