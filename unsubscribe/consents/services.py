"""Writes of the consent-evidence ledger.

- `consents_record`: new evidence (the subscription imports, the partner API). The wording
  is stored once per tenant (`consent_wordings_store`) and referenced by its SHA-256. A
  record for a consent older than an opt-out of its service (or of all marketing) is
  written already revoked, by that opt-out's request.
- `consents_revoke`: an opt-out supersedes the number's active consents in its scope; called
  by `suppressions.services.suppressions_add` in the transaction that suppresses.
- `consents_minimise`: the number's erasure (a pipeline data source, with a receipt) keeps
  the record minimised: digest, masked number, times, wording hash, source; the evidence
  that could identify the person (order id, IP address, free text) is blanked.
- `consents_purge_expired`: the retention purge deletes minimised records after the
  tenant's `consent_retention_days`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from tenants.models import Tenant
from unsubscribe.models import (
    SCOPE_ALL,
    ConsentRecord,
    ConsentWording,
    Service,
    Suppression,
    UnsubscribeRequest,
)

logger = logging.getLogger(__name__)

MAX_WORDING = 10_000


def wording_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def consent_wordings_store(*, tenant: Tenant | int, texts: Iterable[str]) -> dict[str, str]:
    """Store each distinct wording once; returns text → SHA-256."""
    hashes = {text: wording_sha256(text) for text in set(texts) if text}
    if hashes:
        tenant_id = tenant if isinstance(tenant, int) else tenant.pk
        ConsentWording.objects.bulk_create(
            [ConsentWording(tenant_id=tenant_id, sha256=sha, text=text) for text, sha in hashes.items()],
            ignore_conflicts=True,
        )
    return hashes


@dataclass(frozen=True)
class ConsentEvidence:
    """One consent as a caller gives it (the number already digested and masked)."""

    service_id: int
    phone_hash: str
    phone_masked: str
    given_at: datetime
    source: str = ConsentRecord.Source.IMPORT
    source_detail: str = ""
    wording: str = ""
    order_id: str = ""
    page_version: str = ""
    ip: str | None = None
    captured_by: str = ""  # default: the call's


def consents_record(
    *, tenant: Tenant, consents: list[ConsentEvidence], captured_by: str
) -> list[ConsentRecord]:
    """Record consents; one already on record (same service, number and time) is kept as it
    is. Returns the records, new or existing, in the order given. Call inside a transaction
    or alone (atomic)."""
    if not consents:
        return []
    with transaction.atomic():
        hashes = consent_wordings_store(tenant=tenant, texts=(c.wording for c in consents))
        digests = {c.phone_hash for c in consents}
        opted_out: dict[str, list[Suppression]] = {}
        for suppression in (
            Suppression.objects.for_tenant(tenant).filter(phone_hash__in=digests).select_related("request")
        ):
            opted_out.setdefault(suppression.phone_hash, []).append(suppression)
        codes = dict(
            Service.objects.for_tenant(tenant)
            .filter(pk__in={c.service_id for c in consents})
            .values_list("pk", "code")
        )
        records = []
        for consent in consents:
            record = ConsentRecord(
                tenant=tenant,
                service_id=consent.service_id,
                phone_hash=consent.phone_hash,
                phone_masked=consent.phone_masked,
                source=consent.source,
                source_detail=consent.source_detail[:200],
                given_at=consent.given_at,
                wording_sha256=hashes.get(consent.wording, ""),
                evidence_order_id=consent.order_id[:100],
                evidence_page_version=consent.page_version[:100],
                evidence_ip=consent.ip or None,
                captured_by=(consent.captured_by or captured_by)[:200],
            )
            # An opt-out newer than the consent already superseded it.
            for suppression in opted_out.get(consent.phone_hash, []):
                if suppression.scope in (SCOPE_ALL, codes.get(consent.service_id)) and (
                    suppression.created_at >= consent.given_at
                ):
                    record.revoked_at = suppression.created_at
                    record.revoked_by_request = suppression.request
                    break
            records.append(record)
        ConsentRecord.objects.bulk_create(records, ignore_conflicts=True, batch_size=2000)
        stored = {
            (r.service_id, r.phone_hash, r.given_at): r
            for r in ConsentRecord.objects.for_tenant(tenant).filter(
                phone_hash__in=digests, service_id__in={c.service_id for c in consents}
            )
        }
    return [stored[(c.service_id, c.phone_hash, c.given_at)] for c in consents]


def consents_revoke(
    *,
    tenant: Tenant | int,
    phone_hash: str,
    scopes: Iterable[str],
    request: UnsubscribeRequest | None,
    at: datetime | None = None,
) -> int:
    """An opt-out of `scopes` ("*" or service codes) supersedes the number's active consents
    given before it. Returns how many were revoked."""
    now = at or timezone.now()
    scopes = set(scopes)
    active = ConsentRecord.objects.for_tenant(tenant).filter(
        phone_hash=phone_hash, revoked_at__isnull=True, given_at__lte=now
    )
    if SCOPE_ALL not in scopes:
        active = active.filter(service__code__in=scopes)
    return active.update(revoked_at=now, revoked_by_request=request)


def _in_scope(request: UnsubscribeRequest) -> Q:
    if request.scope_all:
        return Q()
    return Q(service__in=request.services.all())


def consents_minimise(*, request: UnsubscribeRequest, at: datetime | None = None) -> int:
    """The number's erasure: its consent records in the request's scope, given before the
    request, keep digest, masked number, times, wording hash and source, and lose the
    evidence that could identify the person. Returns how many were minimised."""
    now = at or timezone.now()
    records = ConsentRecord.objects.for_tenant(request.tenant_id).filter(
        _in_scope(request), phone_hash=request.phone_hash, given_at__lte=request.received_at
    )
    count = records.filter(minimised_at__isnull=True).update(
        minimised_at=now, evidence_order_id="", evidence_ip=None, source_detail=""
    )
    # A record minimised earlier may have gained evidence since (never, by the API); blank it too.
    records.exclude(Q(evidence_order_id="") & Q(evidence_ip__isnull=True) & Q(source_detail="")).update(
        evidence_order_id="", evidence_ip=None, source_detail=""
    )
    return count


def consents_purge_expired(*, now: datetime | None = None) -> int:
    """Delete minimised consent records past their tenant's `consent_retention_days`."""
    now = now or timezone.now()
    purged = 0
    for tenant in Tenant.objects.all():
        cutoff = now - timedelta(days=tenant.consent_retention_days)
        deleted, _detail = ConsentRecord.objects.for_tenant(tenant).filter(minimised_at__lt=cutoff).delete()
        if deleted:
            logger.info(
                "purged %d minimised consent record(s) of %s past %d days",
                deleted,
                tenant.slug,
                tenant.consent_retention_days,
            )
        purged += deleted
    return purged
