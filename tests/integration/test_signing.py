"""Signing on push and verifying, for real: idpwrap keygen, push --sign-by-sigstore-private-key,
cosign verify, idpwrap verify; against docker-registry and the Gitea mode.

Which tool signs depends on the toolchain: Debian 12's skopeo 1.9.3 cannot ("Debian-local
change: sigstore disabled"), so cosign signs there; Debian 13's skopeo 1.18 signs itself
(``scripts/test --in trixie tests/integration/test_signing.py``). Each path runs on one of them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from testing.cli import Cli, make_cli
from testing.images import local_image, make_context

# Random per run: the leak sweep looks at every process here, other test runs included.
PASSPHRASE = "correct horse " + secrets.token_hex(8)
CONTAINERFILE = "FROM scratch\nCOPY busybox /bin/busybox\nCOPY app.txt /app.txt\n"

pytestmark = pytest.mark.skipif(
    shutil.which("cosign") is None, reason="cosign is not installed (scripts/setup installs it)"
)


def keygen(cli: Cli, prefix: Path, passphrase: str = PASSPHRASE):
    return cli.run("keygen", "--output-prefix", str(prefix),
                   env={"IDPWRAP_SIGN_PASSPHRASE": passphrase})  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A CLI whose store has two images, and two key pairs made by idpwrap keygen."""
    base = tmp_path_factory.mktemp("signing")
    cli = make_cli(base / "cli", base / "store")
    for name, text in (("one", b"one\n"), ("two", b"two\n")):
        context = make_context(base / name, CONTAINERFILE, {"app.txt": text})
        built = cli.run("build", "--context", str(context), "-t", f"{name}:v1", "-q")
        assert built.returncode == 0, built.describe()
    keys = base / "keys"
    keys.mkdir()
    for prefix in ("cosign", "other"):
        made = keygen(cli, keys / prefix)
        assert made.returncode == 0, made.describe()
    return cli, keys


def skopeo_signs(world) -> bool:
    """The same probe idpwrap makes: skopeo signs with this key, or it cannot."""
    from idpwrap.sign import signing

    return signing.skopeo_signs(str(world[1] / "cosign.key"), PASSPHRASE)


def push_signed(cli: Cli, registry, source: str, dest: str, key: Path, *more: str):
    passphrase = key.parent / "passphrase"
    passphrase.write_text(PASSPHRASE + "\n")
    return cli.run(
        "push", "--registry", registry.url, *registry.tls_options(), "--progress", "plain",
        "--sign-by-sigstore-private-key", str(key), "--sign-passphrase-file", str(passphrase),
        *more, source, dest, credentials=registry.credentials,
    )  # fmt: skip


def cosign_verify(registry, reference: str, key: Path, tmp_path: Path):
    """The real cosign CLI, as a user would run it (credentials in its own docker config)."""
    import base64

    config = tmp_path / "docker"
    config.mkdir(exist_ok=True)
    user, secret = registry.credentials
    auth = base64.b64encode(f"{user}:{secret}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DOCKER_CONFIG": str(config)}
    return subprocess.run(
        ["cosign", "verify", "--key", str(key), "--insecure-ignore-tlog=true",
         "--registry-cacert", registry.ca_file, reference],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def copy_tag(registry, source: str, destination: str, tmp_path: Path) -> None:
    """skopeo copies a tag within the registry (credentials in an auth file, not argv)."""
    import base64

    user, secret = registry.credentials
    auth = base64.b64encode(f"{user}:{secret}".encode()).decode()
    authfile = tmp_path / "auth.json"
    authfile.write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    certs = tmp_path / "certs"
    certs.mkdir(exist_ok=True)
    shutil.copy(registry.ca_file, certs / "ca.crt")
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--authfile", str(authfile), "--src-cert-dir", str(certs),
         "--dest-cert-dir", str(certs), "--preserve-digests", f"docker://{source}",
         f"docker://{destination}"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def verify(cli: Cli, registry, reference: str, key: Path):
    return cli.run("verify", reference, "--key", str(key), *registry.tls_options(),
                   credentials=registry.credentials)  # fmt: skip


def signed_digests(result_stdout: str) -> set[str]:
    return {c["critical"]["image"]["docker-manifest-digest"] for c in json.loads(result_stdout)}


def check_signed_push(world, registry, tool: str, tmp_path: Path, dest: str = "giteaadmin/one:v1"):
    cli, keys = world
    digest = local_image(cli.store, "one:v1").digest
    pushed = push_signed(cli, registry, "one:v1", dest, keys / "cosign.key")
    assert pushed.returncode == 0, pushed.describe()
    repository = f"{registry.host}/{dest.split(':')[0]}"
    assert f"signing {repository}@{digest} with {keys / 'cosign.key'} ({tool}" in pushed.stderr
    assert f"signed {repository}@{digest}: signature stored as {repository}:" in pushed.stderr
    assert f"sha256-{digest.split(':')[1]}.sig ({tool})" in pushed.stderr
    checked = cosign_verify(registry, f"{registry.host}/{dest}", keys / "cosign.pub", tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert signed_digests(checked.stdout) == {digest}
    ours = verify(cli, registry, f"{registry.host}/{dest}", keys / "cosign.pub")
    assert ours.returncode == 0, ours.describe()
    assert f"Digest: {digest}" in ours.stdout
    assert not [p for p in Path(cli.tmpdir).iterdir() if p.name.startswith("idpwrap-")]
    return digest


def test_keygen_writes_a_private_key_only_its_owner_reads(world):
    cli, keys = world
    assert (keys / "cosign.key").stat().st_mode & 0o777 == 0o600
    # skopeo writes COSIGN, cosign 2.5 SIGSTORE: both read either.
    first = (keys / "cosign.key").read_text().splitlines()[0]
    assert first in ("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----",
                     "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----")  # fmt: skip
    assert (keys / "cosign.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    again = keygen(cli, keys / "cosign")
    assert again.returncode == 2
    (line,) = again.error_lines()
    assert "cosign.key already exists" in line
    prompt = cli.run("keygen", "--output-prefix", str(keys / "third"))
    assert prompt.returncode == 2
    assert "IDPWRAP_SIGN_PASSPHRASE" in prompt.error_lines()[0]
    assert not list(keys.glob("third*")) and not list(keys.glob(".idpwrap-keygen-*"))


def test_signed_through_cosign_where_skopeo_cannot(world, fresh_registry, tmp_path):
    if skopeo_signs(world):
        pytest.skip("this skopeo signs itself (Debian 13's 1.18): cosign's path runs on Debian 12")
    check_signed_push(world, fresh_registry, "cosign", tmp_path)


def test_signed_through_skopeo_where_it_can(world, fresh_registry, tmp_path):
    if not skopeo_signs(world):
        pytest.skip(
            "skopeo 1.9.3 cannot sign (Debian-local change: sigstore disabled): cosign"
            " signs here; skopeo's path runs in Debian 13 (scripts/test --in trixie)"
        )
    check_signed_push(world, fresh_registry, "skopeo", tmp_path)


def test_wrong_key_unsigned_and_mismatched_signatures_are_refused(world, registry, tmp_path):
    cli, keys = world
    tool = "skopeo" if skopeo_signs(world) else "cosign"
    digest = check_signed_push(world, registry, tool, tmp_path, "giteaadmin/refuse:one")
    reference = f"{registry.host}/giteaadmin/refuse:one"

    wrong = verify(cli, registry, reference, keys / "other.pub")
    assert wrong.returncode == 10, wrong.describe()
    (line,) = wrong.error_lines()
    assert f"{reference} is not signed by {keys / 'other.pub'}" in line
    assert cosign_verify(registry, reference, keys / "other.pub", tmp_path).returncode != 0

    pushed = cli.run("push", "--registry", registry.url, *registry.tls_options(),
                     "--progress", "none", "two:v1", "giteaadmin/refuse:two",
                     credentials=registry.credentials)  # fmt: skip
    assert pushed.returncode == 0, pushed.describe()
    unsigned = verify(cli, registry, f"{registry.host}/giteaadmin/refuse:two", keys / "cosign.pub")
    assert unsigned.returncode == 10, unsigned.describe()
    assert "is not signed: no signature" in unsigned.error_lines()[0]

    # one:v1's signature put where two:v1's would be: it names another digest.
    two = local_image(cli.store, "two:v1").digest
    repository = f"{registry.host}/giteaadmin/refuse"
    copy_tag(registry, f"{repository}:sha256-{digest.split(':')[1]}.sig",
             f"{repository}:sha256-{two.split(':')[1]}.sig", tmp_path)  # fmt: skip
    mismatch = verify(cli, registry, f"{registry.host}/giteaadmin/refuse:two", keys / "cosign.pub")
    assert mismatch.returncode == 10, mismatch.describe()
    (line,) = mismatch.error_lines()
    assert f"does not match its digest: it signs {digest}" in line


def test_all_tags_sign_each_digest_once(world, fresh_registry, tmp_path):
    cli, keys = world
    tagged = cli.run("tag", "one:v1", "one:latest")
    assert tagged.returncode == 0, tagged.describe()
    digest = local_image(cli.store, "one:v1").digest
    pushed = push_signed(cli, fresh_registry, "one", "giteaadmin/one", keys / "cosign.key",
                         "--all-tags")  # fmt: skip
    assert pushed.returncode == 0, pushed.describe()
    assert pushed.stderr.count(f"signed {fresh_registry.host}/giteaadmin/one@{digest}") == 1
    sig = fresh_registry.client().manifest("giteaadmin/one", f"sha256-{digest.split(':')[1]}.sig")
    assert sig.status == 200, sig
    assert len(json.loads(sig.body)["layers"]) == 1
    for tag in ("v1", "latest"):
        ours = verify(cli, fresh_registry, f"{fresh_registry.host}/giteaadmin/one:{tag}",
                      keys / "cosign.pub")  # fmt: skip
        assert ours.returncode == 0, ours.describe()


def test_a_key_that_cannot_sign_stops_the_push_before_it_starts(world, fresh_registry):
    cli, keys = world
    missing = push_signed(cli, fresh_registry, "one:v1", "giteaadmin/stop:v1", keys / "nope.key")
    assert missing.returncode == 2, missing.describe()
    assert "nope.key" in missing.error_lines()[0] and "idpwrap keygen" in missing.error_lines()[0]
    (keys / "wrong").write_text("not the passphrase\n")
    wrong = cli.run(
        "push", "--registry", fresh_registry.url, *fresh_registry.tls_options(),
        "--sign-by-sigstore-private-key", str(keys / "cosign.key"),
        "--sign-passphrase-file", str(keys / "wrong"), "one:v1", "giteaadmin/stop:v1",
        credentials=fresh_registry.credentials,
    )  # fmt: skip
    assert wrong.returncode == 1, wrong.describe()
    assert "nothing was pushed" in wrong.error_lines()[0]
    assert "not the passphrase" not in wrong.stderr + wrong.stdout
    assert fresh_registry.client().manifest("giteaadmin/stop", "v1").status == 404


def test_no_tool_that_can_sign_is_a_clear_error_before_the_push(world, fresh_registry, tmp_path):
    if skopeo_signs(world):
        pytest.skip("this skopeo signs: there is always a tool that can")
    cli, keys = world
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("skopeo", "buildah"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    passphrase = keys / "passphrase"
    passphrase.write_text(PASSPHRASE)
    result = cli.run(
        "push", "--registry", fresh_registry.url, *fresh_registry.tls_options(),
        "--sign-by-sigstore-private-key", str(keys / "cosign.key"),
        "--sign-passphrase-file", str(passphrase), "one:v1", "giteaadmin/none:v1",
        credentials=fresh_registry.credentials, env={"PATH": str(bin_dir)},
    )  # fmt: skip
    assert result.returncode == 7, result.describe()
    (line,) = result.error_lines()
    assert "install cosign" in line and "nothing was pushed" in line
    assert fresh_registry.client().manifest("giteaadmin/none", "v1").status == 404


def test_signed_push_to_the_gitea_mode(world, gitea_registry, tmp_path):
    cli, keys = world
    digest = local_image(cli.store, "one:v1").digest
    passphrase = keys / "passphrase"
    passphrase.write_text(PASSPHRASE)
    credentials = ("giteaAdmin", gitea_registry.secret("giteaAdmin", "token"))
    pushed = cli.run(
        "push", "--registry", gitea_registry.url, *gitea_registry.tls_options(),
        "--sign-by-sigstore-private-key", str(keys / "cosign.key"),
        "--sign-passphrase-file", str(passphrase), "one:v1", "giteaadmin/signed:v1",
        credentials=credentials,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.describe()
    reference = f"{gitea_registry.host}/giteaadmin/signed:v1"
    ours = cli.run("verify", reference, "--key", str(keys / "cosign.pub"),
                   *gitea_registry.tls_options(), credentials=credentials)  # fmt: skip
    assert ours.returncode == 0, ours.describe()
    assert f"Digest: {digest}" in ours.stdout
    other = cli.run("verify", reference, "--key", str(keys / "other.pub"),
                    *gitea_registry.tls_options(), credentials=credentials)  # fmt: skip
    assert other.returncode == 10, other.describe()


def sweep_for(secret: bytes, root_pid: int, leaks: set[str]) -> None:
    """Processes showing ``secret`` in their argv or environment, besides idpwrap itself and
    its children in the instant before exec (posix_spawn's child still shows the parent's
    memory: its argv and environment), which are idpwrap's own."""
    from testing.processes import is_the_root_itself, processes

    snapshot = list(processes())
    root = next((info for info in snapshot if info.pid == root_pid), None)
    for info in snapshot:
        if is_the_root_itself(info, root):
            continue
        name = os.path.basename(info.argv[0]) if info.argv else "?"
        if name == "setpriv" and "cosign" in map(os.path.basename, info.argv):
            # setpriv (the parent-death signal) execs cosign in place, with the environment
            # given to cosign: a sweep can meet it in the instant before that exec.
            name = "cosign"
        if secret in info.cmdline:
            leaks.add(f"{name} (pid {info.pid}) in its argv")
        if secret in info.environ:
            leaks.add(f"{name} (pid {info.pid}) in its environment")


def test_a_signed_push_leaks_neither_the_passphrase_nor_the_token(world, fresh_registry):
    from testing.filescan import files_containing

    cli, keys = world
    since = time.time() - 1
    passphrase = keys / "passphrase"
    passphrase.write_text(PASSPHRASE)
    process = cli.popen(
        "push", "--registry", fresh_registry.url, *fresh_registry.tls_options(),
        "--progress", "none", "--sign-by-sigstore-private-key", str(keys / "cosign.key"),
        "--sign-passphrase-file", str(passphrase), "two:v1", "giteaadmin/leak:v1",
        credentials=fresh_registry.credentials,
    )  # fmt: skip
    token_leaks: set[str] = set()
    passphrase_leaks: set[str] = set()
    sweeps = 0
    while process.poll() is None:
        sweep_for(fresh_registry.password.encode(), process.pid, token_leaks)
        sweep_for(PASSPHRASE.encode(), process.pid, passphrase_leaks)
        sweeps += 1
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert sweeps > 0
    # GITEA_TOKEN was given to idpwrap: no tool it runs sees it, in argv or environment.
    assert token_leaks == set()
    # The passphrase: in no argv; in an environment only as cosign's COSIGN_PASSWORD.
    assert {leak for leak in passphrase_leaks if not leak.startswith("cosign ")} == set()
    assert not {leak for leak in passphrase_leaks if leak.endswith("argv")}
    for secret in (fresh_registry.password.encode(), PASSPHRASE.encode()):
        assert files_containing(secret, [cli.tmpdir, cli.home, cli.store], since) == []
    assert not [p for p in Path(cli.tmpdir).iterdir() if p.name.startswith("idpwrap-")]


def test_a_pushed_multi_platform_index_is_signed_by_its_own_digest(world, fresh_registry, tmp_path):
    cli, keys = world
    context = tmp_path / "two"
    context.mkdir()
    (context / "Containerfile").write_text("FROM scratch\nCOPY app.txt /app.txt\n")
    (context / "app.txt").write_text("everywhere\n")
    built = cli.run("build", "--platform", "linux/amd64,linux/arm64", "-t", "both:v1", "-q",
                    str(context), timeout=600)  # fmt: skip
    assert built.returncode == 0, built.describe()
    index = local_image(cli.store, "both:v1").digest
    pushed = push_signed(cli, fresh_registry, "both:v1", "giteaadmin/both:v1", keys / "cosign.key")
    assert pushed.returncode == 0, pushed.describe()
    reference = f"{fresh_registry.host}/giteaadmin/both:v1"
    checked = cosign_verify(fresh_registry, reference, keys / "cosign.pub", tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert signed_digests(checked.stdout) == {index}
    ours = verify(cli, fresh_registry, reference, keys / "cosign.pub")
    assert ours.returncode == 0, ours.describe()
    assert f"Digest: {index}" in ours.stdout


def test_keygen_asks_for_the_passphrase_twice_on_a_terminal(world, tmp_path):
    import fcntl
    import termios

    cli, _ = world
    leader, follower = os.openpty()

    def controlling_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        [*cli.command, "keygen", "--output-prefix", str(tmp_path / "asked")],
        stdin=follower, stdout=follower, stderr=follower, env=cli.environment(),
        start_new_session=True, preexec_fn=controlling_terminal, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    seen = b""
    for prompt in (b"Passphrase for the new key: ", b"The same passphrase again: "):
        while prompt not in seen:
            chunk = os.read(leader, 1024)
            assert chunk, seen
            seen += chunk
        os.write(leader, PASSPHRASE.encode() + b"\n")
    assert process.wait(timeout=120) == 0
    os.close(leader)
    assert PASSPHRASE.encode() not in seen  # not echoed
    assert (tmp_path / "asked.key").is_file() and (tmp_path / "asked.pub").is_file()
    # the key opens with that passphrase: a signing probe with it succeeds or says skopeo cannot
    from idpwrap.sign import signing

    (tmp_path / "passphrase").write_text(PASSPHRASE + "\n")
    signer = signing.prepare(str(tmp_path / "asked.key"), str(tmp_path / "passphrase"))
    assert signer.tool in ("skopeo", "cosign")
