"""Reads of number events: was this number deactivated or given to someone else, and when?

A consent is void when a deactivation or reassignment of its number is on record on or after
the day it was given (in the tenant's time zone): the person who holds the number now may
never have given it. The day itself counts as "after": on that day either holder may have
consented, and voiding a consent can only over-protect.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, tzinfo

from django.db.models import QuerySet

from tenants.models import Tenant
from unsubscribe.models import NumberEvent, Subscription


def number_event_dates(*, tenant: Tenant | int, digests: Iterable[str]) -> dict[str, list[date]]:
    """Every reported event day per digest, oldest first (digests without one are left out)."""
    found: dict[str, list[date]] = {}
    wanted = list(set(digests))
    # Most tenants have no reports at all: one cheap query spares the bulk check the look-up.
    if not wanted or not NumberEvent.objects.for_tenant(tenant).exists():
        return found
    for start in range(0, len(wanted), 5000):
        for digest, day in (
            NumberEvent.objects.for_tenant(tenant)
            .filter(phone_hash__in=wanted[start : start + 5000])
            .order_by("occurred_on")
            .values_list("phone_hash", "occurred_on")
        ):
            found.setdefault(digest, []).append(day)
    return found


def void_since(given_at: datetime, event_days: Sequence[date], zone: tzinfo) -> date | None:
    """The first event day on or after the consent's own day, or None: the consent stands."""
    given_on = given_at.astimezone(zone).date()
    later = [day for day in event_days if day >= given_on]
    return min(later) if later else None


def reassigned_since(event_days: Sequence[date], consented_at: datetime | None, zone: tzinfo) -> bool:
    """Was the number deactivated or reassigned on or after `consented_at`'s day?"""
    if consented_at is None:
        return False
    return void_since(consented_at, event_days, zone) is not None


def voided_subscriptions(event: NumberEvent) -> QuerySet[Subscription]:
    """The tenant's subscriptions of the number whose consent the event voids (consent given
    on or before its day, in the tenant's time zone)."""
    zone = event.tenant.zoneinfo
    # The end of the event's day in the tenant's zone: a consent before it is void.
    day_end = datetime.combine(event.occurred_on, datetime.max.time()).replace(tzinfo=zone)
    return Subscription.objects.for_tenant(event.tenant_id).filter(
        phone_hash=event.phone_hash, consent_at__lte=day_end
    )
