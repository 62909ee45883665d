"""Retention reads: when a request's raw number is erased at the latest."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from unsubscribe.models import UnsubscribeRequest


def stalled_erasure_ceiling() -> timedelta:
    """How long past the tenant's erasure delay a request that does not complete may keep
    its raw number (LANZUAN_STALLED_ERASURE_CEILING_DAYS)."""
    return timedelta(days=settings.LANZUAN_STALLED_ERASURE_CEILING_DAYS)


def erasure_deadline(request: UnsubscribeRequest) -> datetime:
    """The latest the raw number of this request is kept, whatever happens to it: the
    tenant's erasure delay counted from filing, then the ceiling. A request that completes
    is erased earlier (after its services are ended and the confirmation sent, plus the
    delay); one that stalls, in needs attention or elsewhere, is erased then
    (retention.services.stalled_requests_erase)."""
    return (
        request.received_at + timedelta(hours=request.tenant.erasure_delay_hours) + stalled_erasure_ceiling()
    )
