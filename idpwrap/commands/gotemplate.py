"""The part of Go's text/template that podman's ``--format`` is used with, read safely.

``{{.Field}}`` (spaces inside the braces allowed), literal text between, ``\\t`` and ``\\n``
typed as two characters (as in a shell's double quotes) turned into a tab and a newline, a
leading ``table`` for a header row and aligned tab-separated columns, and ``json`` alone.
Nothing is evaluated: a field is looked up in the values the command gives, and any other
action (``{{if}}``, ``{{range}}``, pipelines, functions) is a usage error naming the fields.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Mapping, Sequence

from idpwrap.errors import UsageError

ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
FIELD = re.compile(r"\s*\.([A-Za-z][A-Za-z0-9]*)\s*")
TABLE_PREFIX = "table"
COLUMN_GAP = "  "


class Template(namedtuple("Template", "parts table json")):
    """``parts``: literal text (str) and field names (``Field``), in order."""

    __slots__ = ()
    parts: tuple[object, ...]
    table: bool
    json: bool

    def fields(self) -> list[str]:
        return [part.name for part in self.parts if isinstance(part, Field)]


class Field(namedtuple("Field", "name")):
    __slots__ = ()
    name: str


def parse(text: str, headers: Mapping[str, str], option: str = "--format") -> Template:
    """``text`` read against the known fields (``headers``: each field's column header)."""
    if text.strip() == "json":
        return Template((), table=False, json=True)
    table = False
    stripped = text.lstrip()
    if stripped == TABLE_PREFIX or stripped.startswith((TABLE_PREFIX + " ", TABLE_PREFIX + "\t")):
        table = True
        text = stripped[len(TABLE_PREFIX) :].lstrip(" ")
    text = text.replace("\\t", "\t").replace("\\n", "\n")
    parts: list[object] = []
    position = 0
    known = ", ".join(f"{{{{.{name}}}}}" for name in headers)
    for action in ACTION.finditer(text):
        parts.append(text[position : action.start()])
        field = FIELD.fullmatch(action.group(1))
        if field is None:
            raise UsageError(
                f"{option}: {action.group(0)!r} is not supported: only fields such as {known},"
                " 'table ...' or 'json'"
            )
        if field.group(1) not in headers:
            raise UsageError(f"{option}: unknown field .{field.group(1)}: the fields are {known}")
        parts.append(Field(field.group(1)))
        position = action.end()
    rest = text[position:]
    if "{{" in rest or "}}" in rest:
        raise UsageError(f"{option}: an unclosed '{{{{' or a stray '}}}}' in {text!r}")
    parts.append(rest)
    return Template(tuple(part for part in parts if part != ""), table=table, json=False)


def render(template: Template, values: Mapping[str, str]) -> str:
    return "".join(
        values[part.name] if isinstance(part, Field) else str(part) for part in template.parts
    )


def lines(
    template: Template, rows: Sequence[Mapping[str, str]], headers: Mapping[str, str]
) -> list[str]:
    """The output lines: one per row; for ``table``, a header first and tab-separated columns
    aligned (as Go's tabwriter does for podman)."""
    rendered = [render(template, row) for row in rows]
    if not template.table:
        return rendered
    header = render(template, {name: headers[name] for name in template.fields()})
    cells = [line.split("\t") for line in [header, *rendered]]
    columns = max(len(row) for row in cells)
    widths = [
        max((len(row[i]) for row in cells if i < len(row)), default=0) for i in range(columns)
    ]
    return [
        COLUMN_GAP.join(
            cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)
        ).rstrip()
        for row in cells
    ]
