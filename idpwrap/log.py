"""Verbose and debug messages on stderr.

A few lines of our own rather than ``logging``: importing ``logging`` costs more here
(about 15 ms on these machines) than the whole time a push may add to skopeo's.
"""

from __future__ import annotations

import sys

QUIET, VERBOSE, DEBUG = 0, 1, 2
_level = QUIET


def configure(verbose: bool, debug: bool) -> None:
    global _level
    _level = DEBUG if debug else VERBOSE if verbose else QUIET


def verbose() -> bool:
    return _level >= VERBOSE


def info(message: str, *args: object) -> None:
    """Shown with --verbose: what is done and why (a credential's source, never its value)."""
    if _level >= VERBOSE:
        _write(message, args)


def debug(message: str, *args: object) -> None:
    """Shown with --debug: the commands run."""
    if _level >= DEBUG:
        _write(message, args)


def _write(message: str, args: tuple[object, ...]) -> None:
    sys.stderr.write("idpwrap: " + (message % args if args else message) + "\n")
    sys.stderr.flush()
