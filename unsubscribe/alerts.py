"""Tell the provider's staff when a request needs attention, by email, once each
time it gets stuck, so a person's opt-out does not wait for someone to look at
the admin."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from notifications.services import notification_send
from tenants.models import OPERATIONS_ROLES, Membership, Tenant

from .models import StillReceivingReport, UnsubscribeRequest


def alert_staff_on_attention(tenant_id: int, event: str, payload: dict[str, Any]) -> None:
    """Domain-event handler: runs in the transaction that moved the request, and
    the messages go out after it commits (notification_send dispatches on commit).
    A person's "I still get messages" report (request.still_receiving) alerts like a
    request that needs attention: someone must find the sender that ignores the opt-out."""
    if event not in ("request.needs_attention", "request.still_receiving"):
        return
    tenant = Tenant.objects.get(pk=tenant_id)
    request = UnsubscribeRequest.objects.for_tenant(tenant).get(reference=payload["reference"])
    if event == "request.still_receiving":
        with translation.override(tenant.default_language):
            reason = _(
                "the person reports that marketing messages still arrive after the opt-out (%(via)s); "
                "messages after the opt-out in send logs: %(count)d"
            ) % {
                "via": StillReceivingReport.Channel(payload["reported_via"]).label,
                "count": payload.get("messages_after_opt_out", 0),
            }
        _alert(tenant, request, reason, dedupe=f"still-receiving:{request.pk}:{payload['reported_at']}")
        return
    stuck_since = request.needs_attention_at.timestamp() if request.needs_attention_at else 0
    _alert(
        tenant, request, request.attention_reason[:300], dedupe=f"attention:{request.pk}:{stuck_since:.0f}"
    )


def _alert(tenant: Tenant, request: UnsubscribeRequest, reason: str, *, dedupe: str) -> None:
    admin_url = settings.PUBLIC_BASE_URL + reverse(
        "admin:unsubscribe_unsubscriberequest_change", args=[request.pk]
    )
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
                "reason": reason,
                "admin_url": admin_url,
            },
            dedupe_key=f"{dedupe}:{membership.user_id}",
        )
