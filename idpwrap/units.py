"""Sizes as people read them: one rounding for progress, listings and error messages alike."""

from __future__ import annotations


def human_size(count: float) -> str:
    """``512 B``, ``1.5 KiB``, ``24.0 MiB``; the unit is chosen after rounding, so a size just
    under a unit reads ``1.0 MiB``, never ``1024.0 KiB``."""
    if count < 1024:
        return f"{int(count)} B"
    unit = "KiB"
    for unit in ("KiB", "MiB", "GiB"):
        count /= 1024
        if round(count, 1) < 1024 or unit == "GiB":
            break
    return f"{count:.1f} {unit}"
