"""Compliance reports for a provider's staff: the numbers they compare over time
(requests per day by channel, time to complete, SLA breaches) and CSV exports of
the records that prove each opt-out was honoured.

Days are the tenant's days (`Tenant.time_zone`): a provider in New York counts a
request received at 23:30 there on that day, not on the next one as Shanghai would.
A report spanning tenants in different zones (a superuser's) uses the platform's
zone, settings.TIME_ZONE, and says so on the page; CSV rows carry their own
tenant's offset, so every time in an export is unambiguous."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from statistics import median
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from tenants.models import local_midnight

from .deadlines.selectors import WeekRate, on_time_by_regime, regime_label
from .models import RequestChannel, UnsubscribeRequest
from .sendlogs.selectors import violations_by_week

EXPORT_COLUMNS = [
    "reference",
    "tenant",
    "number_masked",
    "number_hash",
    "channel",
    "verification",
    "scope",
    "state",
    *UnsubscribeRequest.TIMELINE,
    "steps",
    "deadlines",  # regime/rule:due:met, one per regime that applies (unsubscribe/deadlines/)
]


class _Echo:
    def write(self, value: str) -> str:
        return value


def days_start(*, days: int, zone: tzinfo, now: datetime | None = None) -> datetime:
    """Midnight in `zone` at the start of the last `days` days, today included."""
    today = timezone.localtime(now or timezone.now(), zone).date()
    return local_midnight(today - timedelta(days=days - 1), zone)


def _time(value: datetime | None, zone: tzinfo) -> str:
    return timezone.localtime(value, zone).isoformat() if value else ""


def requests_csv_rows(requests: QuerySet[UnsubscribeRequest]) -> Iterator[str]:
    """CSV lines, streamed (an export of a year of requests must not sit in memory)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    queryset = (
        requests.select_related("tenant")
        .prefetch_related("services", "steps", "deadlines")
        .order_by("received_at")
    )
    for request in queryset.iterator(chunk_size=500):
        zone = request.tenant.zoneinfo  # each row in its own tenant's local time, with the offset
        steps = "; ".join(
            f"{s.kind}:{s.target_name}:{s.status}:{_time(s.finished_at, zone)}:{s.receipt[:80]}"
            for s in request.steps.all()
        )
        yield writer.writerow(
            [
                request.reference,
                request.tenant.slug,
                request.phone_masked,
                request.phone_hash,
                request.channel,
                request.verification_method,
                "all" if request.scope_all else " ".join(s.code for s in request.services.all()),
                request.state,
                *(_time(getattr(request, name), zone) for name in UnsubscribeRequest.TIMELINE),
                steps,
                "; ".join(
                    f"{d.regime}/{d.rule}:{_time(d.due_at, zone)}:{_time(d.met_at, zone)}"
                    for d in request.deadlines.all()
                ),
            ]
        )


@dataclass(frozen=True)
class Day:
    day: date
    by_channel: dict[str, int]
    total: int
    median_minutes: float | None  # received → completed, for requests completed that day
    breached: int


@dataclass(frozen=True)
class Dashboard:
    zone: str  # the time zone its days are in
    days: list[Day]
    channels: list[str]
    max_total: int
    max_minutes: float
    open_count: int
    attention_count: int
    breached_open: int


def dashboard(
    requests: QuerySet[UnsubscribeRequest],
    *,
    zone: tzinfo,
    days: int = 30,
    now: datetime | None = None,
) -> Dashboard:
    """Per-day figures for the last `days` days, days as they are in `zone`."""
    start = days_start(days=days, zone=zone, now=now)
    first = start.date()
    rows = requests.filter(received_at__gte=start).values_list(
        "received_at", "completed_at", "channel", "sla_breached_at"
    )
    counts: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    minutes: dict[date, list[float]] = defaultdict(list)
    breached: dict[date, int] = defaultdict(int)
    for received, completed, channel, breached_at in rows:
        day = timezone.localtime(received, zone).date()
        counts[day][channel] += 1
        if completed:
            minutes[timezone.localtime(completed, zone).date()].append(
                (completed - received).total_seconds() / 60
            )
        if breached_at:
            breached[day] += 1
    series = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        by_channel = dict(counts.get(day, {}))
        series.append(
            Day(
                day=day,
                by_channel=by_channel,
                total=sum(by_channel.values()),
                median_minutes=round(median(minutes[day]), 1) if minutes.get(day) else None,
                breached=breached.get(day, 0),
            )
        )
    used = [c for c in RequestChannel.values if any(d.by_channel.get(c) for d in series)]
    open_requests = requests.filter(state__in=UnsubscribeRequest.ACTIVE_STATES)
    return Dashboard(
        zone=str(zone),
        days=series,
        channels=used,
        max_total=max([d.total for d in series] + [1]),
        max_minutes=max([d.median_minutes or 0 for d in series] + [1]),
        open_count=open_requests.count(),
        attention_count=requests.filter(state=UnsubscribeRequest.State.NEEDS_ATTENTION).count(),
        breached_open=requests.filter(
            state__in=UnsubscribeRequest.OPEN_STATES,
            sla_breached_at__isnull=False,
        ).count(),
    )


CHANNEL_COLOURS = {
    "sms": "#0b5fff",
    "web": "#1a7f37",
    "app": "#8250df",
    "hotline": "#bf8700",
    "email": "#cf222e",
    "partner": "#57606a",
    "hub": "#0a7b83",
}


def bar_chart(board: Dashboard, width: int = 900, height: int = 220) -> list[dict[str, Any]]:
    """Stacked bars as SVG rectangles (no chart library, no CDN)."""
    bars: list[dict[str, Any]] = []
    slot = width / max(len(board.days), 1)
    for index, day in enumerate(board.days):
        y = float(height)
        for channel in board.channels:
            count = day.by_channel.get(channel, 0)
            if not count:
                continue
            h = count / board.max_total * (height - 20)
            y -= h
            bars.append(
                {
                    "x": round(index * slot + 2, 1),
                    "y": round(y, 1),
                    "w": round(slot - 4, 1),
                    "h": round(h, 1),
                    "colour": CHANNEL_COLOURS.get(channel, "#999"),
                    "title": f"{day.day.isoformat()} {channel}: {count}",
                }
            )
    return bars


def line_points(board: Dashboard, width: int = 900, height: int = 160) -> Iterable[str]:
    slot = width / max(len(board.days), 1)
    for index, day in enumerate(board.days):
        if day.median_minutes is not None:
            y = height - day.median_minutes / board.max_minutes * (height - 20)
            yield f"{round(index * slot + slot / 2, 1)},{round(y, 1)}"


REGIME_COLOURS = {"cn": "#cf222e", "us": "#0b5fff", "mailbox": "#8250df", "tenant": "#1a7f37"}


@dataclass(frozen=True)
class RegimeSeries:
    regime: str
    label: str
    colour: str
    points: str  # SVG polyline points, 0 % near the bottom, 100 % near the top
    weeks: list[WeekRate]
    dots: list[dict[str, Any]]  # a marker per week with a rate (one week alone draws no line)


def on_time_series(
    requests: QuerySet[UnsubscribeRequest],
    *,
    zone: tzinfo,
    weeks: int = 8,
    now: datetime | None = None,
    width: int = 900,
    height: int = 160,
) -> list[RegimeSeries]:
    """The on-time rate per regime per week (deadlines.selectors.on_time_by_regime), as lines."""
    rates = on_time_by_regime(requests, zone=zone, weeks=weeks, now=now)
    slot = width / max(weeks, 1)
    series = []
    for index, (regime, rows) in enumerate(rates.items()):
        dots = [
            {
                "x": round(i * slot + slot / 2, 1),
                "y": round(height - 10 - (row.percent or 0.0) / 100 * (height - 30), 1),  # 0 % above the axis
                "title": f"{row.week.isoformat()}: {row.percent}% ({row.on_time}/{row.due})",
            }
            for i, row in enumerate(rows)
            if row.percent is not None
        ]
        points = " ".join(f"{dot['x']},{dot['y']}" for dot in dots)
        colour = REGIME_COLOURS.get(regime, ("#bf8700", "#0a7b83", "#57606a")[index % 3])
        series.append(RegimeSeries(regime, str(regime_label(regime)), colour, points, rows, dots))
    return series


@dataclass(frozen=True)
class ViolationBar:
    week: date
    violations: int
    requests: int
    middle: float  # the bar's centre line
    y: float  # its top
    height: float
    width: float


def violation_bars(
    requests: QuerySet[UnsubscribeRequest],
    *,
    zone: tzinfo,
    weeks: int = 8,
    now: datetime | None = None,
    width: int = 900,
    height: int = 160,
) -> list[ViolationBar]:
    """Messages sent after an opt-out, per week (sendlogs.selectors.violations_by_week), as bars."""
    rows = violations_by_week(requests, zone=zone, weeks=weeks, now=now)
    top = max((row.violations for row in rows), default=0) or 1
    slot = width / max(weeks, 1)
    bars = []
    for i, row in enumerate(rows):
        bar = (height - 30) * row.violations / top
        bars.append(
            ViolationBar(
                row.week,
                row.violations,
                row.requests,
                round(i * slot + slot / 2, 1),
                round(height - 10 - bar, 1),
                round(bar, 1),
                round(slot * 0.6, 1),
            )
        )
    return bars
