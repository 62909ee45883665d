"""Reads for the voice menu."""

from __future__ import annotations

from collections.abc import Iterable

from tenants.models import Tenant
from unsubscribe.cases.selectors import CaseEntry, admin_url, number_q
from unsubscribe.models import RequestChannel, Service

from .models import VoiceCall, VoiceCredential


def voice_credential(*, tenant: Tenant, provider: str) -> VoiceCredential | None:
    """The tenant's credential for this voice platform, enabled or not; None when never configured."""
    return VoiceCredential.objects.for_tenant(tenant).filter(provider=provider).first()


def voice_services(*, tenant: Tenant) -> list[Service]:
    """The services a caller can choose from, in the order they are read out."""
    return list(Service.objects.for_tenant(tenant).filter(is_active=True).order_by("name", "pk"))


def case_calls(digests: dict[int, str]) -> Iterable[CaseEntry]:
    """The number's calls to each tenant's voice menu (by that tenant's digest) for its case page."""
    rows = (
        VoiceCall.objects.for_tenants(list(digests))
        .filter(number_q(digests, "caller_hash"))
        .select_related("request")
    )
    for call in rows:
        reference = f" · {call.request.reference}" if call.request else ""
        yield CaseEntry(
            at=call.started_at,
            tenant_id=call.tenant_id,
            kind="call",
            channel=str(RequestChannel.HOTLINE.label),
            summary=f"{call.get_outcome_display()}{reference}",
            url=admin_url(call),
        )
