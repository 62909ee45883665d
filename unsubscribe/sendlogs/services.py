"""Writes of send logs.

- `send_logs_ingest`: store what a sender reports it sent (already validated, the number already a
  digest), one chunk at a time; a record sent again (same message id, or the same number, time,
  service, category and template) is a duplicate, not a new row. Sends after an opt-out that
  covers them are found for the whole chunk with one query and recorded as `SendViolation` rows, with one
  `suppression.violated` event per number.
- `still_receiving_report`: the person says messages still arrive after their opt-out (status page,
  reply SMS); recorded on the request, staff alerted.
- `send_logs_purge_expired`: the retention purge deletes send logs older than the tenant's
  `send_log_retention_days` (violations keep their own minimised copy).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from tenants.models import Tenant
from unsubscribe import domain_events
from unsubscribe.models import (
    SCOPE_ALL,
    SendLogEntry,
    SendViolation,
    StillReceivingReport,
    SuppressionEvent,
    UnsubscribeRequest,
)
from unsubscribe.requests.selectors import request_event_payload

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendRecord:
    """One message as a sender reports it, validated, its number already the tenant's digest."""

    phone_hash: str
    sent_at: datetime
    service_code: str = ""
    category: str = ""
    template: str = ""
    message_id: str = ""
    engaged_at: datetime | None = None

    def dedupe_key(self) -> str:
        if self.message_id:
            return "m:" + self.message_id
        natural = "|".join(
            (
                self.phone_hash,
                self.sent_at.astimezone(UTC).isoformat(),
                self.service_code,
                self.category,
                self.template,
            )
        )
        return "n:" + hashlib.sha256(natural.encode()).hexdigest()


@dataclass(frozen=True)
class IngestCounts:
    accepted: int
    duplicates: int
    violations: int


def send_logs_ingest(*, tenant: Tenant, records: Sequence[SendRecord]) -> IngestCounts:
    """Store one chunk of send records (atomic). Three queries per chunk, whatever its size: the
    duplicate keys already on file, the insert, the opt-out events of the chunk's numbers."""
    if not records:
        return IngestCounts(accepted=0, duplicates=0, violations=0)
    now = timezone.now()
    fresh: dict[str, SendRecord] = {}
    for record in records:
        fresh.setdefault(record.dedupe_key(), record)
    with transaction.atomic():
        known = set(
            SendLogEntry.objects.for_tenant(tenant)
            .filter(dedupe_key__in=list(fresh))
            .values_list("dedupe_key", flat=True)
        )
        rows = [
            SendLogEntry(
                tenant=tenant,
                phone_hash=record.phone_hash,
                sent_at=record.sent_at,
                service_code=record.service_code,
                category=record.category,
                template=record.template,
                message_id=record.message_id,
                dedupe_key=key,
                engaged_at=record.engaged_at,
                received_at=now,
            )
            for key, record in fresh.items()
            if key not in known
        ]
        entries = _insert(tenant=tenant, rows=rows)
        violations = _violations_record(tenant=tenant, entries=entries, now=now)
    return IngestCounts(accepted=len(entries), duplicates=len(records) - len(entries), violations=violations)


def _insert(*, tenant: Tenant, rows: list[SendLogEntry]) -> list[SendLogEntry]:
    """Insert the rows; returns those stored, with their ids."""
    if not rows:
        return []
    try:
        with transaction.atomic():
            return SendLogEntry.objects.bulk_create(rows, batch_size=5000)
    except IntegrityError:
        # A concurrent import of the same records stored some of them first: theirs stay, and
        # ours are told apart by their arrival time.
        SendLogEntry.objects.bulk_create(rows, batch_size=5000, ignore_conflicts=True)
        return list(
            SendLogEntry.objects.for_tenant(tenant).filter(
                dedupe_key__in=[row.dedupe_key for row in rows], received_at=rows[0].received_at
            )
        )


def covering_opt_out(
    events: Sequence[tuple[str, str, datetime, int | None]], *, service_code: str, sent_at: datetime
) -> tuple[str, datetime, int | None] | None:
    """The opt-out in force when a message was sent, or None. `events` are the number's suppression
    events (scope, action, time, request id), oldest first. A scope is in force when its newest event
    at or before the send was an addition (not a lift); all marketing ("*") covers every message, a
    service's scope only that service's. When both are in force, all marketing is named."""
    latest: dict[str, tuple[str, datetime, int | None]] = {}
    for scope, action, at, request_id in events:
        if at > sent_at:
            break
        if scope == SCOPE_ALL or (service_code and scope == service_code):
            latest[scope] = (action, at, request_id)
    for scope in (SCOPE_ALL, service_code):
        found = latest.get(scope) if scope else None
        if found is not None and found[0] == SuppressionEvent.Action.ADDED:
            return scope, found[1], found[2]
    return None


def _violations_record(*, tenant: Tenant, entries: list[SendLogEntry], now: datetime) -> int:
    """Record a violation for each entry sent while an opt-out covered it. One query reads the
    suppression events of the chunk's numbers (most have none); the rule is `covering_opt_out`."""
    if not entries:
        return 0
    events: dict[str, list[tuple[str, str, datetime, int | None]]] = {}
    digests = list({entry.phone_hash for entry in entries})
    for start in range(0, len(digests), 5000):
        for digest, scope, action, at, request_id in (
            SuppressionEvent.objects.for_tenant(tenant)
            .filter(phone_hash__in=digests[start : start + 5000])
            .order_by("created_at", "id")
            .values_list("phone_hash", "scope", "action", "created_at", "request_id")
        ):
            events.setdefault(digest, []).append((scope, action, at, request_id))
    violations = []
    for entry in entries:
        history = events.get(entry.phone_hash)
        if not history:
            continue
        found = covering_opt_out(history, service_code=entry.service_code, sent_at=entry.sent_at)
        if found is None:
            continue
        scope, since, opt_out_request = found
        violations.append(
            SendViolation(
                tenant=tenant,
                entry_id=entry.pk,
                request_id=opt_out_request,
                phone_hash=entry.phone_hash,
                scope=scope,
                suppressed_at=since,
                sent_at=entry.sent_at,
                service_code=entry.service_code,
                detected_at=now,
            )
        )
    if not violations:
        return 0
    SendViolation.objects.bulk_create(violations, batch_size=5000)
    _violations_emit(tenant=tenant, violations=violations)
    return len(violations)


def _violations_emit(*, tenant: Tenant, violations: list[SendViolation]) -> None:
    """One `suppression.violated` event per number (and opt-out) of the chunk."""
    groups: dict[tuple[str, int | None], list[SendViolation]] = {}
    for violation in violations:
        groups.setdefault((violation.phone_hash, violation.request_id), []).append(violation)
    references = dict(
        UnsubscribeRequest.objects.for_tenant(tenant)
        .filter(pk__in={request_id for _digest, request_id in groups if request_id})
        .values_list("pk", "reference")
    )
    for (digest, request_id), group in groups.items():
        sent = sorted(v.sent_at for v in group)
        domain_events.emit(
            tenant.pk,
            "suppression.violated",
            {
                "phone_hash": digest,
                "reference": references.get(request_id) if request_id else None,
                "scopes": sorted({v.scope for v in group}),
                "suppressed_at": min(v.suppressed_at for v in group).isoformat(),
                "messages": len(group),
                "services": sorted({v.service_code for v in group}),
                "first_sent_at": sent[0].isoformat(),
                "last_sent_at": sent[-1].isoformat(),
                "detected_at": group[0].detected_at.isoformat(),
            },
        )


def send_logs_purge_expired(*, now: datetime | None = None) -> int:
    """Delete send logs sent longer ago than their tenant's `send_log_retention_days`."""
    now = now or timezone.now()
    purged = 0
    for tenant in Tenant.objects.all():
        cutoff = now - timedelta(days=tenant.send_log_retention_days)
        deleted, _detail = SendLogEntry.objects.for_tenant(tenant).filter(sent_at__lt=cutoff).delete()
        if deleted:
            logger.info(
                "purged %d send log row(s) of %s past %d days",
                deleted,
                tenant.slug,
                tenant.send_log_retention_days,
            )
        purged += deleted
    return purged


# --- "I still get messages" ------------------------------------------------------------------

# One report per request in this time: pressing the button again, or replying TD twice, alerts
# staff once.
REPORT_REPEAT_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class ReportFiled:
    report: StillReceivingReport
    created: bool  # False: the same request was reported within REPORT_REPEAT_WINDOW


def still_receiving_report(*, tenant: Tenant, request: UnsubscribeRequest, channel: str) -> ReportFiled:
    """The person says messages still arrive after their opt-out (the status page, or a reply SMS
    that opts out again): recorded on the request, and staff are alerted (the event
    `request.still_receiving`, handled by alerts.py and the partner webhooks). Atomic."""
    if channel not in StillReceivingReport.Channel.values:
        raise ValueError(f"unknown channel {channel!r}")
    now = timezone.now()
    with transaction.atomic():
        locked = UnsubscribeRequest.objects.for_tenant(tenant).select_for_update().get(pk=request.pk)
        recent = (
            StillReceivingReport.objects.for_tenant(tenant)
            .filter(request=locked, created_at__gte=now - REPORT_REPEAT_WINDOW)
            .order_by("-created_at")
            .first()
        )
        if recent is not None:
            return ReportFiled(recent, created=False)
        report = StillReceivingReport.objects.create(
            tenant=tenant, request=locked, channel=channel, created_at=now
        )
        violations = SendViolation.objects.for_tenant(tenant).filter(request=locked).count()
        domain_events.emit(
            tenant.pk,
            "request.still_receiving",
            {
                **request_event_payload(locked),
                "reported_via": channel,
                "reported_at": now.isoformat(),
                "messages_after_opt_out": violations,
            },
        )
    logger.info("still-receiving report on %s via %s", locked.reference, channel)
    return ReportFiled(report, created=True)
