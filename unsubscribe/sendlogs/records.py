"""Reading send records as senders give them (a JSON object each, or a CSV row), one chunk at a
time: each item is checked by itself, and the number is digested at once (the tenant's digest; the
number itself is never kept). Bulk paths: the keys are computed once per reader, services loaded once.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from lanzuan import phones
from tenants.models import Tenant
from unsubscribe.instants import InstantError, instant_parse
from unsubscribe.models import Service

from .services import SendRecord

# The columns of a CSV upload; `phone` or `phone_hash` names the number, `sent_at` is required.
CSV_COLUMNS = (
    "phone",
    "phone_hash",
    "sent_at",
    "service",
    "category",
    "template",
    "message_id",
    "engaged_at",
)
FIELDS = frozenset(CSV_COLUMNS)
MAX_TEXT = 100
# A sender's clock may run a little ahead; a send reported further in the future has not happened.
FUTURE_SKEW = timedelta(minutes=10)
_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class RowError:
    """What is wrong with one item: its position (from 0 in a JSON list; the CSV's line number in a
    file), the field (None: the item as a whole) and a message to show, translated."""

    row: int
    field: str | None
    message: str
    # Not the shape the API's schema gives (a type, a format, an unknown field), rather than a
    # value we cannot take (a number that is not valid, an unknown service, a time to come).
    malformed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


@dataclass
class Parsed:
    records: list[SendRecord] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    invalid: int = 0

    @property
    def malformed(self) -> bool:
        return any(error.malformed for error in self.errors)


# A problem: (field, message, malformed).
Problems = list[tuple[str | None, str, bool]]


class SendRecordReader:
    """Checks items of one tenant: `read(items)` → the valid records and the errors."""

    def __init__(self, tenant: Tenant, *, now: datetime | None = None) -> None:
        self.tenant = tenant
        self.zone = tenant.zoneinfo
        self.tenant_id = tenant.pk
        self.codes = set(Service.objects.for_tenant(tenant).values_list("code", flat=True))
        self.latest = (now or timezone.now()) + FUTURE_SKEW
        self.blank_is_missing = False

    def digest_from_platform(self, platform: bytes) -> str:
        return phones.tenant_hash_from_platform(self.tenant_id, platform)

    def read(self, items: Iterable[tuple[int, Any]], *, csv: bool = False) -> Parsed:
        """`csv`: the items are CSV rows, where an empty cell is a value not given (in JSON an empty
        time is an error, as the schema says)."""
        self.blank_is_missing = csv
        parsed = Parsed()
        for row, item in items:
            problems: Problems = []
            record = self._record(item, problems)
            if record is None:
                parsed.invalid += 1
                parsed.errors += [RowError(row, f, m, bad) for f, m, bad in problems]
            else:
                parsed.records.append(record)
        return parsed

    def _time(self, item: dict[str, Any], name: str, problems: Problems) -> datetime | None:
        raw = item.get(name)
        if raw is None or (raw == "" and self.blank_is_missing):
            return None
        if not isinstance(raw, str) or not raw.strip():
            problems.append((name, _("Use an ISO 8601 date and time, e.g. 2025-01-31T08:00:00+08:00."), True))
            return None
        try:
            value = instant_parse(raw, tz=self.zone)
        except InstantError as exc:
            problems.append((name, exc.message, True))
            return None
        if value is not None and value > self.latest:
            problems.append((name, _("The time cannot be in the future."), False))
            return None
        return value

    def _text(self, item: dict[str, Any], name: str, problems: Problems) -> str:
        raw = item.get(name)
        if raw is None:
            return ""
        if not isinstance(raw, str) or "\x00" in raw:
            problems.append((name, _("Must be text."), True))
            return ""
        text = raw.strip()
        if len(text) > MAX_TEXT:
            problems.append((name, _("At most %(max)d characters.") % {"max": MAX_TEXT}, True))
            return ""
        return text

    def _record(self, item: Any, problems: Problems) -> SendRecord | None:
        if not isinstance(item, dict):
            problems.append((None, _("Must be an object."), True))
            return None
        unknown = sorted(str(key) for key in item if key not in FIELDS)
        if unknown:
            problems.append((unknown[0][:50], _("Unknown field."), True))
        phone, digest = item.get("phone"), item.get("phone_hash")
        phone_hash = platform_hash = ""
        if phone not in (None, "") and digest not in (None, ""):
            problems.append(("phone", _("Give the number or its digest (phone_hash), not both."), False))
        elif phone not in (None, ""):
            if not isinstance(phone, str) or "\x00" in phone:
                problems.append(("phone", _("That is not a valid phone number."), True))
            else:
                try:
                    platform = phones.platform_phone_digest(phones.normalise_fast(phone))
                    # T from P (lanzuan/phones.py): both digests for the price of one number
                    phone_hash, platform_hash = self.digest_from_platform(platform), platform.hex()
                except phones.InvalidPhoneNumber as exc:
                    problems.append(("phone", str(exc), False))
        elif digest not in (None, ""):
            if isinstance(digest, str) and _DIGEST.fullmatch(digest):
                phone_hash = digest.lower()
            else:
                problems.append(
                    ("phone_hash", _("Use your digest of the number: 64 hexadecimal characters."), True)
                )
        else:
            problems.append(("phone", _("Give the number (phone) or its digest (phone_hash)."), False))
        sent_at = self._time(item, "sent_at", problems)
        if sent_at is None and not any(problem[0] == "sent_at" for problem in problems):
            problems.append(("sent_at", _("This field is required."), True))
        engaged_at = self._time(item, "engaged_at", problems)
        service = self._text(item, "service", problems)
        if service and service not in self.codes:
            problems.append(("service", _("Unknown service code."), False))
        category = self._text(item, "category", problems)
        template = self._text(item, "template", problems)
        message_id = self._text(item, "message_id", problems)
        if problems or sent_at is None or not phone_hash:
            return None
        return SendRecord(
            phone_hash=phone_hash,
            sent_at=sent_at,
            service_code=service,
            category=category,
            template=template,
            message_id=message_id,
            engaged_at=engaged_at,
            platform_hash=platform_hash,
        )


def csv_rows(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of a send-log CSV (a header row naming the columns; UTF-8, BOM allowed) as
    (line number, row), blank lines skipped, columns it does not know left out. Raises ValueError, with a message to show, when the
    header names no number column or no `sent_at`, or a row cannot be read."""
    reader = csv.reader(lines)
    header: list[str] | None = None
    try:
        for row in reader:
            if header is None:
                if not any(cell.strip() for cell in row):
                    continue
                header = [cell.strip().lstrip("\ufeff").lower() for cell in row]
                if "sent_at" not in header or not {"phone", "phone_hash"} & set(header):
                    raise ValueError(
                        _("The header row must name phone (or phone_hash) and sent_at, e.g. %(columns)s.")
                        % {"columns": "phone,sent_at,service,category,template,message_id,engaged_at"}
                    )
                continue
            if not any(cell.strip() for cell in row):
                continue
            yield (
                reader.line_num,
                {name: value for name, value in zip(header, row, strict=False) if name in FIELDS},
            )
    except csv.Error:  # a field past csv's limit (128 KiB), a NUL byte
        raise ValueError(_("Line %(line)d is not a readable CSV row.") % {"line": reader.line_num}) from None
    if header is None:
        raise ValueError(_("The file is empty."))
