"""``idpwrap completion bash|zsh``: a shell completion script, made from the parser itself.

    source <(idpwrap completion bash)            # or put it in ~/.bashrc
    source <(idpwrap completion zsh)             # zsh, through bashcompinit

Commands, their options, and for push/rmi/tag/inspect/save the tags in the store.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

TAKES_STORED_IMAGES = ("push", "rmi", "tag", "inspect", "save")

BASH_TEMPLATE = """# bash completion for idpwrap, made by `idpwrap completion bash`
_idpwrap() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" command="${{COMP_WORDS[1]}}" options=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "{commands} --help --version" -- "$cur"))
    return
  fi
  case "$command" in
{cases}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$options" -- "$cur"))
  elif [[ " {stored} " == *" $command "* ]]; then
    local stored
    stored=$(idpwrap images 2>/dev/null | awk 'NR>1 {{print $1":"$2}}')
    COMPREPLY=($(compgen -W "$stored" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}}
complete -o default -F _idpwrap idpwrap
"""


def options_by_command() -> dict[str, list[str]]:
    import argparse

    from idpwrap.cli import build_parser

    parser = build_parser()
    subparsers = next(
        action for action in parser._actions if action.__class__.__name__ == "_SubParsersAction"
    )
    options: dict[str, list[str]] = {}
    for name, command in subparsers.choices.items():  # type: ignore[attr-defined]
        # a hidden option (--password, declared only to be refused) is not offered
        options[name] = sorted(
            option
            for action in command._actions
            if action.help != argparse.SUPPRESS
            for option in action.option_strings
        )
    return options


def bash_script() -> str:
    options = options_by_command()
    cases = "\n".join(
        f'    {name}) options="{" ".join(flags)}" ;;' for name, flags in options.items()
    )
    return BASH_TEMPLATE.format(
        commands=" ".join(options), cases=cases, stored=" ".join(TAKES_STORED_IMAGES)
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=["bash", "zsh"])


def execute(args: argparse.Namespace) -> int:
    script = bash_script()
    if args.shell == "zsh":
        script = "autoload -U +X bashcompinit && bashcompinit\n" + script
    print(script, end="")
    return 0
