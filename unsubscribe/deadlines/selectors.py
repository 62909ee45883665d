"""Reads of deadlines: a tenant's rules and calendars, a request's due times and
their countdowns, the calendar years that still need staff, and the on-time rates."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from tenants.models import Tenant, local_midnight
from unsubscribe.models import (
    CalendarDay,
    CalendarYear,
    DeadlineRegime,
    Measure,
    RequestDeadline,
    UnsubscribeRequest,
)

from .calendars import DayBook, library_covers
from .regimes import BUILT_IN, TENANT_SLA, Rule, tenant_rules

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise


def rules_of(tenant: Tenant) -> list[Rule]:
    rows = DeadlineRegime.objects.for_tenant(tenant).order_by("regime", "rule")
    return tenant_rules(rows, sla_hours=tenant.sla_hours)


def day_book(*, tenant_id: int, calendar: str) -> DayBook:
    if not calendar:
        return DayBook("")
    rows = CalendarDay.objects.for_tenant(tenant_id).filter(calendar=calendar).values_list("date", "working")
    years = (
        CalendarYear.objects.for_tenant(tenant_id).filter(calendar=calendar).values_list("year", flat=True)
    )
    return DayBook(calendar, dict(rows), frozenset(years))


def rule_label(regime: str, rule: str) -> _StrOrPromise:
    """What a rule is called on pages: the built-in ones translated, a tenant's by its key."""
    labels: dict[tuple[str, str], _StrOrPromise] = {
        ("cn", "termination"): _("China (PIPL, MIIT SMS rules): services ended"),
        ("cn", "erasure"): _("China (PIPL): personal data erased"),
        ("us", "revocation"): _("US (FCC TCPA): revocation honoured"),
        ("us", "confirmation"): _("US (FCC TCPA): confirmation text sent"),
        ("mailbox", "one_click"): _("Mailbox providers: one-click unsubscribe honoured"),
        TENANT_SLA: _("The provider's own SLA"),
    }
    return labels.get((regime, rule), f"{regime} / {rule}")


def regime_label(regime: str) -> _StrOrPromise:
    labels: dict[str, _StrOrPromise] = {
        "cn": _("China"),
        "us": _("United States"),
        "mailbox": _("Mailbox providers"),
        "tenant": _("The provider's own SLA"),
    }
    return labels.get(regime, regime)


def person_label(measure: str) -> str:
    """What a person waits for, in their words (the status page)."""
    labels: dict[str, str] = {
        Measure.SUPPRESSED: _("Marketing stopped"),
        Measure.TERMINATED: _("Services ended"),
        Measure.CONFIRMED: _("Confirmation sent"),
        Measure.ERASED: _("Everything finished, personal data erased"),
    }
    return labels.get(measure, measure)


def request_deadlines(request: UnsubscribeRequest) -> list[RequestDeadline]:
    # .all(): a prefetch (the API's list, the admin's list) is used when there is one.
    return sorted(request.deadlines.all(), key=lambda d: (d.due_at, d.regime, d.rule))


def overdue(request: UnsubscribeRequest) -> list[RequestDeadline]:
    """Deadlines crossed and not yet met: the request needs attention while there are any."""
    return list(
        RequestDeadline.objects.for_tenant(request.tenant_id).filter(
            request=request, breached_at__isnull=False, met_at__isnull=True
        )
    )


def overdue_reason(deadlines: Iterable[RequestDeadline], *, zone: tzinfo) -> str:
    """Why a late request needs attention (stored: times in the tenant's zone, with the offset)."""
    return "; ".join(
        _("Deadline passed: %(rule)s, due %(due)s")
        % {
            "rule": rule_label(d.regime, d.rule),
            "due": timezone.localtime(d.due_at, zone).strftime("%Y-%m-%d %H:%M %z"),
        }
        for d in deadlines
    )


@dataclass(frozen=True)
class Countdown:
    text: str
    tone: str  # "ok", "soon", "overdue", "met", "late"


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return _("%(count)d min") % {"count": minutes}
    hours = minutes // 60
    if hours < 48:
        return _("%(count)d h") % {"count": hours}
    return _("%(count)d days") % {"count": hours // 24}


def countdown(deadline: RequestDeadline, *, now: datetime | None = None) -> Countdown:
    now = now or timezone.now()
    if deadline.met_at is not None:
        if deadline.met_at <= deadline.due_at:
            return Countdown(_("met"), "met")
        return Countdown(_("met late"), "late")
    left = deadline.due_at - now
    if left.total_seconds() < 0:
        return Countdown(_("%(time)s overdue") % {"time": _duration(-left)}, "overdue")
    tone = "soon" if left < timedelta(hours=2) else "ok"
    return Countdown(_("%(time)s left") % {"time": _duration(left)}, tone)


# --- calendar years staff must enter ---------------------------------------------------


def calendars_in_use(tenant: Tenant) -> list[str]:
    """The working-day calendars of the tenant's rules (the built-in ones always count:
    a number from that country may write in any day)."""
    used = {rule.calendar for rule in rules_of(tenant) if rule.calendar}
    used |= {rule.calendar for rule in BUILT_IN if rule.calendar}
    return sorted(used)


def missing_years(tenant: Tenant, *, now: datetime | None = None) -> list[tuple[str, int]]:
    """(calendar, year) pairs a deadline filed now could reach that neither the library nor
    staff know: this year, and next year from 1 October on (15 working days reach into it)."""
    today = timezone.localtime(now or timezone.now(), tenant.zoneinfo).date()
    years = [today.year] + ([today.year + 1] if today >= date(today.year, 10, 1) else [])
    missing = []
    for calendar in calendars_in_use(tenant):
        staff_years = set(
            CalendarYear.objects.for_tenant(tenant)
            .filter(calendar=calendar, year__in=years)
            .values_list("year", flat=True)
        )
        missing += [(calendar, y) for y in years if not library_covers(calendar, y) and y not in staff_years]
    return missing


def calendar_warning(tenant: Tenant) -> str | None:
    """tenants.readiness: deadlines would be guessed (Monday to Friday) over a year with no data."""
    missing = missing_years(tenant)
    if not missing:
        return None
    return _(
        "The working-day calendar has no data for %(years)s: deadlines reaching into it assume Monday "
        "to Friday until staff enter that year's holidays and working days (Calendar days) and mark the year "
        "entered (Calendar years entered)."
    ) % {"years": ", ".join(f"{calendar} {year}" for calendar, year in missing)}


def sla_warning(tenant: Tenant) -> str | None:
    """tenants.readiness: an erasure delay as long as the SLA makes every request miss it
    (the SLA is met when the request completes, after erasure)."""
    if tenant.erasure_delay_hours < tenant.sla_hours:
        return None
    return _(
        "The erasure delay (%(delay)d h) is not shorter than the SLA (%(sla)d h): every request will miss "
        "its SLA and need attention. Shorten the delay or lengthen the SLA."
    ) % {"delay": tenant.erasure_delay_hours, "sla": tenant.sla_hours}


# --- on-time rate per regime per week --------------------------------------------------


@dataclass(frozen=True)
class WeekRate:
    week: date  # the Monday the week starts on, in the zone of the report
    due: int  # deadlines that fell due that week and are decided (met, or past due)
    on_time: int

    @property
    def percent(self) -> float | None:
        return round(self.on_time * 100 / self.due, 1) if self.due else None


def on_time_by_regime(
    requests: QuerySet[UnsubscribeRequest], *, zone: tzinfo, weeks: int = 8, now: datetime | None = None
) -> dict[str, list[WeekRate]]:
    """Per regime, per week (by due time, weeks starting Monday in `zone`): of the deadlines
    due that week and decided by now (met, or past due), how many were met on time."""
    now = now or timezone.now()
    today = timezone.localtime(now, zone).date()
    first = today - timedelta(days=today.weekday() + 7 * (weeks - 1))
    # Through the requests: they are scoped to what the reader may see already.
    rows = requests.filter(deadlines__due_at__gte=local_midnight(first, zone)).values_list(
        "deadlines__regime", "deadlines__due_at", "deadlines__met_at"
    )
    counts: dict[str, dict[date, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for regime, due_at, met_at in rows:
        if due_at is None or (met_at is None and due_at > now):
            continue  # not decided yet
        local = timezone.localtime(due_at, zone).date()
        week = local - timedelta(days=local.weekday())
        cell = counts[regime][week]
        cell[0] += 1
        cell[1] += int(met_at is not None and met_at <= due_at)
    result = {}
    for regime in sorted(counts):
        result[regime] = [
            WeekRate(week, *counts[regime].get(week, [0, 0]))
            for week in (first + timedelta(days=7 * i) for i in range(weeks))
        ]
    return result
