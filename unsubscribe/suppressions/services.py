"""Suppressions: the "do not send" entries of a number, added when it opts out and
lifted only when the person verifiably asks to receive marketing again.

`suppressions_add` and `suppression_lift` are the only writers of Suppression and of
its append-only SuppressionEvent record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from lanzuan import phones
from tenants.models import Tenant
from unsubscribe import domain_events
from unsubscribe.audit.records import suppression_events_record
from unsubscribe.audit.services import audit_batch
from unsubscribe.consents.services import ConsentEvidence, consents_record, consents_revoke
from unsubscribe.errors import ResubscribeRefused
from unsubscribe.models import (
    SCOPE_ALL,
    ConsentRecord,
    RequestChannel,
    Service,
    Subscription,
    Suppression,
    SuppressionEvent,
    UnsubscribeRequest,
    VerificationMethod,
)
from unsubscribe.selectors import services_resolve
from unsubscribe.suppressions import index as suppression_index

logger = logging.getLogger(__name__)


def suppressions_add(
    *,
    tenant: Tenant,
    phone_hash: str,
    phone_masked: str,
    scopes: list[str],
    request: UnsubscribeRequest | None = None,
    channel: str = "",
    at: datetime | None = None,
    ends_at: datetime | None = None,
    evidence: dict[str, Any] | None = None,
    announce: bool = True,
    e164: str | None = None,
) -> list[str]:
    """Add "do not send" entries; returns the scopes that were new. Concurrency-safe:
    the unique constraint decides, a conflicting insert is ignored.

    `announce` False: no `suppression.added` event now; the pipeline's first turn at `request`
    announces it from the request's events (pipeline.services.request_plan).

    `e164`: the number, when the caller has it (every filing does): the rows then carry
    its lookup key (digest version 2) for the bulk look-ups. Without it they are found by
    `phone_hash` alone, on the bulk paths' slower version-1 branch. The rows and their
    events commit together (the suppression index's high-water mark counts on it).

    `ends_at`: a pause the person chose instead of opting out; the sweep lifts it then
    (`suppression_pauses_end`). A pause revokes no consent and never weakens an entry
    already there. An opt-out (no `ends_at`) makes a paused entry of its scope permanent.
    """
    # One transaction (the caller's, when there is one: no savepoint, nothing here handles an error).
    with transaction.atomic(savepoint=False):
        suppression_index.writers_lock(tenant.pk)
        return _suppressions_add(
            tenant=tenant,
            phone_hash=phone_hash,
            phone_masked=phone_masked,
            scopes=scopes,
            request=request,
            channel=channel,
            at=at,
            ends_at=ends_at,
            evidence=evidence,
            announce=announce,
            lookup_key=phones.tenant_lookup_key(tenant.pk, e164) if e164 else None,
        )


def _suppressions_add(  # noqa: PLR0913
    *,
    tenant: Tenant,
    phone_hash: str,
    phone_masked: str,
    scopes: list[str],
    request: UnsubscribeRequest | None,
    channel: str,
    at: datetime | None,
    ends_at: datetime | None,
    evidence: dict[str, Any] | None,
    announce: bool,
    lookup_key: bytes | None,
) -> list[str]:
    existing = dict(
        Suppression.objects.for_tenant(tenant)
        .filter(phone_hash=phone_hash, scope__in=scopes)
        .values_list("scope", "ends_at")
    )
    new = [s for s in scopes if s not in existing]
    made_permanent: list[str] = []
    if ends_at is None:
        made_permanent = sorted(s for s, until in existing.items() if until is not None)
        if made_permanent:
            Suppression.objects.for_tenant(tenant).filter(
                phone_hash=phone_hash, scope__in=made_permanent
            ).update(ends_at=None, request=request)
        # The opt-out supersedes the consents on record in its scope, also when it was suppressed already.
        consents_revoke(tenant=tenant, phone_hash=phone_hash, scopes=scopes, request=request, at=at)
    if not new and not made_permanent:
        return []
    now = at or timezone.now()
    Suppression.objects.bulk_create(
        [
            Suppression(
                tenant=tenant,
                phone_hash=phone_hash,
                lookup_key=lookup_key,
                phone_masked=phone_masked,
                scope=s,
                request=request,
                created_at=now,
                ends_at=ends_at,
            )
            for s in new
        ],
        ignore_conflicts=True,
    )
    added = sorted([*new, *made_permanent])
    recorded = dict(evidence or {})
    if ends_at is not None:
        recorded["paused_until"] = ends_at.isoformat()
    events = SuppressionEvent.objects.bulk_create(
        [
            SuppressionEvent(
                tenant=tenant,
                phone_hash=phone_hash,
                phone_masked=phone_masked,
                scope=s,
                action=SuppressionEvent.Action.ADDED,
                channel=channel,
                request=request,
                evidence=recorded,
                created_at=now,
            )
            for s in added
        ]
    )
    suppression_events_record(events, reference=request.reference if request else "")
    payload: dict[str, Any] = {
        "phone_hash": phone_hash,
        "phone_masked": phone_masked,
        "scopes": added,
        "reference": request.reference if request else None,
        "since": now.isoformat(),
    }
    if ends_at is not None:
        payload["until"] = ends_at.isoformat()
    if announce:
        domain_events.emit(tenant.pk, "suppression.added", payload)
    return added


def suppression_pauses_end(*, now: datetime | None = None) -> int:
    """Lift every pause whose end has come (run by the pipeline sweep). Each is recorded
    as lifted because the pause ended, and partners get `suppression.lifted`."""
    now = now or timezone.now()
    ended = 0
    due = (
        Suppression.objects.unscoped(reason="the sweep ends every tenant's pauses")
        .filter(ends_at__lte=now)
        .values_list("pk", "tenant_id")[:1000]
    )
    for pk, tenant_id in list(due):
        with transaction.atomic():
            row = (
                Suppression.objects.for_tenant(tenant_id)
                .select_for_update()
                .filter(pk=pk, ends_at__lte=now)
                .first()
            )
            if row is None:  # made permanent (an opt-out) or lifted meanwhile
                continue
            suppression_index.writers_lock(tenant_id)
            row.delete()
            event = SuppressionEvent.objects.create(
                tenant_id=tenant_id,
                phone_hash=row.phone_hash,
                phone_masked=row.phone_masked,
                scope=row.scope,
                action=SuppressionEvent.Action.LIFTED,
                channel="pause",
                evidence={"pause_ended": row.ends_at.isoformat() if row.ends_at else None},
                created_at=now,
            )
            suppression_events_record([event])  # in the tenant's audit record, like every event
            remaining = sorted(
                Suppression.objects.for_tenant(tenant_id)
                .filter(phone_hash=row.phone_hash)
                .values_list("scope", flat=True)
            )
            domain_events.emit(
                tenant_id,
                "suppression.lifted",
                {
                    "phone_hash": row.phone_hash,
                    "phone_masked": row.phone_masked,
                    "scopes": [row.scope],
                    "still_suppressed": remaining,
                    "channel": "pause",
                    "verification_method": "pause_ended",
                    "evidence": {"pause_ended": row.ends_at.isoformat() if row.ends_at else None},
                    "lifted_at": now.isoformat(),
                },
            )
            ended += 1
    return ended


@dataclass(frozen=True)
class SuppressionLift:
    lifted: list[str]  # the scopes no longer suppressed ("*" only when everything resumed)
    still_suppressed: list[str]  # what stays, e.g. "*" after a one-service re-subscribe
    reactivated: int  # subscriptions made active again


def suppression_lift(
    *,
    tenant: Tenant,
    phone: str,
    channel: str,
    verification_method: str,
    evidence: dict[str, Any],
    services: Sequence[str | Service] | None = None,
    phone_normalised: bool = False,
) -> SuppressionLift:
    """The person asked, verifiably, to receive marketing again: lift their opt-out.

    Only for an explicit re-subscribe from the number itself (a reply SMS that says so)
    or a verified page flow; never for a bare "yes". Scope:
    - `services` given: only those services' suppressions are lifted. An all-marketing
      ("*") suppression is never lifted this way, so those services stay suppressed
      until the person resumes everything (reported in `still_suppressed`).
    - `services` empty: "resume everything", the "*" entry and every service's.
    Subscriptions are reactivated only where nothing suppresses their service any more.
    Each lifted scope is an append-only SuppressionEvent carrying `evidence` (what the
    person sent, how it was verified), and a `suppression.lifted` event goes to partners.
    Raises ResubscribeRefused where the tenant's opt-outs are final, UnknownServices.
    """
    if not tenant.allow_resubscribe:
        raise ResubscribeRefused(
            _("%(tenant)s does not allow re-subscribing: an opt-out is final.") % {"tenant": tenant.name}
        )
    if verification_method not in VerificationMethod.values:
        raise ValueError(f"unknown verification method {verification_method!r}")
    e164 = phone if phone_normalised else phones.normalise(phone)
    chosen = services_resolve(tenant=tenant, services=services)
    digest = phones.tenant_phone_hash(tenant.pk, e164)
    masked = phones.mask(e164)
    with transaction.atomic(), audit_batch():
        suppression_index.writers_lock(tenant.pk)
        qs = Suppression.objects.for_tenant(tenant).select_for_update().filter(phone_hash=digest)
        if chosen:
            qs = qs.filter(scope__in=[s.code for s in chosen])
        lifted = sorted(qs.values_list("scope", flat=True))
        qs.filter(scope__in=lifted).delete()
        remaining = set(
            Suppression.objects.for_tenant(tenant).filter(phone_hash=digest).values_list("scope", flat=True)
        )
        now = timezone.now()
        recorded = {**evidence, "verification_method": verification_method}
        events = SuppressionEvent.objects.bulk_create(
            [
                SuppressionEvent(
                    tenant=tenant,
                    phone_hash=digest,
                    phone_masked=masked,
                    scope=s,
                    action=SuppressionEvent.Action.LIFTED,
                    channel=channel,
                    evidence=recorded,
                    created_at=now,
                )
                for s in lifted
            ]
        )
        suppression_events_record(events)
        reactivated = 0
        resumed: list[Subscription] = []
        if SCOPE_ALL not in remaining:
            subscriptions = Subscription.objects.for_tenant(tenant).filter(phone_hash=digest)
            if chosen:
                subscriptions = subscriptions.filter(service__in=chosen)
            for sub in subscriptions.select_related("service").exclude(service__code__in=remaining):
                sub.status = Subscription.Status.ACTIVE
                sub.phone = e164
                sub.consent_source = f"resubscribed via {channel}"[:200]
                sub.consent_at = now
                sub.ended_at = None
                sub.save()
                reactivated += 1
                resumed.append(sub)
        # The re-subscribe is a consent of its own, on the ledger like any other.
        consents_record(
            tenant=tenant,
            consents=[
                ConsentEvidence(
                    service_id=sub.service_id,
                    phone_hash=digest,
                    phone_masked=masked,
                    given_at=now,
                    source=ConsentRecord.Source.SMS_KEYWORD
                    if channel == RequestChannel.SMS
                    else ConsentRecord.Source.FORM,
                    source_detail=sub.consent_source,
                )
                for sub in resumed
            ],
            captured_by=f"re-subscribe ({verification_method})",
        )
        if lifted:
            domain_events.emit(
                tenant.pk,
                "suppression.lifted",
                {
                    "phone_hash": digest,
                    "phone_masked": masked,
                    "scopes": lifted,
                    "still_suppressed": sorted(remaining),
                    "channel": channel,
                    "verification_method": verification_method,
                    "evidence": {k: v for k, v in evidence.items() if k != "text"},
                    "lifted_at": now.isoformat(),
                },
            )
    logger.info("suppression of %s lifted for %s via %s", masked, lifted or "nothing", channel)
    return SuppressionLift(lifted=lifted, still_suppressed=sorted(remaining), reactivated=reactivated)


def resubscribe(
    *, tenant: Tenant, phone: str, channel: str, services: Sequence[str | Service] | None = None
) -> list[str]:
    """Older name, kept for callers: `suppression_lift` with the channel's own
    verification and no further evidence. Returns the lifted scopes."""
    methods: dict[str, str] = {
        RequestChannel.SMS: VerificationMethod.SMS_ORIGIN,
        RequestChannel.WEB: VerificationMethod.OTP,
        RequestChannel.HUB: VerificationMethod.OTP,
        RequestChannel.EMAIL: VerificationMethod.SIGNED_TOKEN,
        RequestChannel.APP: VerificationMethod.PARTNER_ASSERTION,
        RequestChannel.PARTNER: VerificationMethod.PARTNER_ASSERTION,
        RequestChannel.HOTLINE: VerificationMethod.AGENT_ASSERTION,
    }
    method = methods.get(channel, VerificationMethod.ADMIN)
    return suppression_lift(
        tenant=tenant,
        phone=phone,
        channel=channel,
        verification_method=method,
        evidence={},
        services=services,
    ).lifted
