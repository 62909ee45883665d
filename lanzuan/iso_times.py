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


# "00" … "99" as uint16 (two ASCII bytes each): one gather writes every pair of digits (the
# scrub's result lines use it too).
DIGIT_PAIRS = (
    np.array([[48 + v // 10, 48 + v % 10] for v in range(100)], dtype=np.uint8).view(np.uint16).ravel()
)
# Where the ten pairs of digits (YY YY MM DD hh mm ss ff ff ff) go: pairs starting at an even
# column are written through a uint16 view of the row, the others through a view one byte on.
_EVEN_PAIRS, _EVEN_AT = [0, 1, 3, 5, 7, 8, 9], [0, 1, 4, 7, 10, 11, 12]  # columns 0 2 8 14 20 22 24
_ODD_PAIRS, _ODD_AT = [2, 4, 6], [2, 5, 8]  # columns 5 11 17


@functools.lru_cache(maxsize=16)
def _offset_texts(zone: tzinfo) -> Any:
    """Each of _transitions(zone)'s offsets as isoformat() writes it, 6 bytes ("+08:00")."""
    _starts, offsets = _transitions(zone)
    return np.array([_offset_bytes(int(k))[:6].ljust(6) for k in offsets.tolist()], dtype="V6")


def iso_local_matrix(instants: Any, zone: tzinfo | None = None) -> tuple[Any, Any]:
    """Each instant (int64 µs since 1970, UTC) written as `localtime(...).isoformat()` does,
    as rows of a (n, 32) uint8 matrix ("YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM"), and a mask of the
    rows written there. The others (a whole second: isoformat() leaves out the fraction; an
    instant before 2000 or from 2100) are left for iso_local_bytes() to write one by one."""
    zone = zone or get_current_timezone()
    us = np.asarray(instants, dtype=np.int64)
    starts, offsets = _transitions(zone)
    period = np.maximum(np.searchsorted(starts, us, "right") - 1, 0)
    offset = offsets[period]
    days, in_day = np.divmod(us + offset * _US, _DAY * _US)
    seconds, fraction = np.divmod(in_day, _US)
    written = (us >= _FIRST * _US) & (us < _LAST * _US) & (fraction != 0) & (offset % 60 == 0)
    year, month, day = _civil(days)
    # The ten pairs of digits, one row of int32 each (inside 2000–2100 each fits its width).
    year, seconds, fraction = year.astype(np.int32), seconds.astype(np.int32), fraction.astype(np.int32)
    pairs = np.empty((10, len(us)), dtype=np.int32)
    np.floor_divide(year, 100, out=pairs[0])
    np.remainder(year, 100, out=pairs[1])
    pairs[2], pairs[3] = month, day
    np.floor_divide(seconds, 3600, out=pairs[4])
    minutes = seconds % 3600
    np.floor_divide(minutes, 60, out=pairs[5])
    np.remainder(minutes, 60, out=pairs[6])
    np.floor_divide(fraction, 10_000, out=pairs[7])
    hundredths = fraction % 10_000
    np.floor_divide(hundredths, 100, out=pairs[8])
    np.remainder(hundredths, 100, out=pairs[9])
    np.clip(pairs, 0, 99, out=pairs)  # the rows not written here (other years) are written by Python
    digits = DIGIT_PAIRS[pairs]
    out = np.empty((len(us), 32), dtype=np.uint8)
    out.view(np.uint16)[:, _EVEN_AT] = digits[_EVEN_PAIRS].T
    out[:, 1:31].view(np.uint16)[:, _ODD_AT] = digits[_ODD_PAIRS].T
    out[:, [4, 7]], out[:, 10], out[:, [13, 16]], out[:, 19] = ord("-"), ord("T"), ord(":"), ord(".")
    out[:, 26:].view("V6")[:, 0] = _offset_texts(zone)[period]
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
