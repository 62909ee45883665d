"""Raw numbers left after a fault, for tests that use the shared test number (E164):
the every-place scan (tests/faults/scan.py) with the outbox left out (it is the person's
phone, numbers and all: README, "The file gateway") and what the session's earlier tests
left before this one started (a real worker's files, a queued task): a test takes a
`baseline()` first and checks only what appeared since. New tests use `scan.unique_number()`
and `raw_number_findings` directly."""

from __future__ import annotations

from ..pipeline_helpers import E164
from .scan import raw_number_findings


def baseline() -> set[str]:
    """What holds the shared test number before the test starts."""
    return set(raw_number_findings(E164, skip_outbox=True))


def raw_numbers_left(since: set[str] | None = None) -> list[str]:
    """Every place the number is still stored: tables, files, Redis (apart from `since`)."""
    return [place for place in raw_number_findings(E164, skip_outbox=True) if place not in (since or set())]
