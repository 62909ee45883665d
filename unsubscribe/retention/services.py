"""Retention: how long the paperwork of a finished request is kept, and the latest a
request that never finishes keeps its raw number."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone, translation

from tenants.models import Tenant
from unsubscribe import domain_events
from unsubscribe.audit.canonical import row_digest
from unsubscribe.audit.services import audit_batch, audit_checkpoint, audit_rows_removed, audit_suspended
from unsubscribe.models import Step, SuppressionEvent, UnsubscribeRequest
from unsubscribe.pipeline import datasources
from unsubscribe.pipeline import services as pipeline  # by module: it imports tasks, which import this
from unsubscribe.requests.selectors import request_event_payload

from .selectors import erasure_deadline, stalled_erasure_ceiling

logger = logging.getLogger(__name__)
State = UnsubscribeRequest.State


def records_purge_expired(*, now: datetime | None = None) -> int:
    """Delete finished requests older than their tenant's record retention, with
    their steps and history rows. The suppression stays (keyed by hash): the
    opt-out is honoured for good even after its paperwork is gone.

    The audit record stays checkable: the entries of the removed rows stay (they hold no
    personal data), and one entry per purge lists every removed row with its digest (and the
    suppression events whose request became null, as they are now); then the tenant's chain
    head is signed, so the purge itself is covered by a checkpoint."""
    now = now or timezone.now()
    purged = 0
    for tenant in Tenant.objects.all():
        cutoff = now - timedelta(days=tenant.record_retention_days)
        ids = list(
            UnsubscribeRequest.objects.for_tenant(tenant)
            .filter(state=State.COMPLETED, completed_at__lt=cutoff)
            .values_list("pk", flat=True)[:5000]
        )
        if not ids:
            continue
        with transaction.atomic():
            references = list(
                UnsubscribeRequest.objects.for_tenant(tenant)
                .filter(pk__in=ids)
                .values_list("reference", flat=True)
            )
            removed = {
                Step._meta.label_lower: _digests(Step.objects.for_tenant(tenant).filter(request_id__in=ids))
            }
            events = list(
                SuppressionEvent.objects.for_tenant(tenant)
                .filter(request_id__in=ids)
                .values_list("pk", flat=True)
            )
            # The purge lists what it removes in one entry: its own "deleted" history rows get none.
            with audit_suspended():
                UnsubscribeRequest.objects.for_tenant(tenant).filter(
                    pk__in=ids
                ).delete()  # steps cascade; suppressions keep their row
            # after the delete: it writes "deleted" history rows, which go too
            for history in (
                Step.history.filter(request_id__in=ids),
                UnsubscribeRequest.history.filter(id__in=ids),
            ):
                removed[history.model._meta.label_lower] = _digests(history)
                history.delete()
            audit_rows_removed(
                tenant_id=tenant.pk,
                kind="records.purged",
                removed=removed,
                changed=list(SuppressionEvent.objects.for_tenant(tenant).filter(pk__in=events)),
                references=references,
            )
        audit_checkpoint(tenant=tenant, reason="purge", force=True)
        purged += len(ids)
        logger.info(
            "purged %d request record(s) of %s past %d days",
            len(ids),
            tenant.slug,
            tenant.record_retention_days,
        )
    return purged


def _digests(rows: Any) -> dict[str, str]:
    return {str(row.pk): row_digest(row) for row in rows.iterator(chunk_size=2000)}


# --- requests that never complete ---------------------------------------------------------


def stalled_requests_erase(*, now: datetime | None = None) -> int:
    """Erase the raw number of every request still open past its erasure deadline
    (selectors.erasure_deadline: the tenant's erasure delay from filing, then
    LANZUAN_STALLED_ERASURE_CEILING_DAYS), whatever state it stalled in. Run hourly by
    the purge task. Returns how many requests were erased."""
    now = now or timezone.now()
    erased = 0
    for tenant in Tenant.objects.all():
        filed_before = now - timedelta(hours=tenant.erasure_delay_hours) - stalled_erasure_ceiling()
        ids = list(
            UnsubscribeRequest.objects.for_tenant(tenant)
            .filter(state__in=UnsubscribeRequest.OPEN_STATES, received_at__lt=filed_before)
            .exclude(phone="")
            .values_list("pk", flat=True)[:1000]
        )
        for request_id in ids:
            if stalled_request_erase(tenant=tenant, request_id=request_id, now=now):
                erased += 1
    return erased


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def stalled_request_erase(*, tenant: Tenant, request_id: int, now: datetime | None = None) -> bool:
    """Past its deadline, an open request loses its raw number: every one of Lanzuan's own
    sources that has not done its step runs now (subscriptions are ended as asked; then the
    subscriptions, profile, messages, replies, one-time codes and calls that hold the
    number are erased; each by the number's hash, with its receipt on its step),
    the request's number is blanked (hash and mask stay), each step that had not
    succeeded is marked failed saying why, and stored texts are scrubbed once more with
    their history rows. The request stays in (or enters) needs attention, so staff see
    it and finish by hand what needed the number. Returns False when there was nothing
    to do (it completed meanwhile, or is not due)."""
    now = now or timezone.now()
    with transaction.atomic(), audit_batch():
        request = (
            UnsubscribeRequest.objects.for_tenant(tenant)
            # The request's row only: FOR UPDATE of the joined tenant row would queue every other
            # transaction of the tenant behind this one (its foreign-key checks take the tenant row
            # FOR KEY SHARE at commit), and deadlock with the audit record's head lock.
            .select_for_update(of=("self",))
            .select_related("tenant")
            .filter(pk=request_id)
            .first()
        )
        if request is None or request.state not in UnsubscribeRequest.OPEN_STATES or not request.phone:
            return False
        deadline = erasure_deadline(request)
        if deadline > now:
            return False
        stamp = _stamp(deadline)
        steps = {(s.kind, s.source): s for s in request.steps.all() if s.source}
        ran: set[int] = set()
        # Lanzuan's own sources need no raw number: subscriptions are ended as asked, then erased.
        for kind in (Step.Kind.TERMINATE, Step.Kind.ERASE):
            for source in datasources.sources(kind):
                step = steps.get((kind, source.key))
                if step is None or step.status != Step.Status.SUCCEEDED:
                    ran.add(_run_at(request, source, kind, step, stamp=stamp, now=now))
        for step in request.steps.exclude(status=Step.Status.SUCCEEDED).exclude(pk__in=ran).order_by("id"):
            # What needed the number (a provider's system, the confirmation) is left to staff.
            earlier = f"; {step.last_error}" if step.last_error else ""
            step.status = Step.Status.FAILED
            step.last_error = (
                f"not done by the erasure deadline ({stamp}): the number was erased; finish this step by hand"
                + earlier
            )[:2000]
            step.finished_at = now
            step.next_attempt_at = None
            step.lease_until = None
            step.save()
        previous = request.attention_reason
        request.phone = ""
        request.erasure_due_at = deadline
        request.next_run_at = None
        request.attention_reason = (
            f"the number was erased at the erasure deadline ({stamp}); the request did not complete"
            + (f"; {previous}" if previous else "")
        )[:2000]
        newly = request.state != State.NEEDS_ATTENTION
        request.state = State.NEEDS_ATTENTION
        if request.needs_attention_at is None:
            request.needs_attention_at = now
        request.save()
        pipeline.step_texts_redact(request)
        if newly:
            domain_events.emit(request.tenant_id, "request.needs_attention", request_event_payload(request))
    logger.warning(
        "request %s did not complete by its erasure deadline (%s): its number was erased",
        request.reference,
        stamp,
    )
    return True


def _run_at(
    request: UnsubscribeRequest,
    source: datasources.DataSource,
    kind: str,
    step: Step | None,
    *,
    stamp: str,
    now: datetime,
) -> int:
    """One of Lanzuan's own sources, run now (it works by the number's hash), with its
    receipt on its step (made if missing). Returns the step's id."""
    if step is None:
        with translation.override("en"):  # the staff name of record, as the pipeline plans it
            name = str(source.label)[:200]
        step = Step(
            tenant_id=request.tenant_id, request=request, kind=kind, source=source.key, target_name=name
        )
    func = source.terminate if kind == Step.Kind.TERMINATE else source.erase
    step.started_at = step.started_at or now
    step.finished_at = now
    step.next_attempt_at = None
    step.lease_until = None
    try:
        if func is None:  # sources(kind) lists only sources that can
            raise NotImplementedError(f"{source.key} cannot {kind}")
        with transaction.atomic():
            receipt = func(request)
    except Exception as exc:  # recorded on the step; the request's number goes all the same
        logger.exception("request %s: %s at %s failed at the deadline", request.reference, kind, source.key)
        step.status = Step.Status.FAILED
        step.last_error = f"could not be done at the erasure deadline ({stamp}): {type(exc).__name__}"
        step.save()
        return step.pk
    step.status = Step.Status.SUCCEEDED
    step.receipt_lines = receipt.stored_lines()
    note = f"done at the erasure deadline ({stamp}), the request not completed"
    step.receipt = datasources.receipt_text(
        step.receipt_lines, f"{receipt.note} {note}".strip(), language=request.tenant.default_language
    )[:2000]
    step.last_error = ""
    step.save()
    return step.pk
