"""``push --provenance`` without a key, for real: the stored provenance attached unsigned as an
OCI artifact through the referrers tag schema (neither docker-registry 2.8 nor the Gitea mode
has the referrers API), read back with plain HTTP requests; once per digest; a refusal is one
warning and exit 0; ``verify`` without ``--key`` checks what it finds there, said unsigned.
"""

from __future__ import annotations

import json

import pytest

from testing.cli import Cli, make_cli
from testing.images import build_two_platform_index, local_image, make_context, read_blob_json
from tests.integration.test_provenance import (
    BASE,
    PUBLIC_REMOTE,
    build_app,
    git,
    make_source,
    stored_statement,
)

IN_TOTO = "application/vnd.in-toto+json"
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A store with app:v1 (built in a git work tree, so it has a provenance)."""
    root = tmp_path_factory.mktemp("attach")
    cli = make_cli(root / "cli", root / "store")
    built = cli.run("build", "-q", "-t", "base:v1", str(make_context(root / "base", BASE)))
    assert built.returncode == 0, built.describe()
    source = make_source(root / "source")
    built = build_app(cli, source)
    assert built.returncode == 0, built.describe()
    return cli, source


def target(request, name: str):
    """The registry, the credentials idpwrap pushes with, and a client that reads it back."""
    registry = request.getfixturevalue(name)
    if name == "gitea_registry":
        token = registry.secret("giteaAdmin", "token")
        return registry, ("giteaAdmin", token), registry.client("giteaAdmin", "token")
    return registry, registry.credentials, registry.client()


def push(cli: Cli, registry, credentials, source: str, dest: str, *more: str):
    return cli.run(
        "push", "--registry", registry.url, *registry.tls_options(), "--progress", "none",
        *more, source, dest, credentials=credentials,
    )  # fmt: skip


def said(result) -> list[str]:
    """The lines idpwrap said on stderr (notices and errors)."""
    return [line for line in result.stderr.splitlines() if line.startswith("idpwrap:")]


def referrers(client, repository: str, digest: str) -> list[dict]:
    """The tag schema's index for ``digest``, read with a plain GET: its entries."""
    answer = client.manifest(repository, f"sha256-{digest[7:]}")
    assert answer.status == 200, (answer.status, answer.body[:300])
    index = json.loads(answer.body)
    assert index["mediaType"] == INDEX and index["schemaVersion"] == 2
    return index["manifests"]


def read_back(client, repository: str, digest: str) -> tuple[dict, bytes]:
    """The one in-toto artifact referring to ``digest``: its manifest and its statement."""
    (entry,) = [e for e in referrers(client, repository, digest) if e["artifactType"] == IN_TOTO]
    assert entry["mediaType"] == MANIFEST
    assert entry["annotations"] == {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v1"}
    answer = client.manifest(repository, entry["digest"])
    assert answer.status == 200 and len(answer.body) == entry["size"]
    manifest = json.loads(answer.body)
    assert manifest["artifactType"] == IN_TOTO
    assert manifest["subject"]["digest"] == digest
    (layer,) = manifest["layers"]
    blob = client.blob(repository, layer["digest"])
    assert blob.status == 200
    return manifest, blob.body


@pytest.mark.parametrize("registry_name", ["registry", "gitea_registry", "http_registry"])
def test_attached_unsigned_through_the_tag_schema_once(world, request, registry_name):
    cli, _ = world
    registry, credentials, client = target(request, registry_name)
    digest = local_image(cli.store, "app:v1").digest
    repository = f"giteaadmin/attach-{registry_name.replace('_', '-')}"
    pushed = push(cli, registry, credentials, "app:v1", f"{repository}:v1", "--provenance", "-v")
    assert pushed.returncode == 0, pushed.describe()
    assert "through the referrers tag schema" in pushed.stderr
    (line,) = [line for line in pushed.stdout.splitlines() if line.startswith("Provenance")]
    artifact = line.split("@", 1)[1].split()[0]
    assert line == f"Provenance attached: {registry.host}/{repository}@{artifact} (unsigned)"

    manifest, statement = read_back(client, repository, digest)
    assert statement == stored_statement(cli, "app:v1")
    assert manifest["config"] == {"mediaType": "application/vnd.oci.empty.v1+json",
                                  "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e"
                                            "8310c060f61caaff8a", "size": 2}  # fmt: skip
    first = client.manifest_digest(repository, f"sha256-{digest[7:]}")

    # again, copied for real, and with the image already there: no second entry
    for more in (["--no-up-to-date-check"], []):
        again = push(cli, registry, credentials, "app:v1", f"{repository}:v1", "--provenance",
                     "--json", *more)  # fmt: skip
        assert again.returncode == 0, again.describe()
        assert json.loads(again.stdout)["provenance"] == [
            f"{registry.host}/{repository}@{artifact}"
        ]
        assert len(referrers(client, repository, digest)) == 1
        assert client.manifest_digest(repository, f"sha256-{digest[7:]}") == first
    without = push(cli, registry, credentials, "app:v1", f"{repository}:v1", "--json")
    assert "provenance" not in json.loads(without.stdout)


def test_the_config_key_and_a_two_platform_index(world, registry, tmp_path):
    cli, _ = world
    index = build_two_platform_index(cli, tmp_path / "two", "two:v1")
    children = {c["digest"]: ["--platform", f"linux/{c['platform']['architecture']}"]
                for c in read_blob_json(cli.store, index)["manifests"]}  # fmt: skip
    client = registry.client()
    repository = "giteaadmin/attach-two"
    configured = {"IDPWRAP_PROVENANCE": "true"}
    pushed = cli.run("push", "--registry", registry.url, *registry.tls_options(), "--progress",
                     "none", "--json", "two:v1", f"{repository}:v1",
                     credentials=registry.credentials, env=configured)  # fmt: skip
    assert pushed.returncode == 0, pushed.describe()
    assert len(json.loads(pushed.stdout)["provenance"]) == 3
    for digest, platform in {index: [], **children}.items():
        _, statement = read_back(client, repository, digest)
        assert statement == stored_statement(cli, "two:v1", *platform)


def test_a_refused_attach_is_one_warning_and_the_push_succeeds(world, gitea_registry):
    cli, _ = world
    registry = gitea_registry
    repository = "giteaadmin/attach-refused"
    digest = local_image(cli.store, "app:v1").digest
    token = ("giteaAdmin", registry.secret("giteaAdmin", "token"))
    pushed = push(cli, registry, token, "app:v1", f"{repository}:v1")
    assert pushed.returncode == 0, pushed.describe()
    # a read-only token: the image is already there, the artifact cannot be written
    reader = ("giteaAdmin", registry.secret("giteaAdmin", "read_token"))
    refused = push(cli, registry, reader, "app:v1", f"{repository}:v1", "--provenance")
    assert refused.returncode == 0, refused.describe()
    (warning,) = said(refused)
    assert warning.startswith("idpwrap: the provenance was not attached: "), warning
    assert "HTTP 403" in warning or "HTTP 401" in warning, warning
    assert "Provenance attached" not in refused.stdout
    # the tag schema's tag already holds something else: not replaced
    other = push(cli, registry, token, "app:v1", f"{repository}:sha256-{digest[7:]}")
    assert other.returncode == 0, other.describe()
    kept = push(cli, registry, token, "app:v1", f"{repository}:v1", "--provenance")
    assert kept.returncode == 0, kept.describe()
    (warning,) = said(kept)
    assert "holds something other than an OCI index" in warning, warning


def test_an_image_without_provenance_is_said_so(world, registry, tmp_path):
    import io
    import tarfile

    cli, _ = world
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    assert cli.run("import", str(rootfs), "bare:v1").returncode == 0
    pushed = push(cli, registry, registry.credentials, "bare:v1", "giteaadmin/bare:v1",
                  "--provenance")  # fmt: skip
    assert pushed.returncode == 0, pushed.describe()
    (warning,) = said(pushed)
    assert "the provenance was not attached: the store has none for" in warning


@pytest.mark.parametrize("registry_name", ["registry", "gitea_registry"])
def test_verify_without_a_key_checks_the_unsigned_provenance(world, request, registry_name):
    cli, source = world
    registry, credentials, _ = target(request, registry_name)
    repository = f"giteaadmin/verify-{registry_name.replace('_', '-')}"
    pushed = push(cli, registry, credentials, "app:v1", f"{repository}:v1", "--provenance")
    assert pushed.returncode == 0, pushed.describe()
    commit = git(source, "rev-parse", "HEAD")
    reference = f"{registry.host}/{repository}:v1"

    def verify(*more: str):
        return cli.run("verify", reference, *registry.tls_options(), *more,
                       credentials=credentials)  # fmt: skip

    ours = verify("--source-commit", commit, "--source-uri", PUBLIC_REMOTE,
                  "--builder", "urn:idpwrap:builder:local")  # fmt: skip
    assert ours.returncode == 0, ours.describe()
    assert "UNSIGNED" in ours.stdout
    assert f"built from git+{PUBLIC_REMOTE} at {commit}" in ours.stdout
    wrong = verify("--source-commit", "0" * 40)
    assert wrong.returncode == 10, wrong.describe()
    assert f"built from commit {commit}, not {'0' * 40}" in wrong.error_lines()[0]
    plain = push(cli, registry, credentials, "app:v1", f"{repository}-none:v1")
    assert plain.returncode == 0, plain.describe()
    none = cli.run("verify", f"{registry.host}/{repository}-none:v1", *registry.tls_options(),
                   credentials=credentials)  # fmt: skip
    assert none.returncode == 10, none.describe()
    assert "has no provenance attached" in none.error_lines()[0]


def test_build_push_provenance_attaches_it_too(world, registry, tmp_path):
    cli, _ = world
    context = make_context(tmp_path / "built", "FROM scratch\nCOPY a.txt /a.txt\n",
                           {"a.txt": b"built and pushed\n"})  # fmt: skip
    repository = "giteaadmin/attach-build"
    built = cli.run("build", "-q", "-t", "built:v1", str(context), f"--push={repository}:v1",
                    "--provenance", "--registry", registry.url, *registry.tls_options(), "--json",
                    credentials=registry.credentials)  # fmt: skip
    assert built.returncode == 0, built.describe()
    pushed = json.loads(built.stdout)
    assert pushed["digest"] == local_image(cli.store, "built:v1").digest
    (artifact,) = pushed["provenance"]
    _, statement = read_back(registry.client(), repository, pushed["digest"])
    assert statement == stored_statement(cli, "built:v1")
    (entry,) = referrers(registry.client(), repository, pushed["digest"])
    assert artifact == f"{registry.host}/{repository}@{entry['digest']}"


def test_the_attach_leaks_no_secret_into_debug_output(world, gitea_registry):
    import base64

    cli, _ = world
    registry = gitea_registry
    token = registry.secret("giteaAdmin", "token")
    pushed = push(cli, registry, ("giteaAdmin", token), "app:v1", "giteaadmin/attach-debug:v1",
                  "--provenance", "--debug")  # fmt: skip
    assert pushed.returncode == 0
    said = pushed.stdout + pushed.stderr
    assert "Provenance attached: " in pushed.stdout
    assert "(with credentials)" in said  # the attach's requests are logged, by name only
    basic = base64.b64encode(f"giteaAdmin:{token}".encode()).decode()
    for secret in (token, basic, "Bearer ey", "Authorization"):
        assert secret not in said, "a credential is in the --debug output"
