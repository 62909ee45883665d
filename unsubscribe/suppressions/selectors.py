"""Reads of suppressions: may we send to this number?"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from lanzuan import phones
from tenants.models import Tenant
from unsubscribe.models import SCOPE_ALL, PlatformDoNotMarket, Suppression


@dataclass(frozen=True)
class SuppressionStatus:
    suppressed: bool
    since: datetime | None
    scopes: list[str]
    platform_do_not_market: bool = False  # the person's platform-wide entry (by number only)


def suppression_status(*, tenant: Tenant, phone: str, service_code: str | None = None) -> SuppressionStatus:
    """May we send marketing to this number? Suppressed if opted out of everything, or of the
    given service, or on the person's platform-wide do-not-market list. Raises InvalidPhoneNumber."""
    e164 = phones.normalise(phone)
    digest = phones.tenant_phone_hash(tenant.pk, e164)
    status = suppression_status_for_hash(tenant=tenant, phone_hash=digest, service_code=service_code)
    everywhere = platform_do_not_market_since([e164]).get(e164)
    if everywhere is None:
        return status
    since = min(status.since, everywhere) if status.since else everywhere
    return SuppressionStatus(True, since, status.scopes, platform_do_not_market=True)


def relevant_scopes(service_code: str | None) -> set[str]:
    """Without a service, a number counts as suppressed when everything is stopped;
    with one, when everything or that service is."""
    return {SCOPE_ALL} if not service_code else {SCOPE_ALL, service_code}


def suppression_status_for_hash(
    *, tenant: Tenant, phone_hash: str, service_code: str | None = None
) -> SuppressionStatus:
    rows = list(
        Suppression.objects.for_tenant(tenant)
        .filter(phone_hash=phone_hash)
        .values_list("scope", "created_at")
    )
    relevant = relevant_scopes(service_code)
    since = [created for scope, created in rows if scope in relevant]
    return SuppressionStatus(
        suppressed=bool(since), since=min(since) if since else None, scopes=sorted(s for s, _c in rows)
    )


def platform_do_not_market_by_digest(digests: Iterable[str]) -> dict[str, datetime]:
    """platform digest → when the entry was set, for the digests on the platform-wide list (bulk
    paths that hold the platform digests already: send logs)."""
    wanted = list(set(digests))
    found: dict[str, datetime] = {}
    for start in range(0, len(wanted), 5000):
        found.update(
            PlatformDoNotMarket.objects.filter(phone_hash__in=wanted[start : start + 5000]).values_list(
                "phone_hash", "created_at"
            )
        )
    return found


def platform_do_not_market_since(e164s: Iterable[str]) -> dict[str, datetime]:
    """The numbers (E.164) on the person's platform-wide do-not-market list, with the time the
    entry was set: marketing of every tenant, including tenants created after it. One query
    by the unique platform digest (one look-up of its index for one number)."""
    digest_of = {phones.platform_phone_hash(e164): e164 for e164 in set(e164s)}
    if not digest_of:
        return {}
    if len(digest_of) == 1:
        ((digest, e164),) = digest_of.items()
        since = (
            PlatformDoNotMarket.objects.filter(phone_hash=digest).values_list("created_at", flat=True).first()
        )
        return {} if since is None else {e164: since}
    rows = PlatformDoNotMarket.objects.filter(phone_hash__in=list(digest_of)).values_list(
        "phone_hash", "created_at"
    )
    return {digest_of[digest]: since for digest, since in rows}
