"""lanzuan.iso_times writes instants in arrays exactly as `localtime(...).isoformat()` writes
them one by one: across DST changes, half-hour and 45-minute zones, whole seconds (no
fraction), and instants outside 2000–2100 (written by Python)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lanzuan.iso_times import iso_local

ZONES = [
    "Asia/Shanghai",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "America/Sao_Paulo",
    "Africa/Casablanca",
    "Pacific/Apia",
    "UTC",
]
_2000, _2100 = 946_684_800_000_000, 4_102_444_800_000_000
INSTANTS = st.one_of(
    st.integers(min_value=_2000, max_value=_2100 - 1),  # µs since 1970
    st.integers(min_value=_2000 // 1_000_000, max_value=_2100 // 1_000_000).map(lambda s: s * 1_000_000),
    st.integers(min_value=-(10**16), max_value=10**16),
    st.sampled_from([_2000 - 1, _2000, _2100 - 1, _2100, 0]),
)


def _isoformat(us: int, zone: ZoneInfo) -> str:
    return (
        datetime.fromtimestamp(us // 1_000_000, UTC)
        .replace(microsecond=us % 1_000_000)
        .astimezone(zone)
        .isoformat()
    )


@settings(max_examples=200, deadline=None)
@given(zone=st.sampled_from(ZONES), instants=st.lists(INSTANTS, max_size=50))
def test_arrays_are_written_as_isoformat_writes_each(zone: str, instants: list[int]) -> None:
    tz = ZoneInfo(zone)
    assert iso_local(np.array(instants, dtype=np.int64), tz) == [_isoformat(us, tz) for us in instants]


def test_every_hour_around_a_dst_change() -> None:
    tz = ZoneInfo("America/New_York")
    start = int(datetime(2026, 3, 8, 5, tzinfo=UTC).timestamp()) * 1_000_000  # 00:00 EST
    instants = [start + minutes * 60_000_000 + 123 for minutes in range(0, 6 * 60, 7)]
    assert iso_local(np.array(instants), tz) == [_isoformat(us, tz) for us in instants]
