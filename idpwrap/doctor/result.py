"""A check's result, as ``idpwrap doctor`` shows it: ok, warning or error, and how to fix it."""

from __future__ import annotations

from collections import namedtuple

OK, WARNING, ERROR = "ok", "warning", "error"


class Check(namedtuple("Check", "name status message fix", defaults=(None,))):
    __slots__ = ()
    name: str
    status: str
    message: str
    fix: str | None
