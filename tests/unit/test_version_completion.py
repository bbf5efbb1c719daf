"""idpwrap --version, idpwrap version (tool versions through sh), idpwrap completion, import."""

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from idpwrap import __version__
from idpwrap.build import rootfs
from idpwrap.cli import COMMANDS, main
from idpwrap.commands import completion, version
from idpwrap.commands.import_rootfs import parse_changes
from idpwrap.errors import UsageError


def fake_tool(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def test_version_flag_prints_the_version_alone(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"{__version__}\n"


def test_version_flag_imports_neither_argparse_nor_the_commands():
    code = (
        "import sys; from idpwrap.cli import run; run(['--version']);"
        " print(sorted(m for m in sys.modules if m.startswith('idpwrap') or m == 'argparse'))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.splitlines()[-1] == "['idpwrap', 'idpwrap.cli']"


def test_version_command_reads_the_tools_versions(tmp_path, monkeypatch, capsys):
    fake_tool(tmp_path, "buildah", 'echo "buildah version 1.28.2 (image-spec 1.1.0-rc2)"')
    fake_tool(tmp_path, "skopeo", 'echo "skopeo version 1.9.3"')
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["version", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {name: printed[name] for name in ("idpwrap", "buildah", "skopeo", "python")} == {
        "idpwrap": __version__,
        "buildah": "1.28.2",
        "skopeo": "1.9.3",
        "python": ".".join(str(part) for part in sys.version_info[:3]),
    }
    assert printed["tested"] == (sys.version_info[:2] == (3, 11))


def test_version_command_says_when_a_tool_is_missing_or_fails(tmp_path, monkeypatch):
    fake_tool(tmp_path, "skopeo", 'echo "broken install" >&2; exit 3')
    monkeypatch.setenv("PATH", str(tmp_path))
    assert version.tool_version("buildah") == "not found"
    assert version.tool_version("skopeo") == "error: broken install"


def test_completion_lists_every_command_and_its_options():
    script = completion.bash_script()
    for name in COMMANDS:
        assert f"    {name}) options=" in script
    assert "--password-stdin" in script and "--all-tags" in script


def test_completion_does_not_offer_the_refused_password_options():
    for command in ("push", "login"):
        offered = completion.options_by_command()[command]
        assert "--password-stdin" in offered
        assert "--password" not in offered and "-p" not in offered


@pytest.mark.skipif(not Path("/bin/bash").exists(), reason="needs bash")
def test_bash_completion_completes_commands_options_and_stored_tags(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_tool(bin_dir, "idpwrap", 'printf "REPOSITORY  TAG\\nmyapp  v1\\nmyapp  v2\\n"')
    script = tmp_path / "completion.bash"
    script.write_text(completion.bash_script())
    probe = f"""
    PATH={bin_dir}:$PATH
    source {script}
    COMP_WORDS=(idpwrap pu); COMP_CWORD=1; _idpwrap; echo "${{COMPREPLY[*]}}"
    COMP_WORDS=(idpwrap push --all); COMP_CWORD=2; _idpwrap; echo "${{COMPREPLY[*]}}"
    COMP_WORDS=(idpwrap rmi my); COMP_CWORD=2; _idpwrap; echo "${{COMPREPLY[*]}}"
    """
    lines = subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert lines == ["push", "--all-tags", "myapp:v1 myapp:v2"]


def test_zsh_completion_goes_through_bashcompinit(capsys):
    assert main(["completion", "zsh"]) == 0
    assert capsys.readouterr().out.startswith("autoload -U +X bashcompinit && bashcompinit\n")


def rootfs_tar(path: Path, compress: bool = False) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = b"#!/bin/sh\necho hi\n"
        info = tarfile.TarInfo("bin/hello")
        info.size, info.mode = len(data), 0o755
        archive.addfile(info, io.BytesIO(data))
    content = buffer.getvalue()
    path.write_bytes(gzip.compress(content) if compress else content)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_import_writes_a_valid_one_layer_layout(tmp_path, compress):
    tarball = rootfs_tar(tmp_path / "rootfs.tar", compress)
    layout = tmp_path / "layout"
    digest = rootfs.write_layout(tarball, layout, changes={"Cmd": ["/bin/hello"]})
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / digest.split(":")[1]).read_text())
    layer = manifest["layers"][0]
    layer_bytes = (blobs / layer["digest"].split(":")[1]).read_bytes()
    assert layer["size"] == len(layer_bytes)
    config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_text())
    import hashlib

    uncompressed = gzip.decompress(layer_bytes)
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(uncompressed).hexdigest()}"]
    assert config["config"]["Cmd"] == ["/bin/hello"]
    assert not list(blobs.glob(".*"))  # no partial file left
    # the same tarball gives the same layer: gzip's header carries no time or name
    again = tmp_path / "again"
    rootfs.write_layout(tarball, again)
    assert (again / "blobs" / "sha256" / layer["digest"].split(":")[1]).exists()


def test_import_refuses_what_is_not_a_tar(tmp_path):
    not_tar = tmp_path / "notes.txt"
    not_tar.write_text("hello\n" * 200)
    with pytest.raises(UsageError, match="not a tar archive"):
        rootfs.write_layout(not_tar, tmp_path / "layout")
    with pytest.raises(UsageError, match="is not a file"):
        rootfs.write_layout(tmp_path / "missing.tar", tmp_path / "layout2")


def test_import_changes():
    config = parse_changes(['CMD ["/bin/bash"]', "ENV A=1", "ENV B=2", "WORKDIR /srv",
                            "ENTRYPOINT echo hi", "LABEL org.x=y"])  # fmt: skip
    assert config == {
        "Cmd": ["/bin/bash"],
        "Env": ["A=1", "B=2"],
        "WorkingDir": "/srv",
        "Entrypoint": ["/bin/sh", "-c", "echo hi"],
        "Labels": {"org.x": "y"},
    }
    with pytest.raises(UsageError, match="use one of"):
        parse_changes(["EXPOSE 80"])


def test_import_command_lands_in_the_store(tmp_path, capsys):
    tarball = rootfs_tar(tmp_path / "rootfs.tar")
    store = tmp_path / "store"
    assert main(["import", "--store", str(store), str(tarball), "base:v1"]) == 0
    assert "Image saved to local store: base:v1" in capsys.readouterr().out
    index = json.loads((store / "index.json").read_text())
    names = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    assert names == ["base:v1"]
    assert not os.listdir(store / ".idpwrap.tmp")
