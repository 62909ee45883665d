"""Reads of send logs: what a tenant sent to a number per service (the hub's suggestions), which
tenants market to a number (the hub's provider list)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Q

from tenants.models import Tenant
from unsubscribe.models import SendLogEntry


@dataclass(frozen=True)
class ServiceSendSummary:
    """What one tenant sent to one number for one service since a time."""

    service_code: str  # "" for messages the sender reported without a service
    messages: int
    last_sent_at: datetime
    last_engaged_at: datetime | None  # the person's last open, click or reply, if the sender knows


def service_send_summary(
    *, tenant: Tenant | int, phone_hash: str, since: datetime
) -> list[ServiceSendSummary]:
    """Per service, the messages the tenant sent to the number (its own digest) since `since`,
    the most messages first."""
    rows = (
        SendLogEntry.objects.for_tenant(tenant)
        .filter(phone_hash=phone_hash, sent_at__gte=since)
        .values("service_code")
        .annotate(messages=Count("id"), last_sent_at=Max("sent_at"), last_engaged_at=Max("engaged_at"))
        .order_by("-messages", "-last_sent_at", "service_code")
    )
    return [
        ServiceSendSummary(
            service_code=row["service_code"],
            messages=row["messages"],
            last_sent_at=row["last_sent_at"],
            last_engaged_at=row["last_engaged_at"],
        )
        for row in rows
    ]


def tenants_sending_to(*, digests: dict[int, str], since: datetime) -> dict[int, int]:
    """tenant id → messages sent to the number since `since`, for each tenant in `digests` (the
    number's digest at each tenant) that sent any. Cross-tenant: the hub's provider list."""
    if not digests:
        return {}
    match = Q()
    for tenant_id, digest in digests.items():
        match |= Q(tenant_id=tenant_id, phone_hash=digest)
    rows = (
        SendLogEntry.objects.unscoped(reason="the hub is cross-tenant: one number, every provider")
        .filter(match, sent_at__gte=since)
        .values("tenant_id")
        .annotate(messages=Count("id"))
        .values_list("tenant_id", "messages")
    )
    return {tenant_id: messages for tenant_id, messages in rows}
