"""Bulk upsert of subscriptions from the API (up to 10,000 per call), with errors
reported per item. The CSV import in the admin (unsubscribe.subscriptions.services) does the same
for files; both go through `subscriptions_upsert`, so both skip numbers that opted
out and count them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from lanzuan import phones
from tenants.models import Tenant
from unsubscribe.instants import InstantError
from unsubscribe.models import Service, Subscription
from unsubscribe.subscriptions.services import (
    ConsentFields,
    Key,
    consent_fields_parse,
    consent_time_parse,
    source_text,
    subscription_consents_record,
    subscriptions_upsert,
    tenant_zone,
)

from .selectors import normalise_item

MAX_IMPORT_ITEMS = 10_000


@dataclass
class ImportResult:
    received: int = 0
    created: int = 0
    updated: int = 0
    skipped_opted_out: int = 0
    duplicates: int = 0
    invalid: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def _consent_time(value: Any, zone: tzinfo) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InstantError(_("Use an ISO 8601 date or date and time, e.g. 2025-01-31T08:00:00+08:00."))
    return consent_time_parse(value, tz=zone)


def subscriptions_import(*, tenant: Tenant, items: list[Any], captured_by: str = "") -> ImportResult:
    """Create or update one subscription per valid item (the last one wins when an
    item repeats a number and service). An existing subscription keeps its status:
    an import never restarts marketing that was ended, and a number that opted out
    is skipped and counted in `skipped_opted_out`. An item with consent evidence (a
    `consent_at` or a ledger field) also records a ConsentRecord, captured by `captured_by`."""
    result = ImportResult(received=len(items))
    services = {s.code: s for s in Service.objects.for_tenant(tenant)}
    zone = tenant_zone(tenant)
    now = timezone.now()
    digest_of = phones.tenant_phone_hasher(tenant.pk)
    rows: list[Subscription] = []
    evidence: dict[Key, tuple[Subscription, ConsentFields]] = {}
    for index, item in enumerate(items):
        problems: list[tuple[str | None, str]] = []
        if not isinstance(item, dict):
            result.invalid += 1
            result.errors.append({"index": index, "field": None, "message": _("Must be an object.")})
            continue
        e164, error = (
            (None, _("This field is required."))
            if item.get("phone") in (None, "")
            else normalise_item(item["phone"])
        )
        if error:
            problems.append(("phone", error))
        code = item.get("service")
        service = services.get(code) if isinstance(code, str) else None
        if service is None:
            problems.append(("service", _("Unknown service code: %(code)s") % {"code": code}))
        source = item.get("consent_source") or ""
        # NUL: PostgreSQL text cannot hold it (a 500 before, found with schemathesis).
        if not isinstance(source, str) or len(source) > 200 or "\x00" in source:
            problems.append(("consent_source", _("Must be text of at most 200 characters.")))
        try:
            consent_at = _consent_time(item.get("consent_at"), zone)
        except InstantError as exc:
            problems.append(("consent_at", exc.message))
        fields, consent_problems = consent_fields_parse(item)
        problems += consent_problems
        if problems or e164 is None or service is None:
            result.invalid += 1
            result.errors += [{"index": index, "field": f, "message": m} for f, m in problems]
            continue
        digest = digest_of(e164)
        subscription = Subscription(
            tenant=tenant,
            service=service,
            phone=e164,
            phone_hash=digest,
            phone_masked=phones.mask(e164),
            status=Subscription.Status.ACTIVE,
            consent_source=(source.strip() or source_text(item, fields))[:200],
            consent_at=consent_at or now,
        )
        rows.append(subscription)
        evidence.pop((service.pk, digest), None)  # the last item of a number and service wins
        evidence[(service.pk, digest)] = (subscription, fields)
    with transaction.atomic():
        done = subscriptions_upsert(tenant=tenant, subscriptions=rows)
        subscription_consents_record(tenant=tenant, done=done, evidence=evidence, captured_by=captured_by)
    result.created, result.updated = done.count("created"), done.count("updated")
    result.skipped_opted_out, result.duplicates = done.count("opted_out"), done.duplicates
    return result
