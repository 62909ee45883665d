"""Reads of the consent-evidence ledger: what is on record for a number, and does it still
stand (not revoked by an opt-out, not void because the number changed hands since)?"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import QuerySet

from tenants.models import Tenant
from unsubscribe.models import ConsentRecord, ConsentWording
from unsubscribe.reassignments.selectors import number_event_dates, void_since


@dataclass(frozen=True, slots=True)
class ConsentStatus:
    """The latest consent on record for a number (and service, when asked)."""

    on_record: bool
    given_at: datetime | None = None
    revoked_at: datetime | None = None
    void_since: date | None = None  # a deactivation or reassignment on or after the consent's day

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def void(self) -> bool:
        return self.void_since is not None

    @property
    def stands(self) -> bool:
        return self.on_record and not self.revoked and not self.void


NO_CONSENT = ConsentStatus(on_record=False)


def consent_records(*, tenant: Tenant | int, phone_hash: str) -> QuerySet[ConsentRecord]:
    return (
        ConsentRecord.objects.for_tenant(tenant)
        .filter(phone_hash=phone_hash)
        .select_related("service", "revoked_by_request")
        .order_by("-given_at", "-pk")
    )


def consent_statuses(
    *, tenant: Tenant, digests: Iterable[str], service_code: str | None = None
) -> dict[str, ConsentStatus]:
    """Per digest with a record: its latest consent (of `service_code`, or of any service)."""
    wanted = list(set(digests))
    latest: dict[str, tuple[datetime, datetime | None]] = {}
    for start in range(0, len(wanted), 5000):
        records = ConsentRecord.objects.for_tenant(tenant).filter(phone_hash__in=wanted[start : start + 5000])
        if service_code:
            records = records.filter(service__code=service_code)
        for digest, given_at, revoked_at in records.order_by("given_at", "pk").values_list(
            "phone_hash", "given_at", "revoked_at"
        ):
            latest[digest] = (given_at, revoked_at)  # the last one wins: the latest
    events = number_event_dates(tenant=tenant, digests=latest)
    zone = tenant.zoneinfo
    return {
        digest: ConsentStatus(
            on_record=True,
            given_at=given_at,
            revoked_at=revoked_at,
            void_since=void_since(given_at, events.get(digest, []), zone),
        )
        for digest, (given_at, revoked_at) in latest.items()
    }


def record_void_since(record: ConsentRecord) -> date | None:
    """The day a deactivation or reassignment voided this record, or None."""
    days = number_event_dates(tenant=record.tenant_id, digests=[record.phone_hash]).get(record.phone_hash, [])
    return void_since(record.given_at, days, record.tenant.zoneinfo)


def wordings(*, tenant: Tenant | int, hashes: Iterable[str]) -> dict[str, str]:
    """SHA-256 → the words, for the records at hand."""
    return dict(
        ConsentWording.objects.for_tenant(tenant)
        .filter(sha256__in={h for h in hashes if h})
        .values_list("sha256", "text")
    )
