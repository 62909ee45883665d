"""Abuse limits for one-time codes and status look-ups, counted in the cache.

Counters live in django.core.cache (Redis in production), never in the database:
they are hot, short-lived and worthless once their window has passed. Every limit
is a setting read with getattr(settings, "LANZUAN_OTP_…", default), so an operator
can tune them without a code change.

SMS pumping (bursts of codes to adjacent numbers that never verify) costs the
tenant real money, so besides the per-number limits there are per-IP,
per-number-prefix and per-tenant daily caps. A code that is verified gives its
IP and prefix count back: those two caps count codes that were never used.

The per-number window and the prefix cap are counted across the whole platform:
every tenant page and the hub share one counter, or a pumper would get the cap once
per tenant plus once for the hub. (`phone_hash` must therefore be the platform
digest of the number.) The resend cool-down and the tenant cap stay per scope.
Clients are counted by IPv4 address and by IPv6 /64, the block one subscriber gets.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

DAY = 24 * 60 * 60

# name → default. The names are the public interface (README, deployment docs).
DEFAULTS: dict[str, int] = {
    "LANZUAN_OTP_TTL_SECONDS": 5 * 60,  # a code is valid this long
    "LANZUAN_OTP_MAX_ATTEMPTS": 5,  # tries per code
    "LANZUAN_OTP_RESEND_SECONDS": 60,  # cool-down between two codes to one number
    "LANZUAN_OTP_NUMBER_MAX_SENDS": 3,  # codes to one number, platform-wide …
    "LANZUAN_OTP_NUMBER_WINDOW_SECONDS": 10 * 60,  # … within this many seconds
    "LANZUAN_OTP_IP_DAILY_CAP": 50,  # unverified codes from one IPv4 address / IPv6 /64 a day
    "LANZUAN_OTP_PREFIX_DIGITS": 7,  # leading digits of the E.164 number that make a "prefix"
    "LANZUAN_OTP_PREFIX_DAILY_CAP": 30,  # unverified codes to one prefix a day, platform-wide
    "LANZUAN_OTP_TENANT_DAILY_CAP": 5000,  # codes one tenant sends a day
    "LANZUAN_OTP_VERIFIED_TTL_SECONDS": 30 * 60,  # time to finish the flow after verifying
    "LANZUAN_STATUS_LOOKUPS_PER_IP_HOUR": 30,  # failed status look-ups by reference and number
    "LANZUAN_VERIFY_CHECKS_PER_IP_HOUR": 60,  # receipts checked at /verify/
}


def limit(name: str) -> int:
    return int(getattr(settings, name, DEFAULTS[name]))


def client_ip(request: HttpRequest) -> str:
    """The client's address. Behind a proxy set LANZUAN_CLIENT_IP_HEADER (e.g.
    "HTTP_X_REAL_IP") to the header the proxy sets; never trust one it does not set."""
    header = getattr(settings, "LANZUAN_CLIENT_IP_HEADER", "")
    if header:
        value = str(request.META.get(header, ""))
        if value:
            return value.split(",", maxsplit=1)[0].strip()[:64]
    return str(request.META.get("REMOTE_ADDR", ""))[:64]


def ip_key(ip: str) -> str:
    """The unit an IP limit counts: an IPv4 address, or an IPv6 address's /64 (one
    subscriber's block; counting single addresses would let a client rotate through
    2**64 of them). An IPv4-mapped IPv6 address counts as its IPv4 address."""
    try:
        address = ipaddress.ip_address(ip.strip().split("%")[0])
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def number_prefix(e164: str) -> str:
    return e164.lstrip("+")[: limit("LANZUAN_OTP_PREFIX_DIGITS")]


# --- primitives ----------------------------------------------------------------------


def _now() -> float:
    return time.time()


def _window_key(key: str, window: int, now: float) -> tuple[str, float]:
    index = int(now // window)
    return f"{key}:{index}", (index + 1) * window - now + 1


def count_hit(key: str, *, window: int) -> int:
    """Add one to a fixed-window counter and return the new count."""
    full, remaining = _window_key(key, window, _now())
    if cache.add(full, 1, timeout=remaining):
        return 1
    try:
        count = cache.incr(full)
    except ValueError:  # expired between add() and incr()
        cache.add(full, 1, timeout=remaining)
        return 1
    # Backends without a native incr (the file cache) reset the expiry on incr.
    cache.touch(full, remaining)
    return int(count)


def count_get(key: str, *, window: int) -> int:
    full, _remaining = _window_key(key, window, _now())
    return int(cache.get(full, 0))


def count_undo(key: str, *, window: int) -> None:
    full, remaining = _window_key(key, window, _now())
    try:
        if int(cache.get(full, 0)) > 0:
            cache.decr(full)
            cache.touch(full, remaining)
    except ValueError:
        pass


def cooldown_start(key: str, *, seconds: int) -> float:
    """0 if the cool-down was free (and is now taken), else the seconds left."""
    now = _now()
    if cache.add(key, now + seconds, timeout=seconds):
        return 0
    until = cache.get(key)
    left = float(until) - now if until else 0
    if left <= 0:  # the cache has not dropped it yet
        cache.set(key, now + seconds, timeout=seconds)
        return 0
    return left


def cooldown_clear(key: str) -> None:
    cache.delete(key)


def recent_add(key: str, *, window: int, limit_count: int) -> bool:
    """A sliding window of timestamps: True (and recorded) if fewer than limit_count
    happened in the last `window` seconds. Not atomic; the cool-down in front of it is."""
    now = _now()
    stamps = [t for t in cache.get(key, []) if t > now - window]
    if len(stamps) >= limit_count:
        return False
    stamps.append(now)
    cache.set(key, stamps, timeout=window)
    return True


# --- the code-sending policy ---------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Why a code was not sent; `reason` picks the message the page shows."""

    reason: str  # "cooldown", "number", "ip", "prefix", "tenant"
    retry_after: int


def _keys(scope: str, phone_hash: str, prefix: str, ip: str) -> dict[str, str]:
    return {
        "cooldown": f"optout:cooldown:{scope}:{phone_hash}",
        # platform-wide: every tenant page and the hub count together
        "number": f"optout:number:{phone_hash}",
        "ip": f"optout:ip:{ip_key(ip)}",
        "prefix": f"optout:prefix:{prefix}",
        "tenant": f"optout:tenant:{scope}",
    }


def send_allowed(*, scope: str, phone_hash: str, e164: str, ip: str) -> Refusal | None:
    """Take one code send out of every budget, or say which budget is spent (taking nothing).

    `scope` is "t<tenant id>" for a tenant's page and "hub" for the hub.
    """
    keys = _keys(scope, phone_hash, number_prefix(e164), ip)
    resend = limit("LANZUAN_OTP_RESEND_SECONDS")
    left = cooldown_start(keys["cooldown"], seconds=resend)
    if left:
        return Refusal("cooldown", int(left + 0.999))
    number_window = limit("LANZUAN_OTP_NUMBER_WINDOW_SECONDS")
    if not recent_add(
        keys["number"], window=number_window, limit_count=limit("LANZUAN_OTP_NUMBER_MAX_SENDS")
    ):
        cooldown_clear(keys["cooldown"])
        return Refusal("number", number_window)
    caps = [
        ("ip", keys["ip"], limit("LANZUAN_OTP_IP_DAILY_CAP")),
        ("prefix", keys["prefix"], limit("LANZUAN_OTP_PREFIX_DAILY_CAP")),
        ("tenant", keys["tenant"], limit("LANZUAN_OTP_TENANT_DAILY_CAP")),
    ]
    taken: list[str] = []
    for reason, key, cap in caps:
        if count_hit(key, window=DAY) > cap:
            for done in [*taken, key]:
                count_undo(done, window=DAY)
            _forget_recent(keys["number"])
            cooldown_clear(keys["cooldown"])
            return Refusal(reason, DAY)
        taken.append(key)
    return None


def _forget_recent(key: str) -> None:
    stamps = list(cache.get(key, []))
    if stamps:
        stamps.pop()
        cache.set(key, stamps, timeout=limit("LANZUAN_OTP_NUMBER_WINDOW_SECONDS"))


def send_verified(*, scope: str, e164: str, ip: str) -> None:
    """A code was used: give back its IP and prefix counts (they count codes that never verify)."""
    keys = _keys(scope, "", number_prefix(e164), ip)
    count_undo(keys["ip"], window=DAY)
    count_undo(keys["prefix"], window=DAY)


def status_lookup_allowed(ip: str) -> bool:
    used = count_get(f"optout:status:{ip_key(ip)}", window=60 * 60)
    return used < limit("LANZUAN_STATUS_LOOKUPS_PER_IP_HOUR")


def status_lookup_failed(ip: str) -> None:
    count_hit(f"optout:status:{ip_key(ip)}", window=60 * 60)


def verify_check_allowed(ip: str) -> bool:
    """Take one receipt check at /verify/ from the network's hourly budget; False once it is spent.
    Every check counts (genuine or not): a check costs a signature verification, and one network
    has no business checking thousands of receipts an hour."""
    used = count_hit(f"optout:verify:{ip_key(ip)}", window=60 * 60)
    return used <= limit("LANZUAN_VERIFY_CHECKS_PER_IP_HOUR")
