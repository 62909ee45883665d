"""Tell the provider's staff when a request needs attention, by email, once each
time it gets stuck, so a person's opt-out does not wait for someone to look at
the admin."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse

from notifications.services import notification_send
from tenants.models import OPERATIONS_ROLES, Membership, Tenant

from .models import UnsubscribeRequest


def alert_staff_on_attention(tenant_id: int, event: str, payload: dict[str, Any]) -> None:
    """Domain-event handler: runs in the transaction that moved the request, and
    the messages go out after it commits (notification_send dispatches on commit)."""
    if event != "request.needs_attention":
        return
    tenant = Tenant.objects.get(pk=tenant_id)
    request = UnsubscribeRequest.objects.for_tenant(tenant).get(reference=payload["reference"])
    admin_url = settings.PUBLIC_BASE_URL + reverse(
        "admin:unsubscribe_unsubscriberequest_change", args=[request.pk]
    )
    stuck_since = request.needs_attention_at.timestamp() if request.needs_attention_at else 0
    staff = (
        Membership.objects.filter(tenant=tenant, role__in=OPERATIONS_ROLES, user__is_active=True)
        .exclude(user__email="")
        .select_related("user")
    )
    for membership in staff:
        notification_send(
            tenant=tenant,
            event="request_needs_attention",
            channel="email",
            to=membership.user.email,
            language=tenant.default_language,
            context={
                "reference": request.reference,
                "reason": request.attention_reason[:300],
                "admin_url": admin_url,
            },
            dedupe_key=f"attention:{request.pk}:{membership.user_id}:{stuck_since:.0f}",
        )
