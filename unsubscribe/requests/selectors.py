"""Reads of unsubscribe requests: by receipt reference, by number and scope, and the
payload other systems receive about one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lanzuan import phones
from tenants.models import Tenant
from unsubscribe.models import UnsubscribeRequest
from unsubscribe.references import clean_reference

State = UnsubscribeRequest.State


def same_scope_requests(
    tenant_id: int, phone_hash: str, *, scope_all: bool, service_ids: set[int], states: Sequence[str] = ()
) -> list[UnsubscribeRequest]:
    """This number's requests with exactly this scope (all marketing, or the same services)."""
    candidates = UnsubscribeRequest.objects.for_tenant(tenant_id).filter(
        phone_hash=phone_hash, scope_all=scope_all
    )
    if states:
        candidates = candidates.filter(state__in=states)
    found = []
    for candidate in candidates.order_by("received_at", "pk").prefetch_related("services"):
        if scope_all or {s.pk for s in candidate.services.all()} == service_ids:
            found.append(candidate)
    return found


def request_event_payload(request: UnsubscribeRequest) -> dict[str, Any]:
    return {
        "reference": request.reference,
        "state": request.state,
        "channel": request.channel,
        "phone_hash": request.phone_hash,
        "phone_masked": request.phone_masked,
        "scope": "all" if request.scope_all else [s.code for s in request.services.all()],
        "received_at": request.received_at.isoformat(),
    }


def request_by_reference(*, tenant: Tenant, reference: str) -> UnsubscribeRequest | None:
    return UnsubscribeRequest.objects.for_tenant(tenant).filter(reference=clean_reference(reference)).first()


def request_for_person(*, tenant: Tenant, reference: str, phone: str) -> UnsubscribeRequest | None:
    """A status lookup by a person: the reference and the number must both match
    (the number is compared by hash, so it works after erasure)."""
    request = request_by_reference(tenant=tenant, reference=reference)
    if request is None:
        return None
    try:
        digest = phones.tenant_phone_hash(tenant.pk, phones.normalise(phone))
    except phones.InvalidPhoneNumber:
        return None
    return request if request.phone_hash == digest else None
