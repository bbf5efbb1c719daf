"""Times as people read them: ages ("5 minutes ago"), and a reproducible image's fixed time.

A reproducible build (build/timestamps.py) writes a fixed ``created``: 1970-01-01 when nothing
else is known, which an age would show as "20790 days ago" and tell nobody anything. Such a
time is said as what it is, with the time the image came into this store beside it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

# Anything within the first day of 1970 is a fixed time (SOURCE_DATE_EPOCH=0, --timestamp 0,
# idpwrap's own default outside a git work tree), never a clock's.
FIXED_BEFORE = 86400
REPRODUCIBLE = "reproducible"


def parse(created: str) -> datetime | None:
    """An image's RFC 3339 ``created`` (nanoseconds allowed); None when it cannot be read."""
    if not created:
        return None
    text = created.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # Go writes up to nine fractional digits; Python reads six.
    head, dot, tail = text.partition(".")
    if dot:
        digits = len(tail) - len(tail.lstrip("0123456789"))
        text = f"{head}.{tail[:digits][:6].ljust(6, '0')}{tail[digits:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def is_fixed(moment: datetime) -> bool:
    return moment.timestamp() < FIXED_BEFORE


def age(moment: datetime, now: datetime | None = None) -> str:
    """``5 minutes ago``, as podman shows it."""
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = seconds // length
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "seconds ago"


def since(created: str, stored: float | None = None, now: datetime | None = None) -> str:
    """An image's CREATED column: its age; for a fixed time, the age of its copy here
    (``stored``: seconds since the epoch) marked reproducible; the raw text if unreadable."""
    moment = parse(created)
    if moment is None:
        return created or "unknown"
    if not is_fixed(moment):
        return age(moment, now)
    if stored is None:
        return f"{REPRODUCIBLE} ({created})"
    return f"{REPRODUCIBLE}, stored {age(datetime.fromtimestamp(stored, UTC), now)}"


def described(created: str, stored: float | None = None, now: datetime | None = None) -> str:
    """``inspect``'s Created line: the time as written, then what it means."""
    moment = parse(created)
    if moment is None:
        return created or "unknown"
    if not is_fixed(moment):
        return f"{created} ({age(moment, now)})"
    where = ""
    if stored is not None:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stored))
        where = f"; stored here {when}, {age(datetime.fromtimestamp(stored, UTC), now)}"
    return f"{created} ({REPRODUCIBLE}: a fixed time, not when it was built{where})"


def go_time(created: str) -> str:
    """Go's ``time.Time.String()`` form that podman's ``{{.CreatedAt}}`` prints."""
    moment = parse(created)
    if moment is None:
        return created
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
