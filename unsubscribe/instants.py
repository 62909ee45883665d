"""The one parser for instants given as text by a partner: the API's date filters
(`created_after`, `created_before`) and the consent times of both imports (API and CSV).

Accepted: an ISO 8601 calendar date (`2025-01-31`, its midnight) or date and time
(`2025-01-31T08:00`, `2025-01-31 08:00:00.5`, with or without an offset `Z`,
`+08:00`, `+0800`). A time without an offset, and a bare date, are wall time in the
tenant's zone. Refused, with a message that can be shown to the person: anything
else (week dates, trailing characters, NUL), an offset beyond ±14:00 (no zone on
Earth has one) or not in whole minutes, and years outside 1900–8999: those are
typos, and near the ends of Python's calendar a zone conversion overflows.

Wall times that a DST change makes ambiguous (the hour repeated in autumn) are
the first of the two (fold=0, the earlier instant). A wall time that does not exist
(the hour skipped in spring) is refused for a consent time, which is evidence and
must say what the person saw; a filter, and a bare date's midnight, move to the same
wall-clock distance after the change (02:30 in a 02:00→03:00 gap is 03:30).
A consent time later than now (beyond CLOCK_SKEW) is refused: consent not yet given
is no consent.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo

from django.utils import timezone as dj_timezone
from django.utils.translation import gettext as _

MIN_INSTANT = datetime(1900, 1, 1, tzinfo=UTC)
MAX_INSTANT = datetime(9000, 1, 1, tzinfo=UTC)
MAX_OFFSET = timedelta(hours=14)
# A partner's clock may run a little ahead of ours.
CLOCK_SKEW = timedelta(minutes=5)

_ISO = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,6})?)?)"
    r"(?P<offset>Z|z|[+-]\d{2}(?::?\d{2})?)?)?"
)


class InstantError(ValueError):
    """The text is not an acceptable instant; `message` is safe to show, translated."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _format_error() -> InstantError:
    return InstantError(_("Use an ISO 8601 date or date and time, e.g. 2025-01-31T08:00:00+08:00."))


def _offset(text: str) -> tzinfo:
    if text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if minutes >= 60:
        raise _format_error()
    delta = timedelta(hours=hours, minutes=minutes)
    if delta > MAX_OFFSET:
        raise InstantError(_("The UTC offset must be between -14:00 and +14:00."))
    return timezone(sign * delta)


def _range_error() -> InstantError:
    return InstantError(_("The date must be between the years 1900 and 8999."))


def instant_parse(
    raw: str, *, tz: tzinfo, consent: bool = False, now: datetime | None = None
) -> datetime | None:
    """`raw` as an aware datetime in UTC; empty → None; anything unacceptable raises
    InstantError. `consent=True` also refuses a future time and a wall time skipped
    by a DST change (see the module's docstring)."""
    text = raw.strip()
    if not text:
        return None
    match = _ISO.fullmatch(text)
    if match is None:
        raise _format_error()
    try:
        day = date.fromisoformat(match["date"])
        clock = time.fromisoformat(match["time"].replace(",", ".")) if match["time"] else time()
    except ValueError:  # well-formed but impossible, e.g. 2025-02-30 or 25:00
        raise _format_error() from None
    if not MIN_INSTANT.year <= day.year < MAX_INSTANT.year:
        raise _range_error()
    wall = datetime.combine(day, clock)
    if match["offset"]:
        aware = wall.replace(tzinfo=_offset(match["offset"]))
    else:
        aware = wall.replace(tzinfo=tz, fold=0)
        # Round trip through UTC: a wall time in a DST gap comes back different.
        if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall and consent and match["time"]:
            raise InstantError(
                _(
                    "That local time does not exist (the clocks skipped it for daylight saving); give the offset."
                )
            )
    try:
        value = aware.astimezone(UTC)
    except OverflowError:
        raise _range_error() from None
    if not MIN_INSTANT <= value < MAX_INSTANT:
        raise _range_error()
    if consent and value > (now or dj_timezone.now()) + CLOCK_SKEW:
        raise InstantError(_("A consent time cannot be in the future."))
    return value
