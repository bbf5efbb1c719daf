"""Which toolchains idpwrap's test suite runs on (docs/testing.md).

A combination is tested when buildah, skopeo and Python match one row's major.minor. Any other
combination works as far as anyone knows: ``version`` and ``doctor`` say so, never refuse it.
"""

from __future__ import annotations

import re
import sys
from typing import NamedTuple


class Toolchain(NamedTuple):
    where: str
    buildah: tuple[int, int]
    skopeo: tuple[int, int]
    python: tuple[int, int]
    command: str


# Each row is run by CI (.ci/run): the host's suite and scripts/test --in trixie.
TESTED = (
    Toolchain("Debian 12 (bookworm)", (1, 28), (1, 9), (3, 11), "scripts/test"),
    Toolchain("Debian 13 (trixie)", (1, 39), (1, 18), (3, 13), "scripts/test --in trixie"),
)


def major_minor(version: str) -> tuple[int, int] | None:
    """``1.39.3`` -> (1, 39); None for ``not found`` or an error text."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def python_version() -> str:
    return ".".join(str(part) for part in sys.version_info[:3])


def tested_row(buildah: str, skopeo: str, python: str) -> Toolchain | None:
    found = (major_minor(buildah), major_minor(skopeo), major_minor(python))
    for row in TESTED:
        if found == (row.buildah, row.skopeo, row.python):
            return row
    return None


def _shown(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def verdict(buildah: str, skopeo: str, python: str) -> tuple[bool, str]:
    """(tested?, one line saying so, naming the tested rows when it is not)."""
    row = tested_row(buildah, skopeo, python)
    if row is not None:
        return True, f"tested: this is the {row.where} row of the test matrix ({row.command})"
    rows = "; ".join(
        f"{r.where}: buildah {_shown(r.buildah)}, skopeo {_shown(r.skopeo)},"
        f" Python {_shown(r.python)}"
        for r in TESTED
    )
    return False, (
        f"untested combination (buildah {buildah}, skopeo {skopeo}, Python {python}): it"
        f" should work, but the test matrix runs only {rows}"
    )
