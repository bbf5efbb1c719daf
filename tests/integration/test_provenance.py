"""Build provenance for real: the SLSA v1 statement a build keeps in the store (its fields, no
secret anywhere, kept through tag/save/load, gone with rmi, the same for the same commit), the
signed attestation a push attaches (cosign verify-attestation with the right and a wrong key)
and idpwrap verify's checks of source and builder, on docker-registry and the Gitea mode, for
one image and for a two-platform index.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from testing.cli import Cli, make_cli
from testing.images import build_two_platform_index, local_image, make_context, read_blob_json

PASSPHRASE = "provenance passphrase " + secrets.token_hex(8)
# Random per run, so that finding one anywhere means it leaked from this run.
TOKEN = "tok-" + secrets.token_hex(12)
REDACTED = "redacted-" + secrets.token_hex(12)
SECRET_FILE = "secret-file-" + secrets.token_hex(12)
REMOTE_PASSWORD = "remote-pw-" + secrets.token_hex(12)
REMOTE = f"https://alice:{REMOTE_PASSWORD}@git.example.test/team/app.git"
PUBLIC_REMOTE = "https://git.example.test/team/app.git"
BASE = "FROM scratch\nCOPY busybox /bin/busybox\n"
APP = (
    "FROM base:v1\nARG VERSION\nARG API_TOKEN\nARG INTERNAL_NOTE\n"
    'RUN --mount=type=secret,id=token ["/bin/busybox", "true"]\nCOPY app.txt /app.txt\n'
)
PREDICATE = "https://slsa.dev/provenance/v1"

pytestmark = pytest.mark.skipif(
    shutil.which("cosign") is None, reason="cosign is not installed (scripts/setup installs it)"
)


def git(directory: Path, *args: str) -> str:
    when = "@1700000000 +0000"
    env = {"PATH": os.environ["PATH"], "HOME": str(directory), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}  # fmt: skip
    done = subprocess.run(["git", "-C", str(directory), *args], env=env, check=True,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    return done.stdout.strip()


def make_source(directory: Path) -> Path:
    """A git work tree (remote with a user and password) holding the app's context in app/."""
    make_context(directory / "app", APP, {"app.txt": b"app\n"})
    (directory / "secret.txt").write_text(SECRET_FILE)
    git(directory, "init", "-q")
    git(directory, "remote", "add", "origin", REMOTE)
    git(directory, "add", "app")
    git(directory, "-c", "user.email=dev@example.test", "-c", "user.name=dev", "commit", "-qm", "1")
    return directory


def build_app(cli: Cli, source: Path, tag: str = "app:v1"):
    return cli.run(
        "build", "-q", "-t", tag, "--build-arg", "VERSION=1.2.3",
        "--build-arg", f"API_TOKEN={TOKEN}", "--build-arg", f"INTERNAL_NOTE={REDACTED}",
        "--redact-build-arg", "INTERNAL_NOTE", "--secret", f"id=token,src={source / 'secret.txt'}",
        str(source / "app"),
    )  # fmt: skip


def provenance(cli: Cli, image: str, *more: str) -> dict:
    shown = cli.run("inspect", "--provenance", image, *more)
    assert shown.returncode == 0, shown.describe()
    return json.loads(shown.stdout)


def stored_statement(cli: Cli, image: str, *more: str) -> bytes:
    """The statement's bytes as the store keeps them (inspect pretty-prints them)."""
    statement = provenance(cli, image, *more)
    return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A store with base:v1 and app:v1 (FROM base:v1, in a git work tree), and two key pairs."""
    root = tmp_path_factory.mktemp("provenance")
    cli = make_cli(root / "cli", root / "store")
    base = make_context(root / "base", BASE)
    built = cli.run("build", "-q", "-t", "base:v1", str(base))
    assert built.returncode == 0, built.describe()
    source = make_source(root / "source")
    built = build_app(cli, source)
    assert built.returncode == 0, built.describe()
    keys = root / "keys"
    keys.mkdir()
    for prefix in ("cosign", "other"):
        made = cli.run("keygen", "--output-prefix", str(keys / prefix),
                       env={"IDPWRAP_SIGN_PASSPHRASE": PASSPHRASE})  # fmt: skip
        assert made.returncode == 0, made.describe()
    (keys / "passphrase").write_text(PASSPHRASE + "\n")
    return cli, source, keys


def test_the_statement_names_the_image_its_base_source_and_builder(world):
    cli, source, _ = world
    statement = provenance(cli, "app:v1")
    image = local_image(cli.store, "app:v1").digest
    base = local_image(cli.store, "base:v1").digest
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == PREDICATE
    assert statement["subject"] == [{"name": "app", "digest": {"sha256": image[7:]}}]
    definition = statement["predicate"]["buildDefinition"]
    assert definition["buildType"] == "urn:idpwrap:buildtype:buildah-bud:v1"
    external = definition["externalParameters"]
    assert external["context"] == "app" and external["containerfile"] == "Containerfile"
    assert external["buildArgs"] == {"VERSION": "1.2.3"}
    dependencies = definition["resolvedDependencies"]
    assert {"uri": f"git+{PUBLIC_REMOTE}", "digest": {"gitCommit": git(source, "rev-parse",
            "HEAD")}} in dependencies  # fmt: skip
    (pinned,) = [entry for entry in dependencies if entry.get("name") == "base:v1"]
    assert pinned["digest"] == {"sha256": base[7:]}
    assert pinned["uri"] == "pkg:docker/base@v1"
    builder = statement["predicate"]["runDetails"]["builder"]
    assert builder["id"] == "urn:idpwrap:builder:local"
    assert set(builder["version"]) == {"idpwrap", "buildah"}
    assert "metadata" not in statement["predicate"]["runDetails"]  # no wall-clock time


def test_no_secret_reaches_the_statement_or_any_stored_file(world):
    from testing.filescan import files_containing

    cli, _, _ = world
    text = json.dumps(provenance(cli, "app:v1"))
    for secret in (TOKEN, REDACTED, SECRET_FILE, REMOTE_PASSWORD, "alice", "API_TOKEN", "token"):
        assert secret not in text, secret
    for secret in (SECRET_FILE, REMOTE_PASSWORD):
        assert files_containing(secret.encode(), [cli.store]) == [], secret
    # buildah writes a RUN step's build arguments into the image's history (as docker build
    # does): the config has them, the provenance's blobs do not.
    config = local_image(cli.store, "app:v1").manifest["config"]["digest"]
    for secret in (TOKEN, REDACTED):
        found = files_containing(secret.encode(), [cli.store])
        assert found in ([], [str(cli.store / "blobs" / "sha256" / config[7:])]), secret


def test_kept_through_tag_save_and_load_and_gone_with_rmi(world, tmp_path):
    cli, _, _ = world
    statement = stored_statement(cli, "app:v1")
    tagged = cli.run("tag", "app:v1", "app:copy")
    assert tagged.returncode == 0, tagged.describe()
    assert stored_statement(cli, "app:copy") == statement
    archive = tmp_path / "app.tar"
    saved = cli.run("save", "app:copy", "-o", str(archive))
    assert saved.returncode == 0, saved.describe()
    other = make_cli(tmp_path / "other", tmp_path / "other-store")
    loaded = other.run("load", "-i", str(archive))
    assert loaded.returncode == 0, loaded.describe()
    assert stored_statement(other, "app:copy") == statement
    index = json.loads((other.store / "index.json").read_text())
    artifacts = [e for e in index["manifests"] if e.get("artifactType")]
    assert len(artifacts) == 1
    artifact = read_blob_json(other.store, artifacts[0]["digest"])
    assert artifact["subject"]["digest"] == local_image(other.store, "app:copy").digest
    removed = other.run("rmi", "app:copy")
    assert removed.returncode == 0, removed.describe()
    assert json.loads((other.store / "index.json").read_text())["manifests"] == []
    assert list((other.store / "blobs" / "sha256").iterdir()) == []
    untag = cli.run("rmi", "app:copy")  # app:v1 still names it: the provenance stays
    assert untag.returncode == 0, untag.describe()
    assert stored_statement(cli, "app:v1") == statement


def test_the_same_commit_gives_the_same_statement_in_another_store(world, tmp_path):
    cli, source, _ = world
    other = make_cli(tmp_path / "other", tmp_path / "other-store")
    base = make_context(tmp_path / "base", BASE)
    assert other.run("build", "-q", "-t", "base:v1", str(base)).returncode == 0
    clone = tmp_path / "clone"
    shutil.copytree(source, clone, symlinks=True)
    built = build_app(other, clone)
    assert built.returncode == 0, built.describe()
    assert stored_statement(other, "app:v1") == stored_statement(cli, "app:v1")


def cosign(registry, credentials, *args: str, home: Path) -> subprocess.CompletedProcess:
    """The real cosign CLI as a user runs it, its credentials in its own docker config."""
    config = home / "docker"
    config.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(":".join(credentials).encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "DOCKER_CONFIG": str(config)}
    argv = ["cosign", *args, "--registry-cacert", registry.ca_file]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def verified_statements(stdout: str) -> list[dict]:
    return [json.loads(base64.b64decode(json.loads(line)["payload"]))
            for line in stdout.splitlines() if line.strip()]  # fmt: skip


def push_signed(cli: Cli, registry, credentials, source: str, dest: str, keys: Path):
    return cli.run(
        "push", "--registry", registry.url, *registry.tls_options(), "--progress", "none",
        "--sign-by-sigstore-private-key", str(keys / "cosign.key"),
        "--sign-passphrase-file", str(keys / "passphrase"), source, dest, credentials=credentials,
    )  # fmt: skip


def registry_and_credentials(request, name: str):
    registry = request.getfixturevalue(name)
    if name == "gitea_registry":
        return registry, ("giteaAdmin", registry.secret("giteaAdmin", "token"))
    return registry, registry.credentials


@pytest.mark.parametrize("registry_name", ["registry", "gitea_registry"])
def test_a_signed_push_attaches_what_cosign_and_verify_check(
    world, request, registry_name, tmp_path
):
    cli, source, keys = world
    registry, credentials = registry_and_credentials(request, registry_name)
    digest = local_image(cli.store, "app:v1").digest
    dest = f"giteaadmin/prov-{registry_name.replace('_', '-')}:v1"
    pushed = push_signed(cli, registry, credentials, "app:v1", dest, keys)
    assert pushed.returncode == 0, pushed.describe()
    repository = f"{registry.host}/{dest.split(':')[0]}"
    assert f"attested {repository}@{digest}: SLSA provenance stored as {repository}:" \
           f"sha256-{digest[7:]}.att (cosign)" in pushed.stderr  # fmt: skip
    reference = f"{registry.host}/{dest}"

    checked = cosign(registry, credentials, "verify-attestation", "--type", "slsaprovenance1",
                     "--key", str(keys / "cosign.pub"), "--insecure-ignore-tlog=true", reference,
                     home=tmp_path)  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    (statement,) = verified_statements(checked.stdout)
    assert statement["predicateType"] == PREDICATE
    assert statement["subject"][0]["digest"] == {"sha256": digest[7:]}
    stored = provenance(cli, "app:v1")["predicate"]["buildDefinition"]
    assert (
        statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        == (stored["resolvedDependencies"])
    )
    wrong = cosign(registry, credentials, "verify-attestation", "--type", "slsaprovenance1",
                   "--key", str(keys / "other.pub"), "--insecure-ignore-tlog=true", reference,
                   home=tmp_path)  # fmt: skip
    assert wrong.returncode != 0, wrong.stdout

    commit = git(source, "rev-parse", "HEAD")

    def verify(*more: str, key: str = "cosign.pub"):
        return cli.run("verify", reference, "--key", str(keys / key), *registry.tls_options(),
                       *more, credentials=credentials)  # fmt: skip

    ours = verify("--source-commit", commit, "--source-uri", PUBLIC_REMOTE,
                  "--builder", "urn:idpwrap:builder:local")  # fmt: skip
    assert ours.returncode == 0, ours.describe()
    assert f"Provenance: SLSA v1, built from git+{PUBLIC_REMOTE} at {commit}" in ours.stdout
    for option, value, said in (
        ("--source-commit", "0" * 40, f"built from commit {commit}, not {'0' * 40}"),
        ("--source-uri", "https://git.example.test/team/other", "not https://git.example"),
        ("--builder", "https://ci.example.test/runner", "built by urn:idpwrap:builder:local"),
    ):
        refused = verify(option, value)
        assert refused.returncode == 10, refused.describe()
        (line,) = refused.error_lines()
        assert f"the provenance of {digest} does not match: " in line and said in line, line
    other_key = verify("--source-commit", commit, key="other.pub")
    assert other_key.returncode == 10, other_key.describe()


def test_a_two_platform_index_has_a_statement_per_child_and_its_own(world, registry, tmp_path):
    cli, _, keys = world
    index = build_two_platform_index(cli, tmp_path / "two", "two:v1")
    children = {f"{c['platform']['os']}/{c['platform']['architecture']}": c["digest"]
                for c in read_blob_json(cli.store, index)["manifests"]}  # fmt: skip
    top = provenance(cli, "two:v1")
    assert top["subject"][0]["digest"] == {"sha256": index[7:]}
    params = top["predicate"]["buildDefinition"]["externalParameters"]
    assert params["platforms"] == ["linux/amd64", "linux/arm64"] and "platform" not in params
    for platform, digest in children.items():
        child = provenance(cli, "two:v1", "--platform", platform)
        assert child["subject"][0]["digest"] == {"sha256": digest[7:]}
        external = child["predicate"]["buildDefinition"]["externalParameters"]
        assert external["platform"] == platform

    credentials = registry.credentials
    pushed = push_signed(cli, registry, credentials, "two:v1", "giteaadmin/two:v1", keys)
    assert pushed.returncode == 0, pushed.describe()
    repository = f"{registry.host}/giteaadmin/two"
    for digest in (index, *children.values()):
        assert pushed.stderr.count(f"attested {repository}@{digest}:") == 1
        checked = cosign(registry, credentials, "verify-attestation", "--type",
                         "slsaprovenance1", "--key", str(keys / "cosign.pub"),
                         "--insecure-ignore-tlog=true", f"{repository}@{digest}",
                         home=tmp_path)  # fmt: skip
        assert checked.returncode == 0, checked.stderr
        (statement,) = verified_statements(checked.stdout)
        assert statement["subject"][0]["digest"] == {"sha256": digest[7:]}
    ours = cli.run("verify", f"{repository}:v1", "--key", str(keys / "cosign.pub"),
                   *registry.tls_options(), credentials=credentials)  # fmt: skip
    assert ours.returncode == 0, ours.describe()
    assert f"Digest: {index}" in ours.stdout and "Provenance: SLSA v1" in ours.stdout


def test_an_image_without_provenance_is_said_to_have_none(world, registry, tmp_path):
    import io
    import tarfile

    cli, _, keys = world
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    imported = cli.run("import", str(rootfs), "plain:v1")
    assert imported.returncode == 0, imported.describe()
    shown = cli.run("inspect", "--provenance", "plain:v1")
    assert shown.returncode == 1 and "has no provenance in the store" in shown.error_lines()[0]
    credentials = registry.credentials
    pushed = push_signed(cli, registry, credentials, "plain:v1", "giteaadmin/plain:v1", keys)
    assert pushed.returncode == 0, pushed.describe()
    assert "the store has no provenance for this image" in pushed.stderr
    reference = f"{registry.host}/giteaadmin/plain:v1"
    ours = cli.run("verify", reference, "--key", str(keys / "cosign.pub"),
                   *registry.tls_options(), credentials=credentials)  # fmt: skip
    assert ours.returncode == 0, ours.describe()
    assert "Provenance: none attached" in ours.stdout
    asked = cli.run("verify", reference, "--key", str(keys / "cosign.pub"), "--source-commit",
                    "0" * 40, *registry.tls_options(), credentials=credentials)  # fmt: skip
    assert asked.returncode == 10, asked.describe()
    assert "has no provenance attestation" in asked.error_lines()[0]
