"""Recording number deactivations and reassignments, from the partner API and the admin's CSV
upload. Each item is checked by itself (errors reported per item, like the subscription
import); a report repeating one on record is counted as a duplicate, not stored twice."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from lanzuan import phones
from tenants.models import Tenant
from unsubscribe.models import NumberEvent

MAX_EVENT_ITEMS = 10_000
CSV_COLUMNS = ("phone", "event", "date")


@dataclass
class NumberEventsResult:
    received: int = 0
    recorded: int = 0
    duplicates: int = 0
    invalid: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def _day(value: Any) -> date:
    if not isinstance(value, str):
        raise ValueError
    day = date.fromisoformat(value.strip())
    if len(value.strip()) != 10 or day.year < 1901:
        raise ValueError
    return day


def number_events_record(*, tenant: Tenant, items: list[Any], reported_by: str) -> NumberEventsResult:
    """One NumberEvent per valid item `{phone, event: "deactivated"|"reassigned", date: "YYYY-MM-DD"}`
    (a date in the future is refused: it has not happened). Atomic."""
    result = NumberEventsResult(received=len(items))
    digest_of = phones.tenant_phone_hasher(tenant.pk)
    today = timezone.now().astimezone(tenant.zoneinfo).date()
    rows: dict[tuple[str, str, date], NumberEvent] = {}
    for index, item in enumerate(items):
        problems: list[tuple[str | None, str]] = []
        if not isinstance(item, dict):
            result.invalid += 1
            result.errors.append({"index": index, "field": None, "message": _("Must be an object.")})
            continue
        e164 = None
        raw_phone = item.get("phone")
        if isinstance(raw_phone, str) and raw_phone and "\x00" not in raw_phone:
            try:
                e164 = phones.normalise(raw_phone)
            except phones.InvalidPhoneNumber as exc:
                problems.append(("phone", str(exc)))
        else:
            problems.append(("phone", _("This field is required.")))
        kind = item.get("event")
        if kind not in NumberEvent.Kind.values:
            problems.append(("event", _("Use deactivated or reassigned.")))
        day = None
        try:
            day = _day(item.get("date"))
        except ValueError:
            problems.append(("date", _("Use a date as YYYY-MM-DD.")))
        if day is not None and day > today:
            problems.append(("date", _("The date cannot be in the future.")))
        if problems or e164 is None or day is None:
            result.invalid += 1
            result.errors += [{"index": index, "field": f, "message": m} for f, m in problems]
            continue
        digest = digest_of(e164)
        key = (digest, str(kind), day)
        if key in rows:
            result.duplicates += 1
            continue
        rows[key] = NumberEvent(
            tenant=tenant,
            phone_hash=digest,
            phone_masked=phones.mask(e164),
            kind=str(kind),
            occurred_on=day,
            reported_by=reported_by[:200],
        )
    with transaction.atomic():
        before = NumberEvent.objects.for_tenant(tenant).filter(
            phone_hash__in={digest for digest, _kind, _day in rows}
        )
        known = {(d, k, o) for d, k, o in before.values_list("phone_hash", "kind", "occurred_on")}
        new = [event for key, event in rows.items() if key not in known]
        NumberEvent.objects.bulk_create(new, ignore_conflicts=True)
    result.recorded = len(new)
    result.duplicates += len(rows) - len(new)
    return result


def number_events_from_csv(text: str) -> list[dict[str, str]]:
    """The rows of a CSV with a header naming phone, event and date (UTF-8, BOM allowed).
    Raises ValueError, with a message to show, when the header lacks a column."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        missing = [column for column in CSV_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                _("The header row must name the columns %(columns)s.") % {"columns": ", ".join(CSV_COLUMNS)}
            )
        return [{column: str(row.get(column) or "") for column in CSV_COLUMNS} for row in reader]
    except csv.Error:  # a field past csv's limit (128 KiB)
        raise ValueError(_("The file is not a readable CSV.")) from None
