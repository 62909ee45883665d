"""Retry delays: exponential, capped, with jitter, for every retried thing
(pipeline steps, messages, webhook deliveries)."""

from __future__ import annotations

import random


def backoff_seconds(attempt: int, *, base: float, cap: float) -> float:
    """After `attempt` failed tries: between half and all of base·2^(attempt-1),
    capped. The random half spreads out retries of many things that failed
    together (a provider outage) instead of sending them back all at once."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311  (not security)
