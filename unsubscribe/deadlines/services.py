"""Deadlines: planned at filing, met as the pipeline goes, breached by the sweep.

- `request_deadlines_plan` (called by unsubscribe_request_create, in its transaction):
  one RequestDeadline per rule that applies to the number's region and the channel,
  due times computed in the tenant's time zone on the rule's working-day calendar.
- `request_deadlines_update` (called by the pipeline each time it advances a request):
  stamps `met_at` from what the request has done (regimes.py says what each measure is).
- `deadlines_sweep` (called by the pipeline sweep): a deadline past due and not met is
  breached once: `breached_at`, the request needs attention, `request.deadline_breached`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo

from django.db import transaction
from django.utils import timezone

from tenants.models import Tenant, local_midnight
from unsubscribe import domain_events
from unsubscribe.models import (
    DEADLINE_MAX_AMOUNT,
    DeadlineUnit,
    Measure,
    RequestDeadline,
    Step,
    UnsubscribeRequest,
)
from unsubscribe.requests.selectors import request_event_payload

from . import selectors
from .calendars import DayBook, add_working_days
from .regimes import TENANT_SLA, Rule, rules_for

State = UnsubscribeRequest.State


def due_time(*, rule: Rule, filed_at: datetime, zone: tzinfo, book: DayBook) -> tuple[datetime, bool]:
    """When `rule` falls due for a request filed at `filed_at`, and whether the calendar
    had to guess a year. Hours and minutes run on the clock. Working days are counted from
    the day after filing as it is in `zone` (the tenant's), and end at that day's end there."""
    # A row saved before the admin refused longer ones still gives a due time, never a failed filing.
    amount = min(max(rule.amount, 1), DEADLINE_MAX_AMOUNT[DeadlineUnit(rule.unit)])
    if rule.unit == DeadlineUnit.HOURS:
        return filed_at + timedelta(hours=amount), False
    if rule.unit == DeadlineUnit.MINUTES:
        return filed_at + timedelta(minutes=amount), False
    filed_day = timezone.localtime(filed_at, zone).date()
    day, provisional = add_working_days(start=filed_day, days=amount, book=book)
    return local_midnight(day + timedelta(days=1), zone) - timedelta(seconds=1), provisional


def request_deadlines_plan(
    *, request: UnsubscribeRequest, e164: str, tenant: Tenant
) -> list[RequestDeadline]:
    """Inside the filing transaction: the request's due time under each rule that applies."""
    zone = tenant.zoneinfo
    books: dict[str, DayBook] = {}
    rows = []
    for rule in rules_for(selectors.rules_of(tenant), e164=e164, channel=request.channel):
        if rule.key == TENANT_SLA and request.sla_due_at is not None:
            due_at, provisional = request.sla_due_at, False  # the tenant's SLA, as it always was
        else:
            if rule.calendar not in books:
                books[rule.calendar] = selectors.day_book(tenant_id=tenant.pk, calendar=rule.calendar)
            due_at, provisional = due_time(
                rule=rule, filed_at=request.received_at, zone=zone, book=books[rule.calendar]
            )
        rows.append(
            RequestDeadline(
                tenant_id=tenant.pk,
                request=request,
                regime=rule.regime,
                rule=rule.rule,
                measure=rule.measure,
                due_at=due_at,
                provisional=provisional,
            )
        )
    return RequestDeadline.objects.bulk_create(rows)


def _met_at(request: UnsubscribeRequest, measure: str, steps: Sequence[Step]) -> datetime | None:
    if measure == Measure.SUPPRESSED:
        return request.suppressed_at
    if measure == Measure.TERMINATED:
        return request.confirming_at
    if measure == Measure.ERASED:
        return request.completed_at
    if measure == Measure.CONFIRMED:
        sent = [
            s.finished_at
            for s in steps
            if s.kind == Step.Kind.CONFIRM and s.status == Step.Status.SUCCEEDED and s.finished_at
        ]
        return min(sent) if sent else None
    return None


def request_deadlines_update(
    *, request: UnsubscribeRequest, steps: Sequence[Step] | None = None, now: datetime | None = None
) -> list[RequestDeadline]:
    """Stamp `met_at` on each deadline whose measure the request has reached (inside the
    caller's transaction). A deadline met after its due time and not yet breached is
    breached now, once. Returns the deadlines still unmet."""
    now = now or timezone.now()
    if steps is None:
        steps = list(request.steps.all())
    open_ = []
    for deadline in RequestDeadline.objects.for_tenant(request.tenant_id).filter(
        request=request, met_at__isnull=True
    ):
        met = _met_at(request, deadline.measure, steps)
        if met is None:
            open_.append(deadline)
            continue
        deadline.met_at = met
        fields = ["met_at"]
        if met > deadline.due_at and deadline.breached_at is None:
            deadline.breached_at = now
            fields.append("breached_at")
            _emit_breach(request, deadline)
        deadline.save(update_fields=fields)
    return open_


def _emit_breach(request: UnsubscribeRequest, deadline: RequestDeadline) -> None:
    payload = request_event_payload(request)
    payload["deadline"] = {
        "regime": deadline.regime,
        "rule": deadline.rule,
        "due_at": deadline.due_at.isoformat(),
        "met_at": deadline.met_at.isoformat() if deadline.met_at else None,
        "breached_at": deadline.breached_at.isoformat() if deadline.breached_at else None,
    }
    domain_events.emit(request.tenant_id, "request.deadline_breached", payload)


def request_attention_raise(*, request: UnsubscribeRequest, now: datetime) -> bool:
    """Inside a transaction, the request locked: an active request with an overdue deadline
    needs attention (until the deadline is met; the pipeline goes on meanwhile). Returns
    whether it newly does."""
    late = selectors.overdue(request)
    if not late or request.state not in UnsubscribeRequest.ACTIVE_STATES:
        return False
    request.state = State.NEEDS_ATTENTION
    request.attention_reason = selectors.overdue_reason(late, zone=request.tenant.zoneinfo)[:2000]
    if request.needs_attention_at is None:
        request.needs_attention_at = now
    return True


def deadlines_sweep(*, now: datetime | None = None, limit: int = 500) -> int:
    """Breach every deadline past due and not met, once each: stamp it, emit
    `request.deadline_breached`, and raise needs-attention on its request. Returns how many."""
    now = now or timezone.now()
    request_ids = list(
        RequestDeadline.objects.unscoped(reason="the sweep breaches every tenant's overdue deadlines")
        .filter(met_at__isnull=True, breached_at__isnull=True, due_at__lt=now)
        .order_by("request_id")
        .values_list("request_id", flat=True)
        .distinct()[:limit]
    )
    breached = 0
    for request_id in request_ids:
        with transaction.atomic():
            request = (
                UnsubscribeRequest.objects.unscoped(reason="the sweep locks a request whose deadline passed")
                .select_for_update()
                .filter(pk=request_id)
                .first()
            )
            if request is None:
                continue
            steps = list(request.steps.all())
            # Met in the meantime (the pipeline stamps met_at as it advances): not a breach.
            for deadline in request_deadlines_update(request=request, steps=steps, now=now):
                if deadline.breached_at is not None or deadline.due_at >= now:
                    continue
                deadline.breached_at = now
                deadline.save(update_fields=["breached_at"])
                _emit_breach(request, deadline)
                breached += 1
            if request_attention_raise(request=request, now=now):
                request.save()
                domain_events.emit(
                    request.tenant_id, "request.needs_attention", request_event_payload(request)
                )
    return breached


def deadlines_recompute(*, tenant: Tenant, calendar: str) -> int:
    """After staff entered or changed a day of `calendar`: the tenant's unmet working-day
    deadlines on it computed again (a provisional one may now be known). Returns how many changed."""
    rules = {
        rule.key: rule
        for rule in selectors.rules_of(tenant)
        if rule.calendar == calendar and rule.unit == DeadlineUnit.WORKING_DAYS
    }
    book = selectors.day_book(tenant_id=tenant.pk, calendar=calendar)
    changed = 0
    for deadline in (
        RequestDeadline.objects.for_tenant(tenant).filter(met_at__isnull=True).select_related("request")
    ):
        rule = rules.get((deadline.regime, deadline.rule))
        if rule is None:
            continue
        due_at, provisional = due_time(
            rule=rule, filed_at=deadline.request.received_at, zone=tenant.zoneinfo, book=book
        )
        if (due_at, provisional) != (deadline.due_at, deadline.provisional):
            deadline.due_at, deadline.provisional = due_at, provisional
            deadline.save(update_fields=["due_at", "provisional"])
            changed += 1
    return changed
