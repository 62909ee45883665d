"""Unsubscribe requests: filing one from any channel, at once suppressed.

This module owns the request's creation: the idempotency fingerprint, the lock that
makes two concurrent asks for the same number and scope one request (the later one is
absorbed by the open one), the choice of the confirmation channel, and the new row with
its suppression and its planned steps. What happens to a request afterwards is the
pipeline's (unsubscribe.pipeline).

Rules kept here, in one place:
- A request suppresses its number in the same transaction that records it, so the
  number reads as suppressed from the moment we answer.
- Side effects (dispatching Celery work, events) happen after commit only.
- Task arguments carry ids, never numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from lanzuan import phones
from tenants.models import Tenant
from unsubscribe import domain_events
from unsubscribe.audit.services import audit_actor, audit_batch, current_actor
from unsubscribe.deadlines.services import request_deadlines_plan
from unsubscribe.errors import ChannelDisabled, IdempotencyConflict
from unsubscribe.models import (
    SCOPE_ALL,
    ChannelSetting,
    RequestChannel,
    Service,
    UnsubscribeRequest,
    VerificationMethod,
)
from unsubscribe.pipeline.services import request_dispatch, steps_plan
from unsubscribe.references import new_reference
from unsubscribe.selectors import channel_setting, services_resolve
from unsubscribe.suppressions.services import suppressions_add

from .locks import number_lock
from .selectors import request_event_payload, same_scope_requests

logger = logging.getLogger(__name__)
State = UnsubscribeRequest.State


@dataclass(frozen=True)
class FiledRequest:
    request: UnsubscribeRequest
    created: bool  # False when an idempotency key returned an earlier request


def request_fingerprint(**fields: Any) -> str:
    """Stable hash of what was asked, to tell a retry from a different request with a reused key."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def unsubscribe_request_create(
    *,
    tenant: Tenant,
    phone: str,
    channel: str,
    verification_method: str,
    verification_evidence: dict[str, Any] | None = None,
    services: Sequence[str | Service] | None = None,
    language: str | None = None,
    idempotency_key: str | None = None,
    confirmation_channel: str | None = None,
    allow_disabled_channel: bool = False,
    filed_by: str = "",
    setting: ChannelSetting | None = None,
    phone_normalised: bool = False,
    plan_later: bool = False,
) -> FiledRequest:
    """File an unsubscribe request from any channel and suppress the number at once.

    `services` empty or None means all of the tenant's marketing. `filed_by` names
    who filed it (an API key, a staff member, a gateway) for the record; unlike the
    evidence it is not part of what an idempotency key must match. Raises
    InvalidPhoneNumber, UnknownServices, IdempotencyConflict or ChannelDisabled with
    a message fit to show. `allow_disabled_channel` is for staff acting on what a
    person already sent on a channel since switched off: an opt-out is never dropped.
    A caller that has read the channel's `setting` already, or has `phone` from
    phones.normalise() (`phone_normalised`), passes them on: a reply SMS does both once.
    `plan_later`: the filing transaction writes the request and its suppression only; its
    steps, deadlines and events (request.created, suppression.added) are written by the
    pipeline's first turn at it (a gateway waiting for its answer: the reply SMS webhook).
    Safe to call concurrently for the same number and key.
    """
    if channel not in RequestChannel.values:
        raise ValueError(f"unknown channel {channel!r}")
    if setting is None:
        setting = channel_setting(tenant=tenant, channel=channel)
    elif setting.channel != channel:
        raise ValueError(f"the setting of {setting.channel!r} given for channel {channel!r}")
    if not allow_disabled_channel and not setting.enabled:
        raise ChannelDisabled(
            _("%(tenant)s does not offer unsubscribing by %(channel)s.")
            % {"tenant": tenant.name, "channel": RequestChannel(channel).label}
        )
    e164 = phone if phone_normalised else phones.normalise(phone)
    chosen = services_resolve(tenant=tenant, services=services)
    if verification_method not in VerificationMethod.values:
        raise ValueError(f"unknown verification method {verification_method!r}")
    digest = phones.tenant_phone_hash(tenant.pk, e164)
    # The number enters the fingerprint as the tenant's digest: a plain hash of it could be
    # reversed by trying every number, and would be the same at every tenant.
    fingerprint = request_fingerprint(
        phone=digest, channel=channel, services=sorted(s.code for s in chosen), evidence=verification_evidence
    )
    if idempotency_key:
        existing = _existing_for_key(tenant, idempotency_key, fingerprint)
        if existing is not None:
            return FiledRequest(existing, created=False)
    try:
        # The audit entries of what this writes go in at the end, in one append (audit_batch).
        # A savepoint only where a failure is answered here (a key's concurrent twin, below);
        # any other error undoes the caller's whole transaction, with or without one.
        with (
            transaction.atomic(savepoint=bool(idempotency_key)),
            audit_actor(current_actor(f"channel:{channel}")),
            audit_batch(),
        ):
            open_request = _lock_and_find_open(tenant, digest, chosen)
            if open_request is not None:
                # The same number and scope already has a request under way: that one
                # ends the services and sends the one confirmation; a second would only
                # send the person another SMS (40 identical posts once sent 40).
                logger.info(
                    "request for %s absorbed by open request %s",
                    open_request.phone_masked,
                    open_request.reference,
                )
                # A re-subscribe may have lifted its suppression since: the new ask stands.
                suppressions_add(
                    tenant=tenant,
                    phone_hash=open_request.phone_hash,
                    phone_masked=open_request.phone_masked,
                    scopes=[s.code for s in chosen] or [SCOPE_ALL],
                    request=open_request,
                    channel=channel,
                    e164=e164,
                )
                return FiledRequest(open_request, created=False)
            request = _create_suppressed_request(
                tenant=tenant,
                e164=e164,
                channel=channel,
                verification_method=verification_method,
                verification_evidence=verification_evidence or {},
                services=chosen,
                language=language or tenant.default_language,
                idempotency_key=idempotency_key or None,
                fingerprint=fingerprint,
                confirmation_channel=confirmation_channel
                or _confirmation_channel(setting.confirmation_channel),
                filed_by=filed_by[:200],
                plan=not plan_later,
            )
    except IntegrityError:
        # A concurrent call with the same idempotency key won the race.
        if idempotency_key:
            existing = _existing_for_key(tenant, idempotency_key, fingerprint)
            if existing is not None:
                return FiledRequest(existing, created=False)
        raise
    logger.info(
        "unsubscribe request %s filed for %s via %s", request.reference, request.phone_masked, channel
    )
    return FiledRequest(request, created=True)


def _lock_and_find_open(
    tenant: Tenant, phone_hash: str, chosen: Sequence[Service]
) -> UnsubscribeRequest | None:
    """Inside a transaction: the open request for this number and scope, if any, with
    the number locked so that two concurrent calls cannot both miss it."""
    number_lock(tenant.pk, phone_hash, "open")
    wanted = {s.pk for s in chosen}
    found = same_scope_requests(
        tenant.pk, phone_hash, scope_all=not wanted, service_ids=wanted, states=UnsubscribeRequest.OPEN_STATES
    )
    return found[0] if found else None


def _existing_for_key(tenant: Tenant, key: str, fingerprint: str) -> UnsubscribeRequest | None:
    existing = UnsubscribeRequest.objects.for_tenant(tenant).filter(idempotency_key=key).first()
    # A blank fingerprint is one filed before fingerprints were keyed (the migration to tenant
    # digests dropped the old ones): the key alone decides.
    if existing is not None and existing.request_fingerprint not in ("", fingerprint):
        raise IdempotencyConflict(_("This Idempotency-Key was already used for a different request."))
    return existing


def _confirmation_channel(chosen: str) -> str:
    """Where the one confirmation goes: the tenant's choice for this channel, else
    SMS (we know the number; hotline and app callers have no page to look at)."""
    return chosen if chosen in CONFIRMATION_CHANNELS else "sms"


# A confirmation needs an address we have: the number (SMS, or an app push the
# provider's gateway routes by number).
CONFIRMATION_CHANNELS = ("sms", "push")


def _create_suppressed_request(
    *,
    tenant: Tenant,
    e164: str,
    channel: str,
    verification_method: str,
    verification_evidence: dict[str, Any],
    services: list[Service],
    language: str,
    idempotency_key: str | None,
    fingerprint: str,
    confirmation_channel: str,
    filed_by: str,
    plan: bool,
) -> UnsubscribeRequest:
    now = timezone.now()
    request = UnsubscribeRequest(
        tenant=tenant,
        reference=new_reference(),
        phone=e164,
        phone_hash=phones.tenant_phone_hash(tenant.pk, e164),
        phone_masked=phones.mask(e164),
        scope_all=not services,
        channel=channel,
        verification_method=verification_method,
        verification_evidence=verification_evidence,
        language=language,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        confirmation_channel=confirmation_channel,
        filed_by=filed_by,
        state=State.SUPPRESSED,
        received_at=now,
        suppressed_at=now,
        sla_due_at=now + timedelta(hours=tenant.sla_hours),
        next_run_at=now,
        # handed to a worker at commit (request_dispatch puts it back to None if the broker refuses)
        dispatched_at=now,
    )
    request.save()
    if services:
        request.services.set(services)
    scopes = [s.code for s in services] or [SCOPE_ALL]
    suppressions_add(
        tenant=tenant,
        phone_hash=request.phone_hash,
        phone_masked=request.phone_masked,
        scopes=scopes,
        request=request,
        channel=channel,
        at=now,
        announce=plan,
        e164=e164,
    )
    if plan:
        steps_plan(request)
        request_deadlines_plan(request=request, e164=e164, tenant=tenant)
        domain_events.emit(tenant.pk, "request.created", request_event_payload(request))
    transaction.on_commit(lambda: request_dispatch(request.pk, marked=True))
    return request
