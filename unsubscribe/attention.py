"""Reads for staff: what needs someone's attention, per tenant, and how much SLA time
a request has left. The admin home and the request list show these.

Every function takes the tenant ids the caller may see (None only for superusers),
so one tenant's queue never counts another's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from notifications.services import tenants_without_sms_gateway
from tenants.models import OPERATIONS_ROLES, Membership, Tenant
from tenants.scoping import TenantQuerySet

from .models import AuditHead, UnsubscribeRequest

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise

State = UnsubscribeRequest.State


@dataclass(frozen=True)
class QueueItem:
    key: str  # "needs_attention", "sla_breached", "flagged_replies"
    label: str
    count: int
    url: str


@dataclass(frozen=True)
class TenantQueue:
    tenant: Tenant
    items: list[QueueItem]
    staff_without_email: list[str] = field(default_factory=list)
    no_sms_gateway: bool = False  # not ready: its confirmations and codes cannot be sent
    audit_problem: str = ""  # the daily verification found its audit record broken (audit/verify.py)

    @property
    def total(self) -> int:
        return sum(item.count for item in self.items)


@dataclass(frozen=True)
class ChannelCount:
    """A count a channel adds to every tenant's row (reply SMS: the replies it flagged).
    Channels sit above the core, so they register at start-up (AppConfig.ready)."""

    key: str
    label: _StrOrPromise
    records: Callable[[], TenantQuerySet[Any]]  # the rows to count, not yet scoped (scoped here by tenant)
    changelist: str  # the admin URL name of their list
    params: dict[str, str]  # its filter


_channel_counts: list[ChannelCount] = []
# Platform-wide counts for superusers (reply SMS: the unroutable ones; broken audit records).
_platform_items: list[Callable[[], QueueItem]] = []


def channel_count_register(count: ChannelCount) -> None:
    if count.key not in {known.key for known in _channel_counts}:
        _channel_counts.append(count)


def platform_item_register(item: Callable[[], QueueItem]) -> None:
    if item not in _platform_items:
        _platform_items.append(item)


def _counts(queryset: TenantQuerySet[Any], tenant_ids: list[int]) -> dict[int, int]:
    rows = queryset.for_tenants(tenant_ids).values("tenant_id").annotate(n=Count("id"))
    return {row["tenant_id"]: row["n"] for row in rows}


def _changelist(name: str, tenant: Tenant, params: dict[str, str]) -> str:
    return reverse(name) + "?" + urlencode({**params, "tenant__id__exact": str(tenant.pk)})


def attention_queue(*, tenant_ids: Iterable[int] | None, now: datetime | None = None) -> list[TenantQueue]:
    """For each tenant the caller may see: requests needing attention, open requests
    past their SLA, reply SMS flagged for staff (unroutable, held), with links to the
    filtered lists. `tenant_ids` None: every active tenant (superusers)."""
    now = now or timezone.now()
    tenants_qs = Tenant.objects.filter(is_active=True)
    if tenant_ids is not None:
        tenants_qs = tenants_qs.filter(pk__in=list(tenant_ids))
    tenants = list(tenants_qs.order_by("name"))
    ids = [t.pk for t in tenants]
    requests = UnsubscribeRequest.objects.all()  # scoped to `ids` by _counts
    attention = _counts(requests.filter(state=State.NEEDS_ATTENTION), ids)
    breached = _counts(requests.filter(state__in=UnsubscribeRequest.OPEN_STATES, sla_due_at__lt=now), ids)
    channel_counts = [(count, _counts(count.records(), ids)) for count in _channel_counts]
    staff = staff_without_email(tenant_ids=ids)
    no_gateway = tenants_without_sms_gateway(ids)
    audit_broken = dict(
        AuditHead.objects.for_tenants(ids).filter(broken_at__isnull=False).values_list("tenant_id", "problem")
    )

    request_list = "admin:unsubscribe_unsubscriberequest_changelist"
    queues = []
    for tenant in tenants:
        items = [
            QueueItem(
                "needs_attention",
                _("Requests needing attention"),
                attention.get(tenant.pk, 0),
                _changelist(request_list, tenant, {"state__exact": State.NEEDS_ATTENTION}),
            ),
            QueueItem(
                "sla_breached",
                _("Open requests past their SLA"),
                breached.get(tenant.pk, 0),
                _changelist(
                    request_list,
                    tenant,
                    {
                        "state__in": ",".join(UnsubscribeRequest.OPEN_STATES),
                        "sla_due_at__lt": now.isoformat(),
                    },
                ),
            ),
            *(
                QueueItem(
                    count.key,
                    str(count.label),
                    counts.get(tenant.pk, 0),
                    _changelist(count.changelist, tenant, count.params),
                )
                for count, counts in channel_counts
            ),
        ]
        queues.append(
            TenantQueue(
                tenant,
                items,
                staff.get(tenant.pk, []),
                tenant.pk in no_gateway,
                audit_broken.get(tenant.pk, ""),
            )
        )
    return queues


def platform_attention() -> QueueItem | None:
    """The first platform-wide item registered (for superusers only: tenant staff
    cannot open that list), or None."""
    return _platform_items[0]() if _platform_items else None


def platform_attentions() -> list[QueueItem]:
    """Every platform-wide item (superusers only)."""
    return [item() for item in _platform_items]


def audit_breaks_attention() -> QueueItem:
    """Tenants whose audit record the daily verification found broken (platform-wide)."""
    count = (
        AuditHead.objects.unscoped(reason="superusers see every tenant's audit verdict")
        .filter(broken_at__isnull=False)
        .count()
    )
    return QueueItem(
        "audit_breaks",
        _("Tenants whose audit record is broken"),
        count,
        reverse("admin:unsubscribe_auditentry_changelist"),
    )


def staff_without_email(*, tenant_ids: Iterable[int]) -> dict[int, list[str]]:
    """Per tenant, the user names of active staff who would get needs-attention emails
    (see alerts.py) but have no email address."""
    rows = (
        Membership.objects.filter(
            tenant_id__in=list(tenant_ids), role__in=OPERATIONS_ROLES, user__is_active=True, user__email=""
        )
        .order_by("user__username")
        .values_list("tenant_id", "user__username")
    )
    found: dict[int, list[str]] = {}
    for tenant_id, username in rows:
        found.setdefault(tenant_id, []).append(username)
    return found


def user_misses_alerts(user: Any) -> bool:
    """True when this staff member would be alerted by email but has no address."""
    if not user.is_authenticated or user.email:
        return False
    return (
        get_user_model()
        .objects.filter(
            pk=user.pk,
            memberships__role__in=OPERATIONS_ROLES,
            memberships__tenant__is_active=True,
        )
        .exists()
    )


# --- SLA time left -------------------------------------------------------------------------


@dataclass(frozen=True)
class SlaStatus:
    text: str
    tone: str  # "ok", "soon", "overdue", "met", "missed", "none"


def _duration(delta: timedelta) -> str:
    minutes = max(int(delta.total_seconds() // 60), 1)
    if minutes < 60:
        return ngettext("%(count)d min", "%(count)d min", minutes) % {"count": minutes}
    hours = minutes // 60
    if hours < 48:
        return ngettext("%(count)d h", "%(count)d h", hours) % {"count": hours}
    days = hours // 24
    return ngettext("%(count)d day", "%(count)d days", days) % {"count": days}


def sla_status(request: UnsubscribeRequest, *, now: datetime | None = None) -> SlaStatus:
    """ "5 h left", "3 h overdue", or for a finished request whether it met its SLA."""
    now = now or timezone.now()
    if request.sla_due_at is None:
        return SlaStatus("—", "none")
    if request.state in UnsubscribeRequest.OPEN_STATES:
        left = request.sla_due_at - now
        if left.total_seconds() < 0:
            return SlaStatus(_("%(time)s overdue") % {"time": _duration(-left)}, "overdue")
        tone = "soon" if left < timedelta(hours=2) else "ok"
        return SlaStatus(_("%(time)s left") % {"time": _duration(left)}, tone)
    finished = request.completed_at
    if request.sla_breached_at is not None or (finished is not None and finished > request.sla_due_at):
        return SlaStatus(_("SLA missed"), "missed")
    return SlaStatus(_("Within SLA"), "met")
