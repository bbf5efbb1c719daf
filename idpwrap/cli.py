"""Arguments, output and exit codes. The only place an exception becomes a message.

Start-up time is part of every command's cost: ``idpwrap --version`` is answered before
argparse is imported, and only the chosen command's module is imported, to declare its
arguments and run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from types import ModuleType
    from typing import NoReturn

# name: (module, help, example). Each module has add_arguments(parser) and execute(args).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "build": (
        "idpwrap.commands.build",
        "build a Containerfile with buildah and save the image in the store",
        "example: idpwrap build -t myapp:v1.0.0 ./app",
    ),
    "push": (
        "idpwrap.commands.push",
        "copy an image from the store to a registry, with real progress",
        "example: GITEA_USERNAME=giteaAdmin GITEA_TOKEN=... idpwrap push"
        " --registry https://gitea.cnoe.localtest.me:8443 --insecure giteaAdmin/myapp:v1.0.0",
    ),
    "cache": (
        "idpwrap.commands.cache",
        "trim a build cache repository in a registry: old whole builds and their layer steps",
        "example: idpwrap cache trim giteaadmin/myapp-buildcache --older-than 7d --keep 5",
    ),
    "import": (
        "idpwrap.commands.import_rootfs",
        "make an image from a root filesystem tarball (like podman import)",
        "example: idpwrap import rootfs.tar debian:bookworm --change 'CMD [\"/bin/bash\"]'",
    ),
    "version": (
        "idpwrap.commands.version",
        "print the versions of idpwrap, buildah and skopeo",
        "example: idpwrap version",
    ),
    "completion": (
        "idpwrap.commands.completion",
        "print a shell completion script",
        "example: source <(idpwrap completion bash)",
    ),
    "images": (
        "idpwrap.commands.images",
        "list the images in the store",
        "example: idpwrap images",
    ),
    "rmi": (
        "idpwrap.commands.rmi",
        "remove images from the store",
        "example: idpwrap rmi myapp:v1.0.0",
    ),
    "inspect": (
        "idpwrap.commands.inspect",
        "show a stored image's digest, config, layers and history",
        "example: idpwrap inspect myapp:v1.0.0 --json",
    ),
    "tag": (
        "idpwrap.commands.tag",
        "give a stored image another name",
        "example: idpwrap tag myapp:v1.0.0 myapp:latest",
    ),
    "prune": (
        "idpwrap.commands.prune",
        "free blobs no image uses and leftovers of interrupted commands",
        "example: idpwrap prune",
    ),
    "save": (
        "idpwrap.commands.save",
        "write stored images to an oci-archive",
        "example: idpwrap save myapp:v1.0.0 base:v1 -o images.tar",
    ),
    "load": (
        "idpwrap.commands.load",
        "add the images of an oci-archive or docker-archive to the store",
        "example: idpwrap load -i images.tar",
    ),
    "login": (
        "idpwrap.commands.login",
        "check credentials with a registry and keep them in the OS keyring",
        "example: idpwrap login -u giteaAdmin https://gitea.cnoe.localtest.me:8443",
    ),
    "logout": (
        "idpwrap.commands.logout",
        "remove the credentials that login kept for a registry",
        "example: idpwrap logout https://gitea.cnoe.localtest.me:8443",
    ),
    "config": (
        "idpwrap.commands.config",
        "show the effective settings (flags, environment, config file, defaults) and their sources",
        "example: idpwrap config show",
    ),
    "keygen": (
        "idpwrap.commands.keygen",
        "make a sigstore key pair (cosign.key, cosign.pub) for signing pushed images",
        "example: idpwrap keygen --output-prefix cosign",
    ),
    "verify": (
        "idpwrap.commands.verify",
        "check that an image in a registry carries a valid signature by a key",
        "example: idpwrap verify gitea.cnoe.localtest.me:8443/giteaadmin/myapp:v1 --key cosign.pub",
    ),
    "doctor": (
        "idpwrap.commands.doctor",
        "check that builds and pushes can work here, and say how to fix what is missing",
        "example: idpwrap doctor --json",
    ),
}


def command_module(name: str) -> ModuleType:
    module = COMMANDS[name][0]
    __import__(module)
    return sys.modules[module]


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``selected``, only that command's arguments are declared."""
    import argparse

    from idpwrap import __version__

    class Formatter(argparse.RawDescriptionHelpFormatter):
        """argparse's own asks shutil for the width, an import (with bz2 and lzma) that
        every command would pay for just declaring its arguments."""

        def __init__(self, prog: str, *args: object, **kwargs: object) -> None:
            if kwargs.get("width") is None:
                import os

                try:
                    columns = int(os.environ.get("COLUMNS") or 0) or os.get_terminal_size(1)[0]
                except (ValueError, OSError):
                    columns = 80
                kwargs["width"] = columns - 2
            super().__init__(prog, *args, **kwargs)  # type: ignore[arg-type]

    class OneLineErrorParser(argparse.ArgumentParser):
        """Bad arguments get one line and exit code 2, like every other error."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs.setdefault("formatter_class", Formatter)
            # no prefixes: `--password SECRET` must not become --password-stdin plus a SOURCE
            kwargs.setdefault("allow_abbrev", False)
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

        def error(self, message: str) -> NoReturn:
            if message.startswith("argument COMMAND: invalid choice: "):
                import difflib

                word = message.split("'")[1] if message.count("'") >= 2 else ""
                close = difflib.get_close_matches(word, list(COMMANDS), n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                message = f"unknown command {word!r}{hint}"
            self.exit(2, f"idpwrap: error: {message} (see '{self.prog} --help')\n")

        def parse_args(  # type: ignore[override]
            self, args: Sequence[str] | None = None, namespace: None = None
        ) -> argparse.Namespace:
            # Words the command did not take are its error, with its own --help, not ours.
            parsed, extras = self.parse_known_args(args, namespace)
            if extras:
                command = subparsers.get(getattr(parsed, "command", None) or "", self)
                command.error(unrecognized(extras, command))
            return parsed

    common = OneLineErrorParser(add_help=False)
    common.add_argument(
        "--store", metavar="DIR",
        help="the local OCI image store (default: $IDPWRAP_STORE, else the config file's store,"
        " else $XDG_DATA_HOME/idpwrap/images)",
    )  # fmt: skip
    common.add_argument("-v", "--verbose", action="store_true", help="say what is done and why")
    common.add_argument("--debug", action="store_true", help="also show the commands run")
    parser = OneLineErrorParser(
        prog="idpwrap",
        description="Build container images with rootless buildah into a local OCI store,"
        " and push them to a registry (idpbuilder's Gitea first) with skopeo.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    subparsers: dict[str, argparse.ArgumentParser] = {}
    for name, (_, help_text, example) in COMMANDS.items():
        if selected not in (None, name):
            continue  # each subparser costs a copy of the common options: only the one used
        command = commands.add_parser(
            name, help=help_text, description=help_text, parents=[common], epilog=example,
            formatter_class=Formatter,
        )  # fmt: skip
        command_module(name).add_arguments(command)
        subparsers[name] = command
    return parser


# The options every command takes; podman users write them before the command too.
COMMON_FLAGS = ("-v", "--verbose", "--debug")
COMMON_WITH_VALUE = ("--store",)


def common_options_after_command(arguments: list[str]) -> list[str]:
    """``idpwrap --debug build ...`` read as ``idpwrap build --debug ...``: the common options
    given before the command are moved behind it, where its parser declares them."""
    leading: list[str] = []
    rest = list(arguments)
    while rest:
        word = rest[0]
        if word in COMMON_FLAGS or (word.split("=", 1)[0] in COMMON_WITH_VALUE and "=" in word):
            leading.append(rest.pop(0))
        elif word in COMMON_WITH_VALUE and len(rest) > 1:
            leading += [rest.pop(0), rest.pop(0)]
        else:
            break
    if not leading or not rest or rest[0] not in COMMANDS:
        return arguments
    return [rest[0], *leading, *rest[1:]]


def unrecognized(extras: Sequence[str], parser: argparse.ArgumentParser) -> str:
    """argparse's message, with the closest known option for a mistyped one."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    flags = [word.split("=", 1)[0] for word in extras if word.startswith("-")]
    if flags:
        import argparse
        import difflib

        known = [
            option
            for action in parser._actions
            if action.help != argparse.SUPPRESS
            for option in action.option_strings
        ]
        close = difflib.get_close_matches(flags[0], known, n=1, cutoff=0.6)
        if close:
            message += f"; did you mean {close[0]}?"
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; as the program itself (no ``argv``), exit without the interpreter's
    teardown, which costs a few milliseconds of every push and does nothing we need: every
    command has closed its files and stopped its children by the time it returns."""
    if argv is None:
        code = run_owning_tree()
    else:
        code = run(argv)
    log = sys.modules.get("idpwrap.log")
    if log is not None:
        log.phase("done")  # type: ignore[attr-defined]
    if argv is None:
        import os

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (BrokenPipeError, ValueError):
                code = code or 1
        os._exit(code)
    return code


def run_owning_tree() -> int:
    """The program's run: SIGTERM and SIGHUP end it as SIGINT does, and when a signal ended
    it, nothing it started (nor their children) is left running when it exits."""
    if sys.argv[1:] == ["--version"]:
        return run()
    from idpwrap import lifetime
    from idpwrap.errors import EXIT_HANGUP, EXIT_INTERRUPTED, EXIT_TERMINATED, Interrupted

    lifetime.own_tree()
    try:
        code = run()
    except Interrupted as error:  # before or after the command's own error handling
        sys.stderr.write(f"idpwrap: error: {error}\n")
        code = error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("idpwrap: interrupted\n")
        code = EXIT_INTERRUPTED
    if code in (EXIT_HANGUP, EXIT_INTERRUPTED, EXIT_TERMINATED):
        lifetime.ignore_termination()  # a second Ctrl-C must not cut the sweep short
        lifetime.stop_descendants()
    return code


def run(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments == ["--version"]:
        from idpwrap import __version__

        sys.stdout.write(f"{__version__}\n")
        return 0
    from idpwrap import log

    log.start_timing()
    from idpwrap.errors import EXIT_FAILED, EXIT_INTERRUPTED, IdpwrapError

    arguments = common_options_after_command(arguments)
    selected = arguments[0] if arguments and arguments[0] in COMMANDS else None
    args = build_parser(selected).parse_args(arguments)
    log.configure(args.verbose, args.debug)
    log.phase(f"{args.command}: imported, arguments parsed")
    try:
        return command_module(args.command).execute(args)
    except IdpwrapError as error:
        sys.stderr.write(f"idpwrap: error: {error}\n")
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("idpwrap: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILED
    except OSError as error:  # a write of ours on a full disk, wherever it was
        from idpwrap import diskfull

        if not diskfull.is_full(error):
            if args.debug:
                raise
            return internal_error(error)
        full = diskfull.from_error(error, [diskfull.temp_place()], "nothing was changed")
        sys.stderr.write(f"idpwrap: error: {full}\n")
        return full.exit_code
    except Exception as error:  # the last guard: a message, never a traceback, unless --debug
        if args.debug:
            raise
        return internal_error(error)


def internal_error(error: Exception) -> int:
    sys.stderr.write(
        f"idpwrap: internal error: {type(error).__name__}: {error} (run with --debug for"
        " details and report it)\n"
    )
    return 1
