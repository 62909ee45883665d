"""Compliance records for staff: dashboard with charts, CSV export, record retention."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone

from unsubscribe.models import Step, Suppression, UnsubscribeRequest
from unsubscribe.requests.services import unsubscribe_request_create
from unsubscribe.retention.services import records_purge_expired
from unsubscribe.suppressions.selectors import suppression_status

from .pipeline_helpers import NUMBER, internal_targets, subscriber
from .test_core import run_pipeline

if TYPE_CHECKING:
    from pathlib import Path

    from django.contrib.auth.models import User
    from django.http.response import HttpResponseBase
    from django.test import Client

    from tenants.models import Tenant
    from unsubscribe.reports import Dashboard

pytestmark = pytest.mark.django_db


def file(tenant: Tenant, phone: str = NUMBER, channel: str = "app") -> UnsubscribeRequest:
    return unsubscribe_request_create(
        tenant=tenant, phone=phone, channel=channel, verification_method="partner_assertion"
    ).request


def streamed(response: HttpResponseBase) -> bytes:
    """The body of a response that must be streamed (exports are never built in memory)."""
    assert isinstance(response, StreamingHttpResponse)
    return response.getvalue()  # b"".join(streaming_content), typed as bytes


def test_dashboard_charts_requests_per_day_for_the_users_tenant_only(
    tenant_a: Tenant, tenant_b: Tenant, alice: User, client: Client, outbox: Path
) -> None:
    subscriber(tenant_a)
    internal_targets(tenant_a)
    run_pipeline(file(tenant_a))
    file(tenant_a, phone="13912345678", channel="hotline")
    for i in range(5):
        file(tenant_b, phone=f"1500000{i:04d}")
    client.force_login(alice)
    response = client.get(reverse("admin:unsubscribe_dashboard"), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    board = response.context["board"]
    assert sum(day.total for day in board.days) == 2  # not tenant B's five
    assert board.open_count == 1 and board.channels == ["app", "hotline"]
    body = response.content.decode()
    assert body.count("<rect") == 2 and 'data-testid="requests-chart"' in body
    assert "<polyline" in body  # the completed one has a time to completion


def test_csv_export_is_the_compliance_record_without_numbers(
    tenant_a: Tenant, tenant_b: Tenant, alice: User, client: Client, outbox: Path
) -> None:
    subscriber(tenant_a)
    internal_targets(tenant_a)
    done = run_pipeline(file(tenant_a))
    file(tenant_b, phone="15000000001")
    client.force_login(alice)
    response = client.get(reverse("admin:unsubscribe_export"))
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(streamed(response).decode())))
    assert [r["reference"] for r in rows] == [done.reference]
    row = rows[0]
    assert row["number_masked"] == "138****8000" and row["state"] == "completed"
    assert "terminate:" in row["steps"] and "confirm:" in row["steps"]
    assert NUMBER not in "".join(r for r in row.values())

    # the admin action exports the selected requests
    action = client.post(
        reverse("admin:unsubscribe_unsubscriberequest_changelist"),
        {"action": "export_csv", "_selected_action": [done.pk]},
    )
    assert done.reference in streamed(action).decode()


def test_records_past_retention_are_purged_but_the_opt_out_stays(tenant_a: Tenant, outbox: Path) -> None:
    tenant_a.record_retention_days = 30
    tenant_a.save()
    subscriber(tenant_a)
    internal_targets(tenant_a)
    old = run_pipeline(file(tenant_a))
    recent = run_pipeline(file(tenant_a, phone="13912345678"))
    UnsubscribeRequest.objects.unscoped(reason="test").filter(pk=old.pk).update(
        completed_at=timezone.now() - timedelta(days=31)
    )

    assert records_purge_expired() == 1

    assert not UnsubscribeRequest.objects.unscoped(reason="test").filter(pk=old.pk).exists()
    assert not UnsubscribeRequest.history.filter(id=old.pk).exists()
    assert not Step.objects.unscoped(reason="test").filter(request_id=old.pk).exists()
    assert UnsubscribeRequest.objects.unscoped(reason="test").filter(pk=recent.pk).exists()
    # the number is still suppressed: the opt-out outlives its paperwork
    assert suppression_status(tenant=tenant_a, phone=NUMBER).suppressed
    assert Suppression.objects.unscoped(reason="test").filter(request__isnull=True).count() == 1


# --- days are the tenant's days (issue 11, item 1) -------------------------------------


def requests_around_midnight(tenant: Tenant, zone: str) -> dict[str, UnsubscribeRequest]:
    """Requests a minute either side of the tenant's last midnight, and one older."""
    tenant.time_zone = zone
    tenant.save()
    today = timezone.localtime(timezone.now(), ZoneInfo(zone)).date()
    midnight = datetime.combine(today, time.min, tzinfo=ZoneInfo(zone))
    at = {
        "late-yesterday": midnight - timedelta(minutes=1),
        "today": midnight + timedelta(minutes=1),
        "two-days-ago": midnight - timedelta(hours=30),
    }
    made: dict[str, UnsubscribeRequest] = {}
    for i, (name, received) in enumerate(at.items()):
        request = file(tenant, phone=f"1390000{i:04d}")
        # completed 20 minutes later: the minutes chart counts it on its completion day
        UnsubscribeRequest.objects.unscoped(reason="test").filter(pk=request.pk).update(
            received_at=received, completed_at=received + timedelta(minutes=20)
        )
        request.refresh_from_db()
        made[name] = request
    return made


def by_day(board: Dashboard) -> dict[date, int]:
    return {day.day: day.total for day in board.days if day.total}


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Shanghai"])
def test_dashboard_days_are_the_tenants_days(
    frozen_clock: datetime, zone: str, tenant_a: Tenant, alice: User, client: Client
) -> None:
    # given requests either side of midnight where tenant A is
    requests_around_midnight(tenant_a, zone)
    today = timezone.localtime(timezone.now(), ZoneInfo(zone)).date()

    # when its staff open the dashboard
    client.force_login(alice)
    response = client.get(reverse("admin:unsubscribe_dashboard"), {"days": 7}, HTTP_ACCEPT_LANGUAGE="en")

    # then the days are tenant A's: today is its today, 23:59 its yesterday
    board = response.context["board"]
    assert board.zone == zone and board.days[-1].day == today
    assert by_day(board) == {today: 1, today - timedelta(days=1): 1, today - timedelta(days=2): 1}
    minutes = {day.day: day.median_minutes for day in board.days if day.median_minutes is not None}
    assert minutes == {today: 20.0, today - timedelta(days=2): 20.0}  # 23:59 + 20 min is today
    assert f"Days start at midnight in {zone}." in response.content.decode()


def test_a_superusers_dashboard_uses_the_picked_tenants_zone_else_the_platforms(
    frozen_clock: datetime, tenant_a: Tenant, tenant_b: Tenant, root: User, client: Client
) -> None:
    # given tenant A in New York and tenant B in Shanghai (the platform's zone)
    requests_around_midnight(tenant_a, "America/New_York")
    file(tenant_b, phone="15000000001")
    client.force_login(root)

    # spanning both, the platform's zone (and it says so)
    both = client.get(reverse("admin:unsubscribe_dashboard"), {"days": 7}, HTTP_ACCEPT_LANGUAGE="en")
    assert both.context["board"].zone == "Asia/Shanghai"
    assert sum(by_day(both.context["board"]).values()) == 4

    # picking tenant A (as in the list filter): its requests, its days
    picked = client.get(
        reverse("admin:unsubscribe_dashboard"),
        {"days": 7, "tenant__id__exact": tenant_a.pk},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    board = picked.context["board"]
    today = timezone.localtime(timezone.now(), ZoneInfo("America/New_York")).date()
    assert board.zone == "America/New_York" and board.days[-1].day == today
    assert by_day(board) == {today: 1, today - timedelta(days=1): 1, today - timedelta(days=2): 1}
    assert f"tenant__id__exact={tenant_a.pk}" in picked.content.decode()  # the export link keeps it


def export_rows(response: HttpResponseBase) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(streamed(response).decode())))


def test_csv_times_are_in_each_tenants_zone_and_its_days(
    frozen_clock: datetime, tenant_a: Tenant, tenant_b: Tenant, root: User, alice: User, client: Client
) -> None:
    # given tenant A in New York, tenant B in Shanghai
    made = requests_around_midnight(tenant_a, "America/New_York")
    other = file(tenant_b, phone="15000000001")

    # when A's staff export today (days=1): A's today, from midnight in New York
    client.force_login(alice)
    rows = export_rows(client.get(reverse("admin:unsubscribe_export"), {"days": 1}))
    assert [r["reference"] for r in rows] == [made["today"].reference]
    two_days = export_rows(client.get(reverse("admin:unsubscribe_export"), {"days": 2}))
    assert {r["reference"] for r in two_days} == {made["today"].reference, made["late-yesterday"].reference}

    # then each time is the tenant's wall time with its offset, the same instant
    new_york = ZoneInfo("America/New_York")
    received = datetime.fromisoformat(rows[0]["received_at"])
    assert received == made["today"].received_at
    assert received.utcoffset() == made["today"].received_at.astimezone(new_york).utcoffset()
    assert received.time().replace(second=0, microsecond=0) == time(0, 1)

    # a superuser's export spans tenants: each row in its own tenant's zone
    client.force_login(root)
    everything = {r["reference"]: r for r in export_rows(client.get(reverse("admin:unsubscribe_export")))}
    assert everything[other.reference]["received_at"].endswith("+08:00")
    assert datetime.fromisoformat(everything[made["today"].reference]["received_at"]).utcoffset() == (
        received.utcoffset()
    )


def test_the_request_lists_date_filters_count_the_tenants_days(
    frozen_clock: datetime, tenant_a: Tenant, alice: User, client: Client
) -> None:
    # given tenant A in New York, requests either side of its midnight
    made = requests_around_midnight(tenant_a, "America/New_York")
    today = timezone.localtime(timezone.now(), ZoneInfo("America/New_York")).date()
    client.force_login(alice)
    changelist = reverse("admin:unsubscribe_unsubscriberequest_changelist")

    # the date hierarchy's day is New York's day
    day = client.get(
        changelist,
        {"received_at__year": today.year, "received_at__month": today.month, "received_at__day": today.day},
    )
    assert [r.reference for r in day.context["cl"].result_list] == [made["today"].reference]

    # and the date filter's "Today" link means today there
    page = client.get(changelist, HTTP_ACCEPT_LANGUAGE="en")
    spec = next(s for s in page.context["cl"].filter_specs if getattr(s, "field_path", "") == "received_at")
    link = next(c for c in spec.choices(page.context["cl"]) if str(c["display"]) == "Today")
    filtered = client.get(changelist + link["query_string"], HTTP_ACCEPT_LANGUAGE="en")
    assert [r.reference for r in filtered.context["cl"].result_list] == [made["today"].reference]
