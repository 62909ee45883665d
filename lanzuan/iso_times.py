"""Instants (µs since 1970, UTC) as ISO 8601 text in the current time zone, for whole arrays.

The same text as `localtime(dt).isoformat()` gives, one by one, for each instant: the bulk
check answers a `since` per suppressed number, and 2,000 distinct instants formatted by
Python cost more than the rest of the answer. The zone's UTC offsets between 2000 and 2100
are found once per process and zone (a probe a day, each change pinned to its second by
bisection), then every instant's offset is one array look-up and numpy writes the text.
Instants outside those years go through Python. A zone that changed its offset twice
within one day (none has) would be read as not changing that day.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import numpy as np
from django.utils.timezone import get_current_timezone

_US = 1_000_000
_DAY = 86_400
_FIRST = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp())  # seconds since 1970
_LAST = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp())


def _offset(zone: tzinfo, second: int) -> int:
    offset = datetime.fromtimestamp(second, UTC).astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


@functools.lru_cache(maxsize=16)
def _transitions(zone: tzinfo) -> tuple[Any, Any]:
    """(seconds where an offset starts, that offset in seconds), sorted, over 2000–2100."""
    starts, offsets = [_FIRST], [_offset(zone, _FIRST)]
    for day in range(_FIRST + _DAY, _LAST + _DAY, _DAY):
        now = _offset(zone, day)
        if now == offsets[-1]:
            continue
        low, high = day - _DAY, day  # the change lies in (low, high]
        while high - low > 1:
            middle = (low + high) // 2
            if _offset(zone, middle) == offsets[-1]:
                low = middle
            else:
                high = middle
        starts.append(high)
        offsets.append(now)
    return np.array(starts, dtype=np.int64) * _US, np.array(offsets, dtype=np.int64)


@functools.lru_cache(maxsize=256)
def _offset_text(seconds: int) -> str:
    """ "+08:00" as isoformat() writes the offset (seconds too, when it has them)."""
    return datetime(2000, 1, 1, tzinfo=timezone(timedelta(seconds=seconds))).isoformat()[19:]


def _civil(days: Any) -> tuple[Any, Any, Any]:
    """Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's
    civil_from_days, in arrays)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)  # noqa: PLR2004
    return yoe + era * 400 + (month <= 2), month, day  # noqa: PLR2004


# "00" … "99" as uint16 (two ASCII bytes each): one 1-D gather writes two digits.
_PAIRS = np.array([[48 + v // 10, 48 + v % 10] for v in range(100)], dtype=np.uint8).view(np.uint16).ravel()


def _digits(out: Any, at: int, values: Any, width: int) -> None:
    """`values` written with `width` digits (an even number) from column `at`, two at a time."""
    for place in range(width - 2, -1, -2):
        out[:, at + place : at + place + 2].view(np.uint16)[:, 0] = _PAIRS[values % 100]
        values = values // 100


def iso_local_matrix(instants: Any, zone: tzinfo | None = None) -> tuple[Any, Any]:
    """Each instant (int64 µs since 1970, UTC) written as `localtime(...).isoformat()` does,
    as rows of a (n, 32) uint8 matrix ("YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM"), and a mask of the
    rows written there. The others (a whole second: isoformat() leaves out the fraction; an
    instant before 2000 or from 2100) are left for iso_local_bytes() to write one by one."""
    zone = zone or get_current_timezone()
    us = np.asarray(instants, dtype=np.int64)
    starts, offsets = _transitions(zone)
    offset = offsets[np.maximum(np.searchsorted(starts, us, "right") - 1, 0)]
    days, in_day = np.divmod(us + offset * _US, _DAY * _US)
    seconds, fraction = np.divmod(in_day, _US)
    written = (us >= _FIRST * _US) & (us < _LAST * _US) & (fraction != 0) & (offset % 60 == 0)
    year, month, day = _civil(days)
    out = np.empty((len(us), 32), dtype=np.uint8)
    out[:, [4, 7]], out[:, 10], out[:, [13, 16]], out[:, 19] = ord("-"), ord("T"), ord(":"), ord(".")
    for at, values, width in (
        (0, year, 4),
        (5, month, 2),
        (8, day, 2),
        (11, seconds // 3600, 2),
        (14, seconds // 60 % 60, 2),
        (17, seconds % 60, 2),
        (20, fraction, 6),
    ):
        _digits(out, at, values, width)  # inside 2000–2100 every value has its width
    kinds, kind = np.unique(offset, return_inverse=True)
    table = np.array([_offset_bytes(int(k))[:6].ljust(6) for k in kinds.tolist()], dtype="V6")
    out[:, 26:].view("V6")[:, 0] = table[kind.ravel()]
    return out, written


def iso_local_bytes(instants: Any, zone: tzinfo | None = None) -> list[bytes]:
    """Each instant (int64 µs since 1970, UTC) as `localtime(...).isoformat()` would write it
    (ASCII bytes)."""
    zone = zone or get_current_timezone()
    us = np.asarray(instants, dtype=np.int64)
    if not len(us):
        return []
    matrix, written = iso_local_matrix(us, zone)
    result: list[bytes] = matrix.view("S32").ravel().tolist()
    for i in np.flatnonzero(~written).tolist():
        value = int(us[i])
        moment = datetime.fromtimestamp(value // _US, UTC).replace(microsecond=value % _US)
        result[i] = moment.astimezone(zone).isoformat().encode()
    return result


@functools.lru_cache(maxsize=256)
def _offset_bytes(seconds: int) -> bytes:
    return _offset_text(seconds).encode()


def iso_local(instants: Any, zone: tzinfo | None = None) -> list[str]:
    """iso_local_bytes() as text."""
    return [text.decode() for text in iso_local_bytes(instants, zone)]
