"""Reads of send logs: what a tenant sent to a number per service (the hub's suggestions), which
tenants market to a number (the hub's provider list), violations per week (the dashboard), a
request's evidence (the proof pack) and what the person's status page shows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from tenants.models import Tenant, local_midnight
from unsubscribe.cases.selectors import CaseEntry, admin_url, number_q
from unsubscribe.models import (
    SendLogEntry,
    SendViolation,
    StillReceivingReport,
    UnsubscribeRequest,
    scope_label,
)


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


@dataclass(frozen=True)
class WeekCount:
    week: date  # its Monday, in the reader's zone
    violations: int  # messages sent that week after an opt-out
    requests: int  # opt-outs they broke


def violations_by_week(
    requests: QuerySet[UnsubscribeRequest], *, zone: tzinfo, weeks: int = 8, now: datetime | None = None
) -> list[WeekCount]:
    """Per week (by send time, weeks starting Monday in `zone`), the messages sent after an opt-out
    of `requests` (through them: they are scoped to what the reader may see already)."""
    now = now or timezone.now()
    today = timezone.localtime(now, zone).date()
    first = today - timedelta(days=today.weekday() + 7 * (weeks - 1))
    rows = requests.filter(send_violations__sent_at__gte=local_midnight(first, zone)).values_list(
        "pk", "send_violations__sent_at"
    )
    counts: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    broken: dict[date, set[int]] = defaultdict(set)
    for request_id, sent_at in rows:
        local = timezone.localtime(sent_at, zone).date()
        week = local - timedelta(days=local.weekday())
        counts[week][0] += 1
        broken[week].add(request_id)
    return [
        WeekCount(week, counts[week][0] if week in counts else 0, len(broken.get(week, ())))
        for week in (first + timedelta(days=7 * i) for i in range(weeks))
    ]


@dataclass(frozen=True)
class AfterOptOut:
    """What the person's status page says about messages after their opt-out."""

    messages: int  # reported by the sender's send logs
    last_sent_at: datetime | None
    reported_at: datetime | None  # the person's latest "I still get messages"


def request_after_opt_out(*, request: UnsubscribeRequest) -> AfterOptOut:
    violations = SendViolation.objects.for_tenant(request.tenant_id).filter(request=request)
    found = violations.aggregate(messages=Count("id"), last=Max("sent_at"))
    reported = (
        StillReceivingReport.objects.for_tenant(request.tenant_id)
        .filter(request=request)
        .aggregate(last=Max("created_at"))["last"]
    )
    return AfterOptOut(messages=found["messages"], last_sent_at=found["last"], reported_at=reported)


def request_violation_evidence(*, request: UnsubscribeRequest) -> dict[str, Any]:
    """For the proof pack: the person's "I still get messages" reports and the send-log rows that
    were sent after the opt-out, digests and masked numbers only (never the number)."""
    tenant_id = request.tenant_id
    violations = (
        SendViolation.objects.for_tenant(tenant_id)
        .filter(request=request)
        .select_related("entry")
        .order_by("sent_at", "pk")
    )
    reports = (
        StillReceivingReport.objects.for_tenant(tenant_id).filter(request=request).order_by("created_at")
    )
    return {
        "reference": request.reference,
        "phone_hash": request.phone_hash,
        "phone_masked": request.phone_masked,
        "reports": [
            {"channel": report.channel, "reported_at": report.created_at.isoformat()} for report in reports
        ],
        "messages_after_opt_out": [
            {
                "sent_at": violation.sent_at.isoformat(),
                "service": violation.service_code,
                "scope": violation.scope,
                "opted_out_at": violation.suppressed_at.isoformat(),
                "detected_at": violation.detected_at.isoformat(),
                # the send log's own row, while it is kept (Tenant.send_log_retention_days)
                "send_log": None
                if violation.entry is None
                else {
                    "category": violation.entry.category,
                    "template": violation.entry.template,
                    "message_id": violation.entry.message_id,
                    "engaged_at": violation.entry.engaged_at.isoformat()
                    if violation.entry.engaged_at
                    else None,
                    "reported_at": violation.entry.received_at.isoformat(),
                },
            }
            for violation in violations
        ],
    }


# --- the case page of a number (registered with cases.selectors in unsubscribe/apps.py) ---------


def case_violations(digests: dict[int, str]) -> Iterable[CaseEntry]:
    rows = (
        SendViolation.objects.for_tenants(list(digests))
        .filter(number_q(digests, "phone_hash"))
        .select_related("request")
    )
    for violation in rows:
        reference = f" · {violation.request.reference}" if violation.request else ""
        yield CaseEntry(
            at=violation.sent_at,
            tenant_id=violation.tenant_id,
            kind="send_violation",
            channel="",
            summary=f"{violation.service_code or '—'} · {scope_label(violation.scope)}{reference}",
            url=admin_url(violation),
        )


def case_still_receiving(digests: dict[int, str]) -> Iterable[CaseEntry]:
    rows = (
        StillReceivingReport.objects.for_tenants(list(digests))
        .filter(number_q(digests, "request__phone_hash"))
        .select_related("request")
    )
    for report in rows:
        yield CaseEntry(
            at=report.created_at,
            tenant_id=report.tenant_id,
            kind="still_receiving",
            channel=report.get_channel_display(),
            summary=report.request.reference,
            url=admin_url(report.request),
        )
