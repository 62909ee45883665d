"""Bulk import of subscriptions from CSV, in the background with progress.

Columns (header row required): phone, service, consent_source, consent_at
(ISO 8601, optional). Rows are upserted in batches, so 10^5 rows take seconds,
not a request's lifetime.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import phones
from .models import Service, Subscription, SubscriptionImport

logger = logging.getLogger(__name__)

BATCH = 2000
MAX_ERRORS_KEPT = 100


def _rows(import_: SubscriptionImport) -> Iterator[dict[str, str]]:
    with import_.file.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        yield from csv.DictReader(text)


def _count_rows(import_: SubscriptionImport) -> int:
    with import_.file.open("rb") as raw:
        return max(sum(1 for _line in raw) - 1, 0)


def subscription_import_run(import_id: int) -> SubscriptionImport:
    claimed = (
        SubscriptionImport.objects.unscoped()
        .filter(pk=import_id, status=SubscriptionImport.Status.PENDING)
        .update(status=SubscriptionImport.Status.RUNNING)
    )
    import_ = SubscriptionImport.objects.unscoped().select_related("tenant").get(pk=import_id)
    if not claimed:
        return import_
    import_.total_rows = _count_rows(import_)
    import_.save(update_fields=["total_rows"])
    services = {s.code: s for s in Service.objects.for_tenant(import_.tenant)}
    errors: list[str] = []
    batch: list[Subscription] = []
    try:
        for line_no, row in enumerate(_rows(import_), start=2):
            subscription = _subscription_from_row(import_, services, row, line_no, errors)
            if subscription is not None:
                batch.append(subscription)
            import_.rows_done += 1
            if import_.rows_done % BATCH == 0:
                _flush(import_, batch, errors)
                batch = []
        _flush(import_, batch, errors)
    except (UnicodeDecodeError, csv.Error) as exc:
        import_.status = SubscriptionImport.Status.FAILED
        errors.append(f"the file could not be read: {exc}")
    except Exception as exc:
        # Anything else (the database, a time limit): never leave it "running" for good.
        logger.exception("subscription import %s failed", import_id)
        import_.status = SubscriptionImport.Status.FAILED
        errors.append(f"the import stopped: {type(exc).__name__}")
        import_.errors = errors[:MAX_ERRORS_KEPT]
        import_.finished_at = timezone.now()
        import_.save()
        raise
    else:
        import_.status = SubscriptionImport.Status.DONE
    import_.errors = errors[:MAX_ERRORS_KEPT]
    import_.finished_at = timezone.now()
    import_.save()
    return import_


def _subscription_from_row(
    import_: SubscriptionImport,
    services: dict[str, Service],
    row: dict[str, Any],
    line_no: int,
    errors: list[str],
) -> Subscription | None:
    service = services.get((row.get("service") or "").strip())
    if service is None:
        import_.invalid += 1
        errors.append(f"line {line_no}: unknown service {row.get('service')!r}")
        return None
    try:
        e164 = phones.normalise_fast(row.get("phone") or "")
    except phones.InvalidPhoneNumber:
        import_.invalid += 1
        errors.append(f"line {line_no}: invalid number")
        return None
    consent_at: datetime | None = (
        parse_datetime((row.get("consent_at") or "").strip()) if row.get("consent_at") else None
    )
    if consent_at is not None and timezone.is_naive(consent_at):
        consent_at = timezone.make_aware(consent_at)
    return Subscription(
        tenant_id=import_.tenant_id,
        service=service,
        phone=e164,
        phone_hash=phones.phone_hash(e164),
        phone_masked=phones.mask(e164),
        status=Subscription.Status.ACTIVE,
        consent_source=(row.get("consent_source") or "").strip()[:200],
        consent_at=consent_at or timezone.now(),
    )


@dataclass(frozen=True)
class Upserted:
    created: int
    updated: int
    kept_ended: int  # numbers that opted out: their ended row is left alone


def subscriptions_upsert(subscriptions: list[Subscription]) -> Upserted:
    """Create or update subscriptions in one statement (the last one wins when a
    (service, number) repeats). An existing subscription keeps its status, and an
    ended one is not touched at all: an import never restarts marketing that was
    ended, nor brings back a number that was erased. Call inside a transaction."""
    unique = {(s.service_id, s.phone_hash): s for s in subscriptions}
    if not unique:
        return Upserted(0, 0, 0)
    rows = Subscription.objects.filter(
        service_id__in={service for service, _digest in unique},
        phone_hash__in={digest for _service, digest in unique},
    ).values_list("service_id", "phone_hash", "status")
    existing = {(service, digest): status for service, digest, status in rows}
    ended = [key for key, status in existing.items() if status == Subscription.Status.ENDED]
    for key in ended:
        del unique[key]
    Subscription.objects.bulk_create(
        list(unique.values()),
        update_conflicts=True,
        unique_fields=["service", "phone_hash"],
        update_fields=["phone", "phone_masked", "consent_source", "consent_at", "updated_at"],
        batch_size=2000,
    )
    updated = sum(1 for key in unique if key in existing)
    return Upserted(created=len(unique) - updated, updated=updated, kept_ended=len(ended))


def _flush(import_: SubscriptionImport, batch: list[Subscription], errors: list[str]) -> None:
    with transaction.atomic():
        if batch:
            done = subscriptions_upsert(batch)
            import_.updated += done.updated
            import_.created += done.created
            if done.kept_ended:
                errors.append(
                    f"{done.kept_ended} row(s) for numbers that opted out were left as they are (ended)"
                )
        import_.save(update_fields=["rows_done", "created", "updated", "invalid"])


def subscription_import_start(*, import_: SubscriptionImport) -> None:
    from .tasks import import_subscriptions

    transaction.on_commit(lambda: import_subscriptions.delay(import_.pk))
