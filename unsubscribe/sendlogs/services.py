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

from django.db import IntegrityError, connection, transaction
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
from unsubscribe.suppressions.selectors import platform_do_not_market_by_digest

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
    # The platform digest, when the sender gave the number itself: a send to a number on the
    # person's platform-wide do-not-market list is a violation too. Never stored.
    platform_hash: str = ""

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


# What the violation check needs of a stored entry: id, digest, send time, service.
Stored = tuple[int, str, datetime, str]


def send_logs_ingest(*, tenant: Tenant, records: Sequence[SendRecord]) -> IngestCounts:
    """Store one chunk of send records (atomic), duplicates left out. A few queries per chunk,
    whatever its size: the insert (on PostgreSQL, COPY into a temporary table and one INSERT … ON
    CONFLICT DO NOTHING), then the suppression events of the chunk's numbers."""
    if not records:
        return IngestCounts(accepted=0, duplicates=0, violations=0)
    now = timezone.now()
    fresh: dict[str, SendRecord] = {}
    for record in records:
        fresh.setdefault(record.dedupe_key(), record)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            entries = _insert_copy(tenant=tenant, fresh=fresh, now=now)
        else:
            entries = _insert_orm(tenant=tenant, fresh=fresh, now=now)
        platform_of = {r.phone_hash: r.platform_hash for r in fresh.values() if r.platform_hash}
        violations = _violations_record(tenant=tenant, entries=entries, now=now, platform_of=platform_of)
    return IngestCounts(accepted=len(entries), duplicates=len(records) - len(entries), violations=violations)


_COLUMNS = (
    "phone_hash",
    "sent_at",
    "service_code",
    "category",
    "template",
    "message_id",
    "dedupe_key",
    "engaged_at",
)


def _insert_copy(*, tenant: Tenant, fresh: dict[str, SendRecord], now: datetime) -> list[Stored]:
    """PostgreSQL: the chunk goes by COPY into a temporary table (no model instances, no
    parameters per value), then into the table in one statement that skips what is on file."""
    columns = ", ".join(_COLUMNS)
    with connection.cursor() as cursor:
        # A plain statement first: it carries the database scope (tenants/postgresql) that COPY
        # itself does not pass through.
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS lanzuan_send_log_chunk ("
            "phone_hash varchar(64), sent_at timestamptz, service_code varchar(50), category varchar(100), "
            "template varchar(100), message_id varchar(100), dedupe_key varchar(110), engaged_at timestamptz)"
        )
        cursor.execute("TRUNCATE lanzuan_send_log_chunk")
        with cursor.cursor.copy(f"COPY lanzuan_send_log_chunk ({columns}) FROM STDIN") as copy:
            for key, record in fresh.items():
                copy.write_row(
                    (
                        record.phone_hash,
                        record.sent_at,
                        record.service_code,
                        record.category,
                        record.template,
                        record.message_id,
                        key,
                        record.engaged_at,
                    )
                )
        cursor.execute(
            "INSERT INTO unsubscribe_sendlogentry (tenant_id, phone_hash, sent_at, service_code, category, "
            "template, message_id, dedupe_key, engaged_at, received_at) "
            "SELECT %s, phone_hash, sent_at, service_code, category, template, message_id, dedupe_key, "
            "engaged_at, %s FROM lanzuan_send_log_chunk "
            "ON CONFLICT (tenant_id, dedupe_key) DO NOTHING "
            "RETURNING id, phone_hash, sent_at, service_code",
            [tenant.pk, now],
        )
        stored: list[Stored] = cursor.fetchall()
        cursor.execute("TRUNCATE lanzuan_send_log_chunk")
    return stored


def _insert_orm(*, tenant: Tenant, fresh: dict[str, SendRecord], now: datetime) -> list[Stored]:
    """Other databases (SQLite for `make run`): the keys on file, then a bulk insert."""
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
    if not rows:
        return []
    try:
        with transaction.atomic():
            created = SendLogEntry.objects.bulk_create(rows, batch_size=5000)
    except IntegrityError:
        # A concurrent import of the same records stored some of them first: theirs stay, and
        # ours are told apart by their arrival time.
        SendLogEntry.objects.bulk_create(rows, batch_size=5000, ignore_conflicts=True)
        created = list(
            SendLogEntry.objects.for_tenant(tenant).filter(
                dedupe_key__in=[row.dedupe_key for row in rows], received_at=now
            )
        )
    return [(entry.pk, entry.phone_hash, entry.sent_at, entry.service_code) for entry in created]


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


def _violations_record(
    *, tenant: Tenant, entries: list[Stored], now: datetime, platform_of: dict[str, str] | None = None
) -> int:
    """Record a violation for each entry sent while an opt-out covered it. One query reads the
    suppression events of the chunk's numbers (most have none); the rule is `covering_opt_out`.
    A number the sender gave as such (`platform_of`: tenant digest → platform digest) also counts
    against the person's platform-wide do-not-market entry, one more query."""
    if not entries:
        return 0
    everywhere = platform_do_not_market_by_digest(list((platform_of or {}).values()))
    events: dict[str, list[tuple[str, str, datetime, int | None]]] = {}
    digests = list({digest for _pk, digest, _sent_at, _service in entries})
    for start in range(0, len(digests), 5000):
        for digest, scope, action, at, request_id in (
            SuppressionEvent.objects.for_tenant(tenant)
            .filter(phone_hash__in=digests[start : start + 5000])
            .order_by("created_at", "id")
            .values_list("phone_hash", "scope", "action", "created_at", "request_id")
        ):
            events.setdefault(digest, []).append((scope, action, at, request_id))
    violations = []
    for pk, digest, sent_at, service in entries:
        history = events.get(digest)
        found = covering_opt_out(history, service_code=service, sent_at=sent_at) if history else None
        blocked_at = everywhere.get((platform_of or {}).get(digest, ""))
        if found is None and blocked_at is not None and blocked_at <= sent_at:
            found = (SCOPE_ALL, blocked_at, None)  # all marketing, by the person, at no tenant's request
        if found is None:
            continue
        scope, since, opt_out_request = found
        violations.append(
            SendViolation(
                tenant=tenant,
                entry_id=pk,
                request_id=opt_out_request,
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
