"""The person's platform-wide do-not-market entry: "no marketing from any provider",
including providers that do not hold the number yet.

`platform_do_not_market_set` and `platform_do_not_market_lift` are the only writers of
PlatformDoNotMarket and of its append-only event record. They take the number only to
compute the platform digest and the masked form; neither is a tenant's row, and no
tenant's admin or API can reach them. Checks read it in
`suppressions.selectors.platform_do_not_market_since`.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from lanzuan import phones
from unsubscribe.models import PlatformDoNotMarket, PlatformDoNotMarketEvent
from unsubscribe.suppressions import index as suppression_index

logger = logging.getLogger(__name__)


def platform_do_not_market_set(*, e164: str, evidence: dict[str, Any], channel: str = "hub") -> bool:
    """Put the number on the list; False when it was there already (nothing changes)."""
    digest = phones.platform_phone_hash(e164)
    masked = phones.mask(e164)
    now = timezone.now()
    try:
        with transaction.atomic():
            suppression_index.writers_lock(suppression_index.PLATFORM)
            PlatformDoNotMarket.objects.create(
                phone_hash=digest,
                lookup_key=phones.platform_lookup_key(e164),
                phone_masked=masked,
                channel=channel,
                created_at=now,
            )
            PlatformDoNotMarketEvent.objects.create(
                phone_hash=digest,
                phone_masked=masked,
                action=PlatformDoNotMarketEvent.Action.SET,
                channel=channel,
                evidence=evidence,
                created_at=now,
            )
    except IntegrityError:  # there already (a double tap): the unique digest decides
        return False
    logger.info("platform-wide do-not-market set for %s", masked)
    return True


def platform_do_not_market_lift(*, e164: str, evidence: dict[str, Any], channel: str = "hub") -> bool:
    """Take the number off the list; False when it was not on it. The caller has checked
    that the person verified the number again after the entry was set (a fresh code)."""
    digest = phones.platform_phone_hash(e164)
    masked = phones.mask(e164)
    with transaction.atomic():
        suppression_index.writers_lock(suppression_index.PLATFORM)
        deleted, _rows = PlatformDoNotMarket.objects.filter(phone_hash=digest).delete()
        if not deleted:
            return False
        PlatformDoNotMarketEvent.objects.create(
            phone_hash=digest,
            phone_masked=masked,
            action=PlatformDoNotMarketEvent.Action.LIFTED,
            channel=channel,
            evidence=evidence,
        )
    logger.info("platform-wide do-not-market lifted for %s", masked)
    return True
