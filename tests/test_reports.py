"""Compliance records for staff: dashboard with charts, CSV export, record retention."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from unsubscribe import selectors, services
from unsubscribe.models import Step, Suppression, UnsubscribeRequest

from .pipeline_helpers import NUMBER, internal_targets, subscriber
from .test_core import run_pipeline

pytestmark = pytest.mark.django_db


def file(tenant, phone=NUMBER, channel="app"):
    return services.unsubscribe_request_create(
        tenant=tenant, phone=phone, channel=channel, verification_method="partner_assertion"
    ).request


def test_dashboard_charts_requests_per_day_for_the_users_tenant_only(
    tenant_a, tenant_b, alice, client, outbox
):
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


def test_csv_export_is_the_compliance_record_without_numbers(tenant_a, tenant_b, alice, client, outbox):
    subscriber(tenant_a)
    internal_targets(tenant_a)
    done = run_pipeline(file(tenant_a))
    file(tenant_b, phone="15000000001")
    client.force_login(alice)
    response = client.get(reverse("admin:unsubscribe_export"))
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
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
    assert done.reference in b"".join(action.streaming_content).decode()


def test_records_past_retention_are_purged_but_the_opt_out_stays(tenant_a, outbox):
    tenant_a.record_retention_days = 30
    tenant_a.save()
    subscriber(tenant_a)
    internal_targets(tenant_a)
    old = run_pipeline(file(tenant_a))
    recent = run_pipeline(file(tenant_a, phone="13912345678"))
    UnsubscribeRequest.objects.filter(pk=old.pk).update(completed_at=timezone.now() - timedelta(days=31))

    assert services.records_purge_expired() == 1

    assert not UnsubscribeRequest.objects.filter(pk=old.pk).exists()
    assert not UnsubscribeRequest.history.filter(id=old.pk).exists()
    assert not Step.objects.filter(request_id=old.pk).exists()
    assert UnsubscribeRequest.objects.filter(pk=recent.pk).exists()
    # the number is still suppressed: the opt-out outlives its paperwork
    assert selectors.suppression_status(tenant=tenant_a, phone=NUMBER).suppressed
    assert Suppression.objects.filter(request__isnull=True).count() == 1
