"""Reads of suppressions: may we send to this number?"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lanzuan import phones
from tenants.models import Tenant
from unsubscribe.models import SCOPE_ALL, Suppression


@dataclass(frozen=True)
class SuppressionStatus:
    suppressed: bool
    since: datetime | None
    scopes: list[str]


def suppression_status(*, tenant: Tenant, phone: str, service_code: str | None = None) -> SuppressionStatus:
    """May we send to this number? Suppressed if opted out of everything, or of the
    given service. Raises InvalidPhoneNumber."""
    digest = phones.tenant_phone_hash(tenant.pk, phones.normalise(phone))
    return suppression_status_for_hash(tenant=tenant, phone_hash=digest, service_code=service_code)


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
