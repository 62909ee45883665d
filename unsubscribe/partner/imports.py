"""Bulk upsert of subscriptions from the API (up to 10,000 per call), with errors
reported per item. The CSV import in the admin (unsubscribe.imports) does the same
for files; both upsert on (service, phone_hash)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from tenants.models import Tenant
from unsubscribe import phones
from unsubscribe.imports import subscriptions_upsert
from unsubscribe.models import Service, Subscription

from .selectors import normalise_item

MAX_IMPORT_ITEMS = 10_000


@dataclass
class ImportResult:
    received: int = 0
    created: int = 0
    updated: int = 0
    invalid: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def _consent_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError
    parsed = parse_datetime(value.strip())
    if parsed is None:
        raise ValueError
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


def subscriptions_import(*, tenant: Tenant, items: list[Any]) -> ImportResult:
    """Create or update one subscription per valid item (the last one wins when an
    item repeats a number and service). An existing subscription keeps its status:
    an import never restarts marketing that was ended."""
    result = ImportResult(received=len(items))
    services = {s.code: s for s in Service.objects.for_tenant(tenant)}
    now = timezone.now()
    rows: dict[tuple[int, str], Subscription] = {}
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
        if not isinstance(source, str) or len(source) > 200:
            problems.append(("consent_source", _("Must be text of at most 200 characters.")))
        try:
            consent_at = _consent_time(item.get("consent_at"))
        except ValueError:
            problems.append(("consent_at", _("Must be an ISO 8601 date and time.")))
        if problems or e164 is None or service is None:
            result.invalid += 1
            result.errors += [{"index": index, "field": f, "message": m} for f, m in problems]
            continue
        digest = phones.phone_hash(e164)
        rows[(service.pk, digest)] = Subscription(
            tenant=tenant,
            service=service,
            phone=e164,
            phone_hash=digest,
            phone_masked=phones.mask(e164),
            status=Subscription.Status.ACTIVE,
            consent_source=source.strip(),
            consent_at=consent_at or now,
        )
    with transaction.atomic():
        done = subscriptions_upsert(list(rows.values()))
    result.created, result.updated = done.created, done.updated
    return result
