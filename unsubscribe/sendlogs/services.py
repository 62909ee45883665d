"""Writes of send logs.

- `send_logs_ingest`: store what a sender reports it sent (already validated, the number already a
  digest), one chunk at a time; a record sent again (same message id, or the same number, time,
  service, category and template) is a duplicate, not a new row. Sends after an opt-out that
  covers them are found in SQL for the whole chunk and recorded as `SendViolation` rows, with one
  `suppression.violated` event per number.
- `send_logs_purge_expired`: the retention purge deletes send logs older than the tenant's
  `send_log_retention_days` (violations keep their own minimised copy).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from tenants.models import Tenant
from unsubscribe import domain_events
from unsubscribe.models import SCOPE_ALL, SendLogEntry, SendViolation, SuppressionEvent, UnsubscribeRequest

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
    """Store one chunk of send records (atomic). A few queries per chunk, whatever its size."""
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
        new = {key: record for key, record in fresh.items() if key not in known}
        # ignore_conflicts: a concurrent import of the same records inserted them first.
        SendLogEntry.objects.bulk_create(
            [
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
                for key, record in new.items()
            ],
            ignore_conflicts=True,
            batch_size=5000,
        )
        inserted = SendLogEntry.objects.for_tenant(tenant).filter(dedupe_key__in=list(new), received_at=now)
        accepted = inserted.count() if new else 0
        violations = _violations_record(tenant=tenant, entries=inserted, now=now) if new else 0
    return IngestCounts(accepted=accepted, duplicates=len(records) - accepted, violations=violations)


def _latest_event(tenant: Tenant, scope: OuterRef | str, field: str) -> Subquery:
    """The newest suppression event of the entry's number in `scope` at or before its send time."""
    return Subquery(
        SuppressionEvent.objects.for_tenant(tenant)
        .filter(
            phone_hash=OuterRef("phone_hash"),
            scope=scope,
            created_at__lte=OuterRef("sent_at"),
        )
        .order_by("-created_at", "-id")
        .values(field)[:1]
    )


def _violations_record(*, tenant: Tenant, entries: QuerySet[SendLogEntry], now: datetime) -> int:
    """Record a violation for each entry sent while an opt-out covered it: the newest suppression
    event of its number at or before the send, for all marketing ("*") or for its service, was an
    addition (not a lift). One query finds them for the whole chunk."""
    added = SuppressionEvent.Action.ADDED
    found = (
        entries.annotate(
            all_action=_latest_event(tenant, SCOPE_ALL, "action"),
            service_action=_latest_event(tenant, OuterRef("service_code"), "action"),
        )
        .filter(Q(all_action=added) | (~Q(service_code="") & Q(service_action=added)))
        .annotate(
            all_at=_latest_event(tenant, SCOPE_ALL, "created_at"),
            all_request=_latest_event(tenant, SCOPE_ALL, "request_id"),
            service_at=_latest_event(tenant, OuterRef("service_code"), "created_at"),
            service_request=_latest_event(tenant, OuterRef("service_code"), "request_id"),
        )
        .values_list(
            "pk",
            "phone_hash",
            "sent_at",
            "service_code",
            "all_action",
            "all_at",
            "all_request",
            "service_at",
            "service_request",
        )
    )
    violations = []
    for pk, digest, sent_at, service, all_action, all_at, all_request, service_at, service_request in found:
        # The all-marketing opt-out is the one to name when both cover the send.
        if all_action == added:
            scope, since, request_id = SCOPE_ALL, all_at, all_request
        else:
            scope, since, request_id = service, service_at, service_request
        violations.append(
            SendViolation(
                tenant=tenant,
                entry_id=pk,
                request_id=request_id,
                phone_hash=digest,
                scope=scope,
                suppressed_at=since,
                sent_at=sent_at,
                service_code=service,
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
