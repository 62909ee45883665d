"""The pipeline: what happens to a request after it is filed, step by step.

This module owns the steps of a request (planned at filing, run one at a time by
workers), the request's state as its steps finish, retries with backoff, the admin's
retry, and the sweep that dispatches what no worker picked up. What each step does is
in `steps`; Lanzuan's own data sources (terminate, erase) are in `datasources`.

Rules kept here, in one place:
- Side effects (dispatching Celery work, events) happen after commit only.
- The request row is its own outbox: `next_run_at` says work is due; if the broker
  is down when we dispatch, the periodic sweep dispatches it again.
- Task arguments carry ids, never numbers.
"""

from __future__ import annotations

import functools
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone, translation

from lanzuan import phones
from lanzuan.backoff import backoff_seconds
from lanzuan.dispatch import dispatch_or_leave_for_sweep
from unsubscribe import domain_events, tasks  # tasks imports this module: by module, not by name
from unsubscribe.audit.records import history_rows_record
from unsubscribe.audit.services import audit_batch, audit_rows_changed
from unsubscribe.deadlines import services as deadlines
from unsubscribe.errors import PermanentStepError, StepWaiting, TransientStepError
from unsubscribe.models import Step, SuppressionEvent, Target, UnsubscribeRequest
from unsubscribe.requests.selectors import request_event_payload
from unsubscribe.retention.selectors import erasure_deadline
from unsubscribe.suppressions.services import suppression_pauses_end

from . import datasources
from . import steps as step_runners
from .datasources import receipt_text

logger = logging.getLogger(__name__)
State = UnsubscribeRequest.State
# Taken before "pipeline" by every worker that consumes both (settings.CELERY_TASK_QUEUES).
CONFIRMATION_QUEUE = "confirmations"


def request_plan(request: UnsubscribeRequest) -> list[Step]:
    """The first turn at a request filed with `plan_later` (a reply SMS answered at once), in
    the turn's transaction: its steps, its deadlines, and what listeners would have heard at
    filing (suppression.added from the request's own suppression events, then request.created).
    A request without steps has not been planned: every plan has a confirmation step."""
    steps = steps_plan(request)
    if request.phone:
        deadlines.request_deadlines_plan(request=request, e164=request.phone, tenant=request.tenant)
    added = list(
        SuppressionEvent.objects.for_tenant(request.tenant_id)
        .filter(request=request, action=SuppressionEvent.Action.ADDED)
        .order_by("pk")
    )
    if added:
        payload: dict[str, Any] = {
            "phone_hash": added[0].phone_hash,
            "phone_masked": added[0].phone_masked,
            "scopes": sorted(event.scope for event in added),
            "reference": request.reference,
            "since": added[0].created_at.isoformat(),
        }
        domain_events.emit(request.tenant_id, "suppression.added", payload)
    domain_events.emit(request.tenant_id, "request.created", request_event_payload(request))
    return steps


def steps_plan(request: UnsubscribeRequest) -> list[Step]:
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
    return _steps_create(steps)


def _steps_create(steps: list[Step]) -> list[Step]:
    """Two statements, not two per step: the steps, then their history rows, each in bulk;
    and the history rows in the tenant's audit record (a bulk write sends no signal)."""
    created = Step.objects.bulk_create(steps)
    history_rows_record(Step.history.bulk_history_create(created), instances=created)
    return created


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


# --- dispatching ----------------------------------------------------------------


def request_dispatch(request_id: int, *, marked: bool = False, confirmation_first: bool = True) -> None:
    """Hand the request to a worker. Never raises: if the broker is unreachable
    the request stays due and the sweep dispatches it later. `marked`: the request was
    written with `dispatched_at` already (filing: one statement less on the hot path),
    cleared again if the broker refused it. `confirmation_first`: see request_process."""
    args = (request_id,) if confirmation_first else (request_id, False)
    queued = dispatch_or_leave_for_sweep(tasks.process_request, *args, what=f"request {request_id}")
    if queued != marked:
        UnsubscribeRequest.objects.unscoped(reason="marks a request handed to a worker, by its id").filter(
            pk=request_id
        ).update(dispatched_at=timezone.now() if queued else None)


def step_dispatch(step_id: int, countdown: float = 0, queue: str | None = None) -> None:
    """Hand the step to a worker in `countdown` seconds. Never raises: the sweep
    dispatches a step that stays due."""
    dispatch_or_leave_for_sweep(
        tasks.run_step, step_id, what=f"step {step_id}", countdown=countdown, queue=queue
    )


# --- the pipeline -----------------------------------------------------------------


# How many times one task advances a request and runs its own steps in between: enough for
# a request whose erasure is due at once (end services, advance, erase, complete).
INLINE_ROUNDS = 4


def request_process(request_id: int, *, confirmation_first: bool = True) -> None:
    """A worker's turn at a request: advance it, run the steps that stay inside Lanzuan's own
    database (built-in data sources: no call out, nothing to wait for) right here, one after
    the other, and advance again; only steps that call out (a provider's target, the
    confirmation) become tasks of their own. One task instead of one per step.

    With `confirmation_first`, a turn that hands out the confirmation ends there: its own steps
    run in the next turn, queued behind every request already waiting. In a burst each request's
    first turn is then short (plan, hand out the confirmation), so every confirmation goes out
    within minutes, instead of each waiting for the steps of all the requests filed before it.
    The next turn does not end early again: a confirmation still pending then (its task not run
    yet, or lost) is handed out again, and the turn goes on with the steps."""
    for _round in range(INLINE_ROUNDS):
        _request, inline, confirming = _advance(request_id, inline=True)
        if not inline:
            return
        if confirming and confirmation_first:
            break
        for step_id in inline:
            step_run(step_id, advance=False)
    # More to do than this task should: the next turn goes on.
    request_dispatch(request_id, confirmation_first=False)


def request_advance(request_id: int) -> UnsubscribeRequest | None:
    """Move a request as far as its steps allow, every due step handed to a worker as a
    task of its own. Idempotent: any worker may call it any number of times."""
    return _advance(request_id, inline=False)[0]


def _runs_inline(step: Step) -> bool:
    return step.target_id is None and step.kind != Step.Kind.CONFIRM


def _advance(request_id: int, *, inline: bool) -> tuple[UnsubscribeRequest | None, list[int], bool]:
    """Move a request as far as its steps allow. Phase 1 (ending services and the
    confirmation) runs in parallel, so the confirmation goes out within minutes even while
    a provider's endpoint is retrying; phase 2 (erasure) starts when phase 1 is done and the
    tenant's erasure delay has passed. Returns the request, with `inline` the due steps the
    caller runs itself (the rest are dispatched after commit), and whether the confirmation
    was among those dispatched."""
    to_run: list[Step] = []
    with transaction.atomic(), audit_batch():
        request = (
            UnsubscribeRequest.objects.unscoped(reason="a worker advances a request by its id")
            # The request's row only: FOR UPDATE of the joined tenant row would queue every other
            # transaction of the tenant behind this one (its foreign-key checks take the tenant row
            # FOR KEY SHARE at commit), and deadlock with the audit record's head lock.
            .select_for_update(of=("self",))
            .select_related("tenant")
            .filter(pk=request_id)
            .first()
        )
        if request is None or request.state == State.COMPLETED:
            return request, [], False
        now = timezone.now()
        steps = list(request.steps.all()) or request_plan(request)
        # A request planned before a data source was registered (or before Lanzuan's
        # own records were built-in steps) gets the steps it lacks: none is skipped.
        missing = _builtin_steps(request, planned={(s.kind, s.source) for s in steps if s.source})
        if missing:
            _steps_create(missing)
        steps += missing
        phase1 = [s for s in steps if s.kind != Step.Kind.ERASE]
        erase = [s for s in steps if s.kind == Step.Kind.ERASE]
        failed = [s for s in steps if s.status == Step.Status.FAILED]

        to_run += [s for s in phase1 if _is_due(s, now)]
        phase1_done = all(s.status == Step.Status.SUCCEEDED for s in phase1)
        terminate_done = all(
            s.status == Step.Status.SUCCEEDED for s in phase1 if s.kind == Step.Kind.TERMINATE
        )

        new_state = State.TERMINATING if not terminate_done else State.SERVICES_ENDED
        request.next_run_at = None
        # erasure_due_at: the latest the raw number is kept. Until erasure is planned, the
        # deadline of a request that may stall (retention.selectors.erasure_deadline).
        deadline = erasure_deadline(request)
        planned = request.erasing_at is not None and request.erasure_due_at is not None
        if phase1_done:
            delay = timedelta(hours=request.tenant.erasure_delay_hours)
            due_at = (
                request.erasure_due_at if planned and request.erasure_due_at else min(now + delay, deadline)
            )
            request.erasure_due_at = due_at
            new_state = State.ERASING
            # A request that needs attention shows its deadline in erasure_due_at; the erasure
            # planned before goes on as planned meanwhile (its other steps, as they come due).
            planned_due = request.erasing_at + delay if request.erasing_at is not None else due_at
            if due_at <= now or (request.state == State.NEEDS_ATTENTION and planned_due <= now):
                to_run += [s for s in erase if _is_due(s, now)]
                if all(s.status == Step.Status.SUCCEEDED for s in erase):
                    _complete(request, now)
                    return request, [], False
            else:
                request.next_run_at = request.erasure_due_at  # the sweep wakes it when due
        elif not planned:
            request.erasure_due_at = deadline
        if failed:
            new_state = State.NEEDS_ATTENTION
            # Waiting for staff: the number is kept until the deadline at the latest.
            request.erasure_due_at = deadline
            request.attention_reason = "; ".join(
                f"{s.get_kind_display()} · {s.target_name}: {s.last_error}" for s in failed
            )[:2000]
            if request.needs_attention_at is None:
                request.needs_attention_at = now
        before = request.state
        _enter(request, new_state, now)
        _deadlines_settle(request, steps, failed=bool(failed), before=before, now=now)
        newly_needs_attention = request.state == State.NEEDS_ATTENTION != before
        request.save()
        if newly_needs_attention:
            domain_events.emit(request.tenant_id, "request.needs_attention", request_event_payload(request))
    confirming = any(step.kind == Step.Kind.CONFIRM for step in to_run)
    return request, _steps_hand_out(to_run, inline=inline), confirming


def _steps_hand_out(steps: list[Step], *, inline: bool) -> list[int]:
    """Dispatch each due step after commit, except (with `inline`) those the caller runs itself,
    whose ids are returned."""
    mine = [s.pk for s in steps if inline and _runs_inline(s)]
    for step in steps:
        if step.pk not in mine:
            # The confirmation goes ahead of every other task: a burst of opt-outs must not
            # push a person's confirmation past its deadline.
            queue = CONFIRMATION_QUEUE if step.kind == Step.Kind.CONFIRM else None
            transaction.on_commit(functools.partial(step_dispatch, step.pk, queue=queue))
    return mine


def _deadlines_settle(
    request: UnsubscribeRequest, steps: list[Step], *, failed: bool, before: str, now: Any
) -> None:
    """Deadlines met by what was just done; one still overdue keeps the request needing
    attention (its work goes on meanwhile: the sweep dispatches it when due)."""
    deadlines.request_deadlines_update(request=request, steps=steps, now=now)
    if failed or deadlines.request_attention_raise(request=request, now=now):
        return
    if before == State.NEEDS_ATTENTION:  # it needed attention only for a deadline, met now
        request.attention_reason = ""
        request.needs_attention_at = None


def _is_due(step: Step, now: Any) -> bool:
    if step.status == Step.Status.PENDING:
        return True
    if step.status == Step.Status.RETRYING:
        return step.next_attempt_at is None or step.next_attempt_at <= now
    if step.status == Step.Status.RUNNING:
        return step.lease_until is not None and step.lease_until < now  # its worker died
    return False


def _enter(request: UnsubscribeRequest, state: str, now: Any) -> None:
    # Reaching a later state stamps every earlier one that was skipped (no targets).
    order = [State.SUPPRESSED, State.TERMINATING, State.SERVICES_ENDED, State.ERASING, State.COMPLETED]
    if state in order:
        for passed in order[: order.index(State(state)) + 1]:
            field = UnsubscribeRequest.STATE_TIMESTAMPS[passed]
            if getattr(request, field) is None:
                setattr(request, field, now)
    elif getattr(request, UnsubscribeRequest.STATE_TIMESTAMPS[State(state)]) is None:
        setattr(request, UnsubscribeRequest.STATE_TIMESTAMPS[State(state)], now)
    request.state = state


def _complete(request: UnsubscribeRequest, now: Any) -> None:
    """Every step is done, the platform's own copies included (built-in erase steps):
    keep only the hash and the mask of the number."""
    request.phone = ""
    request.attention_reason = ""
    _enter(request, State.COMPLETED, now)
    request.next_run_at = None
    request.save()
    deadlines.request_deadlines_update(request=request, now=now)
    step_texts_redact(request)
    logger.info("request %s completed", request.reference)
    domain_events.emit(request.tenant_id, "request.completed", request_event_payload(request))


def step_texts_redact(request: UnsubscribeRequest) -> None:
    """At completion (and at a stalled request's erasure deadline), once more over every
    stored text of the request's steps and their history rows (django-simple-history
    copies each save): receipts and errors written before redaction existed, or by an
    older code path, keep no number either."""
    managers: list[Any] = [Step.objects.for_tenant(request.tenant_id), Step.history.all()]
    redacted: list[Any] = []
    for manager in managers:
        rows = manager.filter(request_id=request.pk).exclude(receipt="", last_error="")
        changed = []
        for row in rows.only("pk", "receipt", "last_error").iterator():
            receipt, error = phones.redact(row.receipt), phones.redact(row.last_error)
            if (receipt, error) != (row.receipt, row.last_error):
                # update(): the redaction itself must not write a new history row with the old text
                manager.filter(pk=row.pk).update(receipt=receipt, last_error=error)
                changed.append(row.pk)
        if changed:
            redacted += list(manager.filter(pk__in=changed))
    # A needs-attention reason quotes the failed steps' errors.
    changed = []
    for old in UnsubscribeRequest.history.filter(id=request.pk).exclude(attention_reason="").iterator():
        reason = phones.redact(old.attention_reason)
        if reason != old.attention_reason:
            UnsubscribeRequest.history.filter(pk=old.pk).update(attention_reason=reason)
            changed.append(old.pk)
    if changed:
        redacted += list(UnsubscribeRequest.history.filter(pk__in=changed))
    # The rows as they are now are the record (their digests), the texts were redacted on purpose.
    audit_rows_changed(
        tenant_id=request.tenant_id, kind="records.redacted", rows=redacted, reference=request.reference
    )


def step_backoff_seconds(attempt: int) -> float:
    """First retry after up to LANZUAN_RETRY_BASE_SECONDS, doubling, capped at 5 min."""
    return backoff_seconds(attempt, base=settings.LANZUAN_RETRY_BASE_SECONDS, cap=300.0)


def step_run(step_id: int, *, advance: bool = True) -> str:
    """Run one step once. Claims the step first (a conditional update), so two
    workers never call a target for the same step at the same time. Returns what
    happened: "done", "retry", "failed", "busy" or "skipped". Then the request is advanced
    by a task of its own, unless the caller advances it (`advance` false: request_process)."""
    now = timezone.now()
    step = (
        Step.objects.unscoped(reason="a worker runs a step by its id")
        .select_related("request", "request__tenant", "target")
        .filter(pk=step_id)
        .first()
    )
    if step is None:
        return "skipped"
    timeout = step.target.timeout_seconds if step.target else settings.LANZUAN_INTERNAL_STEP_TIMEOUT_SECONDS
    lease = now + timedelta(seconds=timeout + settings.LANZUAN_STEP_LEASE_MARGIN_SECONDS)
    claimable = (
        Step.objects.for_tenant(step.tenant_id)
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
    _save(step)  # the claim goes into the step's history too (update() writes none)
    try:
        receipt = step_runners.run(step)
    except StepWaiting as exc:
        outcome = _step_wait(step, str(exc), until=exc.until)
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
        _save(step)
        outcome = "done"
    if outcome == "retry":
        delay = (step.next_attempt_at - timezone.now()).total_seconds() if step.next_attempt_at else 0
        step_dispatch(step.pk, countdown=max(delay, 0))
    elif advance:
        request_dispatch(step.request_id)
    return outcome


def _save(step: Step) -> None:
    """A step's result, its history row and their audit entry: one transaction."""
    with transaction.atomic():
        step.save()


def _step_failed(step: Step, error: str, *, permanent: bool) -> str:
    step.last_error = phones.redact(error)[:2000]
    step.lease_until = None
    if permanent or step.attempts >= step.max_attempts:
        step.status = Step.Status.FAILED
        step.finished_at = timezone.now()
        step.next_attempt_at = None
        _save(step)
        logger.warning("step %s failed for good after %s attempt(s): %s", step.pk, step.attempts, error)
        return "failed"
    step.status = Step.Status.RETRYING
    step.next_attempt_at = timezone.now() + timedelta(seconds=step_backoff_seconds(step.attempts))
    _save(step)
    return "retry"


def _step_wait(step: Step, reason: str, *, until: Any) -> str:
    """The step waits for work on its own schedule (StepWaiting): not an attempt, and
    not a failure; `last_error` says what it waits for."""
    step.attempts = max(step.attempts - 1, 0)
    step.last_error = phones.redact(reason)[:2000]
    step.lease_until = None
    step.status = Step.Status.RETRYING
    step.next_attempt_at = max(until, timezone.now() + timedelta(seconds=1))
    _save(step)
    return "retry"


def request_retry(*, request: UnsubscribeRequest) -> bool:
    """Admin action: give failed steps a fresh set of attempts and resume. Returns
    False when there was nothing to retry."""
    with transaction.atomic(), audit_batch():
        request = (
            UnsubscribeRequest.objects.for_tenant(request.tenant_id).select_for_update().get(pk=request.pk)
        )
        if request.state == State.COMPLETED:
            return False
        failed = list(request.steps.filter(status=Step.Status.FAILED))
        if any(step.kind == Step.Kind.CONFIRM for step in failed):
            step_runners.confirmation_requeue(request)
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
            if request.erasing_at is not None:
                # Erasure was planned before it failed: due again as planned, not at the deadline.
                request.erasure_due_at = min(
                    request.erasing_at + timedelta(hours=request.tenant.erasure_delay_hours),
                    erasure_deadline(request),
                )
        request.next_run_at = timezone.now()
        request.save()
        transaction.on_commit(lambda: request_dispatch(request.pk))
    return True


def pipeline_sweep(*, stale_after: timedelta = timedelta(minutes=2)) -> dict[str, int]:
    """Run by beat every 30 s: dispatch due work nobody picked up (broker was down,
    a message was lost, an erasure delay ended), flag requests past their SLA and breach
    the deadlines past due (unsubscribe/deadlines/)."""
    now = timezone.now()
    due = list(
        UnsubscribeRequest.objects.unscoped(reason="the sweep dispatches every tenant's due requests")
        .filter(state__in=UnsubscribeRequest.OPEN_STATES, next_run_at__lte=now)
        # needing attention only for a deadline (no failed step): its work goes on
        .exclude(state=State.NEEDS_ATTENTION, steps__status=Step.Status.FAILED)
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
        Step.objects.unscoped(reason="the sweep re-dispatches every tenant's stuck steps")
        # needs_attention too: one failed target must not stall the others' retries
        .filter(request__state__in=UnsubscribeRequest.OPEN_STATES)
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
    for request in UnsubscribeRequest.objects.unscoped(
        reason="the sweep flags every tenant's SLA breaches"
    ).filter(
        state__in=UnsubscribeRequest.OPEN_STATES,
        sla_due_at__lt=now,
        sla_breached_at__isnull=True,
    )[:1000]:
        request.sla_breached_at = now
        request.save(update_fields=["sla_breached_at"])
        breached += 1
    return {
        "dispatched": len(due),
        "stuck_steps": len(stuck),
        "sla_breached": breached,
        "deadlines_breached": deadlines.deadlines_sweep(now=now),
        "pauses_ended": suppression_pauses_end(now=now),
    }
