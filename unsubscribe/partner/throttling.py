"""Per-API-key rate limits, shared by every web process, at almost no cost per call.

Each key has a budget per fixed window (600 calls a minute by default) counted in the
cache (Redis in production), so every process on every host draws on one budget. A
process does not go to Redis for each call: it takes a *lease* of several calls at once
(one INCRBY) and spends it locally, so a check at 500 calls a second costs a Redis round
trip every few calls instead of two per call. Leases are granted only within the budget,
so the limit is never exceeded; a process that stops holds at most one lease unspent, so
another process may be refused at most `lease` calls early. Small budgets lease one call
at a time (exact, as the tests of 3 a minute expect). A refused call gets 429 with
Retry-After: the seconds left in the window.

Rates come from settings.LANZUAN_API_RATES ({"partner": "600/min", "partner_bulk":
"60/min"}), read on every request so tests and deployments can change them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from tenants.models import TenantAPIKey

DEFAULT_RATES = {
    "partner": "600/min",  # ordinary calls: file, read, list, single checks
    "partner_bulk": "60/min",  # 10,000-number checks, scrub uploads, imports
}
LEASE_SHARE = 200  # a lease is at most 1/200 of the window's budget: 3 of 600/min, 500 of 100,000/min
MAX_LEASE = 500
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def configured_rate(scope: str) -> str:
    rates: dict[str, str] = getattr(settings, "LANZUAN_API_RATES", None) or {}
    return rates.get(scope) or DEFAULT_RATES[scope]


def parse_rate(rate: str) -> tuple[int, int]:
    """ "600/min" → (600, 60): calls, seconds."""
    calls, _sep, period = rate.partition("/")
    return int(calls), _PERIODS[period.strip()[0]]


@dataclass
class _Lease:
    window: int
    left: int


_leases: dict[tuple[str, int, int], _Lease] = {}
_lock = threading.Lock()


def take(key: str, *, limit: int, period: int, now: float | None = None) -> float | None:
    """Spend one call of `key`'s budget: None if allowed, else the seconds until the window ends."""
    now = time.time() if now is None else now
    window = int(now // period)
    held = (key, limit, period)  # a changed rate starts a new lease
    with _lock:
        lease = _leases.get(held)
        if lease is not None and lease.window == window and lease.left > 0:
            lease.left -= 1
            return None
    size = max(1, min(MAX_LEASE, limit // LEASE_SHARE))
    counter = f"{key}:{window}"
    cache.add(counter, 0, timeout=period + 1)
    try:
        used = cache.incr(counter, size)
    except ValueError:  # expired between add and incr
        cache.add(counter, size, timeout=period + 1)
        used = size
    granted = min(size, limit - (used - size))
    if granted <= 0:
        return (window + 1) * period - now
    with _lock:
        _leases[held] = _Lease(window, granted - 1)
    return None


def forget_leases() -> None:
    """Drop this process's unspent leases (tests that change rates or clear the cache)."""
    with _lock:
        _leases.clear()


class ApiKeyRateThrottle(BaseThrottle):
    """Keyed by the API key's id, not the client address: one partner behind many
    addresses shares one budget, and two partners behind one NAT do not."""

    scope = "partner"

    def __init__(self) -> None:
        self.retry_after: float | None = None

    def cache_key(self, request: Request) -> str | None:
        key = request.auth
        if not isinstance(key, TenantAPIKey):
            return None  # unauthenticated calls are refused before throttling
        return f"throttle:{self.scope}:{key.pk}"

    def allow_request(self, request: Request, view: Any) -> bool:
        key = self.cache_key(request)
        if key is None:
            return True
        limit, period = parse_rate(configured_rate(self.scope))
        self.retry_after = take(key, limit=limit, period=period)
        return self.retry_after is None

    def wait(self) -> float | None:
        return self.retry_after


class BulkApiKeyRateThrottle(ApiKeyRateThrottle):
    scope = "partner_bulk"
