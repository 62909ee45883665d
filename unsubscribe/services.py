"""State changes for unsubscribe requests: every channel files through here.

Rules kept here, in one place:
- A request suppresses its number in the same transaction that records it, so the
  number reads as suppressed from the moment we answer.
- Side effects (dispatching Celery work, events) happen after commit only.
- The request row is its own outbox: `next_run_at` says work is due; if the broker
  is down when we dispatch, the periodic sweep dispatches it again.
- Task arguments carry ids, never numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from lanzuan import phones
from lanzuan.backoff import backoff_seconds
from tenants.models import Tenant

from . import datasources, events, tasks  # tasks imports this module: by module, not by name
from .datasources import receipt_text
from .errors import (
    ChannelDisabled,
    IdempotencyConflict,
    PermanentStepError,
    ResubscribeRefused,
    TransientStepError,
    UnknownServices,
)
from .models import (
    SCOPE_ALL,
    Channel,
    Service,
    Step,
    Subscription,
    Suppression,
    SuppressionEvent,
    Target,
    UnsubscribeRequest,
    VerificationMethod,
)
from .references import new_reference
from .selectors import channel_setting

logger = logging.getLogger(__name__)
State = UnsubscribeRequest.State


@dataclass(frozen=True)
class FiledRequest:
    request: UnsubscribeRequest
    created: bool  # False when an idempotency key returned an earlier request


def _resolve_services(tenant: Tenant, services: Iterable[str | Service] | None) -> list[Service]:
    if not services:
        return []
    codes = [s.code if isinstance(s, Service) else str(s).strip() for s in services]
    found = {s.code: s for s in Service.objects.for_tenant(tenant).filter(code__in=codes)}
    unknown = sorted(set(codes) - set(found))
    if unknown:
        raise UnknownServices(_("Unknown service code(s): %(codes)s") % {"codes": ", ".join(unknown)})
    return [found[c] for c in dict.fromkeys(codes)]


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
) -> FiledRequest:
    """File an unsubscribe request from any channel and suppress the number at once.

    `services` empty or None means all of the tenant's marketing. `filed_by` names
    who filed it (an API key, a staff member, a gateway) for the record; unlike the
    evidence it is not part of what an idempotency key must match. Raises
    InvalidPhoneNumber, UnknownServices, IdempotencyConflict or ChannelDisabled with
    a message fit to show. `allow_disabled_channel` is for staff acting on what a
    person already sent on a channel since switched off: an opt-out is never dropped.
    Safe to call concurrently for the same number and key.
    """
    if channel not in Channel.values:
        raise ValueError(f"unknown channel {channel!r}")
    setting = channel_setting(tenant=tenant, channel=channel)
    if not allow_disabled_channel and not setting.enabled:
        raise ChannelDisabled(
            _("%(tenant)s does not offer unsubscribing by %(channel)s.")
            % {"tenant": tenant.name, "channel": Channel(channel).label}
        )
    e164 = phones.normalise(phone)
    chosen = _resolve_services(tenant, services)
    if verification_method not in VerificationMethod.values:
        raise ValueError(f"unknown verification method {verification_method!r}")
    fingerprint = request_fingerprint(
        phone=e164, channel=channel, services=sorted(s.code for s in chosen), evidence=verification_evidence
    )
    if idempotency_key:
        existing = _existing_for_key(tenant, idempotency_key, fingerprint)
        if existing is not None:
            return FiledRequest(existing, created=False)
    try:
        with transaction.atomic():
            open_request = _lock_and_find_open(tenant, phones.phone_hash(e164), chosen)
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


OPEN_STATES = (*UnsubscribeRequest.ACTIVE_STATES, State.NEEDS_ATTENTION)


def number_lock(tenant_id: int, phone_hash: str, purpose: str) -> None:
    """Inside a transaction: serialise work on one number of one tenant until commit.
    On PostgreSQL a transaction-level advisory lock; SQLite runs every write
    transaction IMMEDIATE (settings), which already serialises writers."""
    if connection.vendor != "postgresql":
        return
    digest = hashlib.sha256(f"lanzuan-{purpose}:{tenant_id}:{phone_hash}".encode()).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest[:8], "big", signed=True)])


def same_scope_requests(
    tenant_id: int, phone_hash: str, *, scope_all: bool, service_ids: set[int], states: Sequence[str] = ()
) -> list[UnsubscribeRequest]:
    """This number's requests with exactly this scope (all marketing, or the same services)."""
    candidates = UnsubscribeRequest.objects.for_tenant(tenant_id).filter(
        phone_hash=phone_hash, scope_all=scope_all
    )
    if states:
        candidates = candidates.filter(state__in=states)
    found = []
    for candidate in candidates.order_by("received_at", "pk").prefetch_related("services"):
        if scope_all or {s.pk for s in candidate.services.all()} == service_ids:
            found.append(candidate)
    return found


def _lock_and_find_open(
    tenant: Tenant, phone_hash: str, chosen: Sequence[Service]
) -> UnsubscribeRequest | None:
    """Inside a transaction: the open request for this number and scope, if any, with
    the number locked so that two concurrent calls cannot both miss it."""
    number_lock(tenant.pk, phone_hash, "open")
    wanted = {s.pk for s in chosen}
    found = same_scope_requests(
        tenant.pk, phone_hash, scope_all=not wanted, service_ids=wanted, states=OPEN_STATES
    )
    return found[0] if found else None


def _existing_for_key(tenant: Tenant, key: str, fingerprint: str) -> UnsubscribeRequest | None:
    existing = UnsubscribeRequest.objects.for_tenant(tenant).filter(idempotency_key=key).first()
    if existing is not None and existing.request_fingerprint != fingerprint:
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
) -> UnsubscribeRequest:
    now = timezone.now()
    request = UnsubscribeRequest(
        tenant=tenant,
        reference=new_reference(),
        phone=e164,
        phone_hash=phones.phone_hash(e164),
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
    )
    _plan_steps(request)
    events.emit(tenant.pk, "request.created", request_event_payload(request))
    transaction.on_commit(lambda: request_dispatch(request.pk))
    return request


def suppressions_add(
    *,
    tenant: Tenant,
    phone_hash: str,
    phone_masked: str,
    scopes: list[str],
    request: UnsubscribeRequest | None = None,
    channel: str = "",
    at: datetime | None = None,
) -> list[str]:
    """Add "do not send" entries; returns the scopes that were new. Concurrency-safe:
    the unique constraint decides, a conflicting insert is ignored."""
    existing = set(
        Suppression.objects.for_tenant(tenant)
        .filter(phone_hash=phone_hash, scope__in=scopes)
        .values_list("scope", flat=True)
    )
    new = [s for s in scopes if s not in existing]
    if not new:
        return []
    now = at or timezone.now()
    Suppression.objects.bulk_create(
        [
            Suppression(
                tenant=tenant,
                phone_hash=phone_hash,
                phone_masked=phone_masked,
                scope=s,
                request=request,
                created_at=now,
            )
            for s in new
        ],
        ignore_conflicts=True,
    )
    SuppressionEvent.objects.bulk_create(
        [
            SuppressionEvent(
                tenant=tenant,
                phone_hash=phone_hash,
                phone_masked=phone_masked,
                scope=s,
                action=SuppressionEvent.Action.ADDED,
                channel=channel,
                request=request,
                created_at=now,
            )
            for s in new
        ]
    )
    events.emit(
        tenant.pk,
        "suppression.added",
        {
            "phone_hash": phone_hash,
            "phone_masked": phone_masked,
            "scopes": new,
            "reference": request.reference if request else None,
            "since": now.isoformat(),
        },
    )
    return new


def _plan_steps(request: UnsubscribeRequest) -> None:
    """The receipts-to-be: a step at each of Lanzuan's own data sources (always, for
    every tenant), one per active target (the provider's other systems), and one
    confirmation."""
    targets = (
        Target.objects.for_tenant(request.tenant_id)
        .filter(is_active=True, kind=Target.Kind.HTTP)
        .order_by("purpose", "id")
    )
    steps = _builtin_steps(request, planned=set())
    steps += [
        Step(
            tenant_id=request.tenant_id,
            request=request,
            kind=t.purpose,
            target=t,
            target_name=t.name,
            max_attempts=t.max_attempts,
        )
        for t in targets
    ]
    steps.append(
        Step(
            tenant_id=request.tenant_id,
            request=request,
            kind=Step.Kind.CONFIRM,
            target_name=request.confirmation_channel,
        )
    )
    for step in steps:
        step.save()  # one by one: history rows are written for each step


def _builtin_steps(request: UnsubscribeRequest, *, planned: set[tuple[str, str]]) -> list[Step]:
    """Unsaved steps for every registered source and purpose not in `planned`
    ((kind, source) pairs), in the registry's order."""
    steps = []
    for kind in (Step.Kind.TERMINATE, Step.Kind.ERASE):
        for source in datasources.sources(kind):
            if (kind, source.key) in planned:
                continue
            with translation.override("en"):  # the staff name of record; pages use public labels
                name = str(source.label)[:200]
            steps.append(
                Step(
                    tenant_id=request.tenant_id,
                    request=request,
                    kind=kind,
                    source=source.key,
                    target_name=name,
                )
            )
    return steps


def request_event_payload(request: UnsubscribeRequest) -> dict[str, Any]:
    return {
        "reference": request.reference,
        "state": request.state,
        "channel": request.channel,
        "phone_hash": request.phone_hash,
        "phone_masked": request.phone_masked,
        "scope": "all" if request.scope_all else [s.code for s in request.services.all()],
        "received_at": request.received_at.isoformat(),
    }


# --- dispatching ----------------------------------------------------------------


def request_dispatch(request_id: int) -> None:
    """Hand the request to a worker. Never raises: if the broker is unreachable
    the request stays due and the sweep dispatches it later."""
    try:
        tasks.process_request.apply_async(
            args=(request_id,),
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        )
    except Exception:  # the broker's errors are many kinds; all mean "later"
        logger.warning("broker unavailable; request %s left for the sweep", request_id, exc_info=True)
        return
    UnsubscribeRequest.objects.filter(pk=request_id).update(dispatched_at=timezone.now())


def step_dispatch(step_id: int, countdown: float = 0) -> None:
    try:
        tasks.run_step.apply_async(
            args=(step_id,),
            countdown=countdown,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        )
    except Exception:
        logger.warning("broker unavailable; step %s left for the sweep", step_id, exc_info=True)


# --- the pipeline -----------------------------------------------------------------


def request_advance(request_id: int) -> UnsubscribeRequest | None:
    """Move a request as far as its steps allow. Idempotent: any worker may call it
    any number of times. Phase 1 (ending services and the confirmation) runs in
    parallel, so the confirmation goes out within minutes even while a provider's
    endpoint is retrying; phase 2 (erasure) starts when phase 1 is done and the
    tenant's erasure delay has passed."""
    to_run: list[int] = []
    with transaction.atomic():
        request = (
            UnsubscribeRequest.objects.unscoped()
            .select_for_update()
            .select_related("tenant")
            .filter(pk=request_id)
            .first()
        )
        if request is None or request.state in (State.COMPLETED, State.REJECTED):
            return request
        now = timezone.now()
        steps = list(request.steps.all())
        # A request planned before a data source was registered (or before Lanzuan's
        # own records were built-in steps) gets the steps it lacks: none is skipped.
        missing = _builtin_steps(request, planned={(s.kind, s.source) for s in steps if s.source})
        for step in missing:
            step.save()
        steps += missing
        phase1 = [s for s in steps if s.kind != Step.Kind.ERASE]
        erase = [s for s in steps if s.kind == Step.Kind.ERASE]
        failed = [s for s in steps if s.status == Step.Status.FAILED]

        to_run += [s.pk for s in phase1 if _is_due(s, now)]
        phase1_done = all(s.status == Step.Status.SUCCEEDED for s in phase1)
        terminate_done = all(
            s.status == Step.Status.SUCCEEDED for s in phase1 if s.kind == Step.Kind.TERMINATE
        )

        new_state = State.TERMINATING if not terminate_done else State.CONFIRMING
        request.next_run_at = None
        if phase1_done:
            if request.erasure_due_at is None:
                request.erasure_due_at = now + timedelta(hours=request.tenant.erasure_delay_hours)
            new_state = State.ERASING
            if request.erasure_due_at <= now:
                to_run += [s.pk for s in erase if _is_due(s, now)]
                if all(s.status == Step.Status.SUCCEEDED for s in erase):
                    _complete(request, now)
                    return request
            else:
                request.next_run_at = request.erasure_due_at  # the sweep wakes it when due
        if failed:
            new_state = State.NEEDS_ATTENTION
            request.attention_reason = "; ".join(
                f"{s.get_kind_display()} · {s.target_name}: {s.last_error}" for s in failed
            )[:2000]
            if request.needs_attention_at is None:
                request.needs_attention_at = now
        newly_needs_attention = new_state == State.NEEDS_ATTENTION != request.state
        _enter(request, new_state, now)
        request.save()
        if newly_needs_attention:
            events.emit(request.tenant_id, "request.needs_attention", request_event_payload(request))
    for step_id in to_run:
        transaction.on_commit(lambda sid=step_id: step_dispatch(sid))  # type: ignore[misc]
    return request


def _is_due(step: Step, now: Any) -> bool:
    if step.status == Step.Status.PENDING:
        return True
    if step.status == Step.Status.RETRYING:
        return step.next_attempt_at is None or step.next_attempt_at <= now
    if step.status == Step.Status.RUNNING:
        return step.lease_until is not None and step.lease_until < now  # its worker died
    return False


_STATE_TIMESTAMP = {
    State.SUPPRESSED: "suppressed_at",
    State.TERMINATING: "terminating_at",
    State.CONFIRMING: "confirming_at",
    State.ERASING: "erasing_at",
    State.COMPLETED: "completed_at",
    State.NEEDS_ATTENTION: "needs_attention_at",
    State.REJECTED: "rejected_at",
}


def _enter(request: UnsubscribeRequest, state: str, now: Any) -> None:
    # Reaching a later state stamps every earlier one that was skipped (no targets).
    order = [State.SUPPRESSED, State.TERMINATING, State.CONFIRMING, State.ERASING, State.COMPLETED]
    if state in order:
        for passed in order[: order.index(State(state)) + 1]:
            field = _STATE_TIMESTAMP[passed]
            if getattr(request, field) is None:
                setattr(request, field, now)
    elif getattr(request, _STATE_TIMESTAMP[State(state)]) is None:
        setattr(request, _STATE_TIMESTAMP[State(state)], now)
    request.state = state


def _complete(request: UnsubscribeRequest, now: Any) -> None:
    """Every step is done, the platform's own copies included (built-in erase steps):
    keep only the hash and the mask of the number."""
    request.phone = ""
    request.attention_reason = ""
    _enter(request, State.COMPLETED, now)
    request.next_run_at = None
    request.save()
    _scrub_step_texts(request)
    logger.info("request %s completed", request.reference)
    events.emit(request.tenant_id, "request.completed", request_event_payload(request))


def _scrub_step_texts(request: UnsubscribeRequest) -> None:
    """At completion, once more over every stored text of the request's steps and their
    history rows (django-simple-history copies each save): receipts and errors written
    before redaction existed, or by an older code path, keep no number either."""
    managers: list[Any] = [Step.objects.unscoped(), Step.history.all()]
    for manager in managers:
        rows = manager.filter(request_id=request.pk).exclude(receipt="", last_error="")
        for row in rows.only("pk", "receipt", "last_error").iterator():
            receipt, error = phones.redact(row.receipt), phones.redact(row.last_error)
            if (receipt, error) != (row.receipt, row.last_error):
                # update(): the scrub itself must not write a new history row with the old text
                manager.filter(pk=row.pk).update(receipt=receipt, last_error=error)
    # A needs-attention reason quotes the failed steps' errors.
    for old in UnsubscribeRequest.history.filter(id=request.pk).exclude(attention_reason="").iterator():
        reason = phones.redact(old.attention_reason)
        if reason != old.attention_reason:
            UnsubscribeRequest.history.filter(pk=old.pk).update(attention_reason=reason)


def step_backoff_seconds(attempt: int) -> float:
    """First retry after up to LANZUAN_RETRY_BASE_SECONDS, doubling, capped at 5 min."""
    return backoff_seconds(attempt, base=settings.LANZUAN_RETRY_BASE_SECONDS, cap=300.0)


def step_run(step_id: int) -> str:
    """Run one step once. Claims the step first (a conditional update), so two
    workers never call a target for the same step at the same time. Returns what
    happened: "done", "retry", "failed", "busy" or "skipped"."""
    from . import steps as step_runners  # noqa: PLC0415 — steps imports this module (number_lock)

    now = timezone.now()
    step = (
        Step.objects.unscoped()
        .select_related("request", "request__tenant", "target")
        .filter(pk=step_id)
        .first()
    )
    if step is None:
        return "skipped"
    timeout = step.target.timeout_seconds if step.target else 30
    lease = now + timedelta(seconds=timeout + settings.LANZUAN_STEP_LEASE_MARGIN_SECONDS)
    claimable = (
        Step.objects.unscoped()
        .filter(pk=step_id)
        .filter(
            Q(status=Step.Status.PENDING)
            | Q(status=Step.Status.RETRYING, next_attempt_at__lte=now)
            | Q(status=Step.Status.RETRYING, next_attempt_at__isnull=True)
            | Q(status=Step.Status.RUNNING, lease_until__lt=now)  # its worker died
        )
    )
    claimed = claimable.update(
        status=Step.Status.RUNNING,
        lease_until=lease,
        attempts=F("attempts") + 1,
        started_at=step.started_at or now,
    )
    if not claimed:
        step.refresh_from_db()
        if step.status == Step.Status.RUNNING and step.lease_until:
            # Another worker holds it (or died holding it): look again when the lease ends.
            step_dispatch(step.pk, countdown=max((step.lease_until - now).total_seconds(), 0) + 1)
            return "busy"
        return "skipped"
    step.refresh_from_db()
    step.save()  # the claim goes into the step's history too (update() writes none)
    try:
        receipt = step_runners.run(step)
    except TransientStepError as exc:
        outcome = _step_failed(step, str(exc), permanent=False)
    except PermanentStepError as exc:
        outcome = _step_failed(step, str(exc), permanent=True)
    except Exception as exc:  # a bug or an unexpected library error: record it, retry
        logger.exception("step %s crashed", step_id)
        outcome = _step_failed(step, f"{type(exc).__name__}: {exc}", permanent=False)
    else:
        step.status = Step.Status.SUCCEEDED
        step.receipt_lines = receipt.stored_lines()
        # The text of record, in the tenant's language; pages render the lines in the reader's.
        # redact(): a note may quote another system's answer, which may quote the number.
        step.receipt = phones.redact(
            receipt_text(step.receipt_lines, receipt.note, language=step.request.tenant.default_language)
        )[:2000]
        step.last_error = ""
        step.finished_at = timezone.now()
        step.lease_until = None
        step.next_attempt_at = None
        step.save()
        outcome = "done"
    if outcome == "retry":
        delay = (step.next_attempt_at - timezone.now()).total_seconds() if step.next_attempt_at else 0
        step_dispatch(step.pk, countdown=max(delay, 0))
    else:
        request_dispatch(step.request_id)
    return outcome


def _step_failed(step: Step, error: str, *, permanent: bool) -> str:
    step.last_error = phones.redact(error)[:2000]
    step.lease_until = None
    if permanent or step.attempts >= step.max_attempts:
        step.status = Step.Status.FAILED
        step.finished_at = timezone.now()
        step.next_attempt_at = None
        step.save()
        logger.warning("step %s failed for good after %s attempt(s): %s", step.pk, step.attempts, error)
        return "failed"
    step.status = Step.Status.RETRYING
    step.next_attempt_at = timezone.now() + timedelta(seconds=step_backoff_seconds(step.attempts))
    step.save()
    return "retry"


def request_retry(*, request: UnsubscribeRequest) -> bool:
    """Admin action: give failed steps a fresh set of attempts and resume. Returns
    False when there was nothing to retry."""
    with transaction.atomic():
        request = UnsubscribeRequest.objects.unscoped().select_for_update().get(pk=request.pk)
        if request.state in (State.COMPLETED, State.REJECTED):
            return False
        failed = list(request.steps.filter(status=Step.Status.FAILED))
        for step in failed:
            step.status = Step.Status.PENDING
            step.attempts = 0
            step.next_attempt_at = None
            step.finished_at = None
            step.save()
        if request.state == State.NEEDS_ATTENTION:
            request.state = State.SUPPRESSED
            request.attention_reason = ""
            request.needs_attention_at = None
        request.next_run_at = timezone.now()
        request.save()
        transaction.on_commit(lambda: request_dispatch(request.pk))
    return True


def pipeline_sweep(*, stale_after: timedelta = timedelta(minutes=2)) -> dict[str, int]:
    """Run by beat every 30 s: dispatch due work nobody picked up (broker was down,
    a message was lost, an erasure delay ended) and flag requests past their SLA."""
    now = timezone.now()
    due = list(
        UnsubscribeRequest.objects.unscoped()
        .filter(state__in=UnsubscribeRequest.ACTIVE_STATES, next_run_at__lte=now)
        # not handed to a worker since it became due, or handed over so long ago the message was lost
        .filter(
            Q(dispatched_at__isnull=True)
            | Q(dispatched_at__lt=F("next_run_at"))
            | Q(dispatched_at__lt=now - stale_after)
        )
        .values_list("pk", flat=True)[:1000]
    )
    # Steps whose retry time passed long ago, or whose worker died holding the lease.
    stuck = list(
        Step.objects.unscoped()
        # needs_attention too: one failed target must not stall the others' retries
        .filter(request__state__in=[*UnsubscribeRequest.ACTIVE_STATES, State.NEEDS_ATTENTION])
        .filter(
            Q(status=Step.Status.RETRYING, next_attempt_at__lte=now - stale_after)
            | Q(status=Step.Status.RUNNING, lease_until__lt=now)
        )
        .values_list("pk", flat=True)[:1000]
    )
    for request_id in due:
        request_dispatch(request_id)
    for step_id in stuck:
        step_dispatch(step_id)
    breached = 0
    for request in UnsubscribeRequest.objects.unscoped().filter(
        state__in=[*UnsubscribeRequest.ACTIVE_STATES, State.NEEDS_ATTENTION],
        sla_due_at__lt=now,
        sla_breached_at__isnull=True,
    )[:1000]:
        request.sla_breached_at = now
        request.save(update_fields=["sla_breached_at"])
        breached += 1
    return {"dispatched": len(due), "stuck_steps": len(stuck), "sla_breached": breached}


# --- re-subscribe -------------------------------------------------------------------


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
    e164 = phones.normalise(phone)
    chosen = _resolve_services(tenant, services)
    digest = phones.phone_hash(e164)
    masked = phones.mask(e164)
    with transaction.atomic():
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
        SuppressionEvent.objects.bulk_create(
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
        reactivated = 0
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
        if lifted:
            events.emit(
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
        Channel.SMS: VerificationMethod.SMS_ORIGIN,
        Channel.WEB: VerificationMethod.OTP,
        Channel.HUB: VerificationMethod.OTP,
        Channel.EMAIL: VerificationMethod.SIGNED_TOKEN,
        Channel.APP: VerificationMethod.PARTNER_ASSERTION,
        Channel.PARTNER: VerificationMethod.PARTNER_ASSERTION,
        Channel.HOTLINE: VerificationMethod.AGENT_ASSERTION,
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


# --- retention ------------------------------------------------------------------------


def records_purge_expired(*, now: datetime | None = None) -> int:
    """Delete finished requests older than their tenant's record retention, with
    their steps and history rows. The suppression stays (keyed by hash): the
    opt-out is honoured for good even after its paperwork is gone."""
    now = now or timezone.now()
    purged = 0
    for tenant in Tenant.objects.all():
        cutoff = now - timedelta(days=tenant.record_retention_days)
        ids = list(
            UnsubscribeRequest.objects.for_tenant(tenant)
            .filter(
                Q(state=State.COMPLETED, completed_at__lt=cutoff)
                | Q(state=State.REJECTED, rejected_at__lt=cutoff)
            )
            .values_list("pk", flat=True)[:5000]
        )
        if not ids:
            continue
        with transaction.atomic():
            UnsubscribeRequest.objects.filter(
                pk__in=ids
            ).delete()  # steps cascade; suppressions keep their row
            # after the delete: it writes "deleted" history rows, which go too
            Step.history.filter(request_id__in=ids).delete()
            UnsubscribeRequest.history.filter(id__in=ids).delete()
        purged += len(ids)
        logger.info(
            "purged %d request record(s) of %s past %d days",
            len(ids),
            tenant.slug,
            tenant.record_retention_days,
        )
    return purged
