"""Verbose and debug messages on stderr; phase times when IDPWRAP_TIMING is set.

A few lines of our own rather than ``logging``: importing ``logging`` costs more here
(about 15 ms on these machines) than the whole time a push may add to skopeo's.

``IDPWRAP_TIMING=1`` writes one ``idpwrap: timing:`` line per phase of a push or a build to
stderr (milliseconds since ``idpwrap.cli`` started running the command, and since the previous
phase), so that idpwrap's own share of a run can be measured against the tools' (see
docs/benchmarks.md). Off, a phase costs one comparison.
"""

from __future__ import annotations

import os
import sys

QUIET, VERBOSE, DEBUG = 0, 1, 2
_level = QUIET
# perf_counter() values: when the command started and the last phase; None while timing is off.
_started: float | None = None
_last = 0.0


def configure(verbose: bool, debug: bool) -> None:
    global _level
    _level = DEBUG if debug else VERBOSE if verbose else QUIET


def start_timing(started: float | None = None) -> None:
    """Phase times from ``started`` on, when IDPWRAP_TIMING asks for them."""
    global _started, _last
    if os.environ.get("IDPWRAP_TIMING", "") not in ("", "0"):
        import time  # built into the interpreter: costs nothing to import

        _started = _last = time.perf_counter() if started is None else started


def phase(name: str) -> None:
    """Marks the end of phase ``name`` (with IDPWRAP_TIMING only)."""
    global _last
    if _started is None:
        return
    import time

    now = time.perf_counter()
    sys.stderr.write(
        f"idpwrap: timing: {(now - _started) * 1000:8.1f} ms {(now - _last) * 1000:+8.1f} ms"
        f"  {name}\n"
    )
    sys.stderr.flush()
    _last = now


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
