"""Reads: is this number suppressed, find a request by its receipt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tenants.models import Tenant

from . import phones
from .models import SCOPE_ALL, Suppression, UnsubscribeRequest
from .references import clean_reference


@dataclass(frozen=True)
class SuppressionStatus:
    suppressed: bool
    since: datetime | None
    scopes: list[str]


def suppression_status(*, tenant: Tenant, phone: str, service_code: str | None = None) -> SuppressionStatus:
    """May we send to this number? Suppressed if opted out of everything, or of the
    given service. Raises InvalidPhoneNumber."""
    digest = phones.phone_hash(phones.normalise(phone))
    return suppression_status_for_hash(tenant=tenant, phone_hash=digest, service_code=service_code)


def suppression_status_for_hash(
    *, tenant: Tenant, phone_hash: str, service_code: str | None = None
) -> SuppressionStatus:
    rows = list(
        Suppression.objects.for_tenant(tenant)
        .filter(phone_hash=phone_hash)
        .values_list("scope", "created_at")
    )
    # Without a service, "suppressed" means everything is stopped; with one, either.
    relevant_scopes = {SCOPE_ALL} if service_code is None else {SCOPE_ALL, service_code}
    since = [created for scope, created in rows if scope in relevant_scopes]
    return SuppressionStatus(
        suppressed=bool(since), since=min(since) if since else None, scopes=sorted(s for s, _c in rows)
    )


def request_by_reference(*, tenant: Tenant, reference: str) -> UnsubscribeRequest | None:
    return UnsubscribeRequest.objects.for_tenant(tenant).filter(reference=clean_reference(reference)).first()


def request_for_person(*, tenant: Tenant, reference: str, phone: str) -> UnsubscribeRequest | None:
    """A status lookup by a person: the reference and the number must both match
    (the number is compared by hash, so it works after erasure)."""
    request = request_by_reference(tenant=tenant, reference=reference)
    if request is None:
        return None
    try:
        digest = phones.phone_hash(phones.normalise(phone))
    except phones.InvalidPhoneNumber:
        return None
    return request if request.phone_hash == digest else None
