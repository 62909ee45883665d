"""Reads of the platform-wide do-not-market list (the check's own read is
`suppressions.selectors.platform_do_not_market_since`)."""

from __future__ import annotations

from lanzuan import phones
from unsubscribe.models import PlatformDoNotMarket


def platform_do_not_market_entry(*, e164: str) -> PlatformDoNotMarket | None:
    return PlatformDoNotMarket.objects.filter(phone_hash=phones.platform_phone_hash(e164)).first()
