"""The unsubscribe core through its service functions and the admin (no worker needed:
pipeline steps are run in-process the way a worker runs them)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from lanzuan import phones
from lanzuan.phones import InvalidPhoneNumber, mask, normalise
from unsubscribe.errors import ChannelDisabled, IdempotencyConflict, ResubscribeRefused, UnknownServices
from unsubscribe.models import (
    ChannelSetting,
    Step,
    Subscription,
    SubscriptionImport,
    SuppressionEvent,
    UnsubscribeRequest,
)
from unsubscribe.pipeline.services import pipeline_sweep, request_advance, step_run
from unsubscribe.references import clean_reference
from unsubscribe.requests.services import unsubscribe_request_create
from unsubscribe.suppressions.selectors import suppression_status
from unsubscribe.suppressions.services import resubscribe

from .pipeline_helpers import NUMBER, subscriber

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from celery import Celery
    from django.contrib.auth.models import User
    from django.test import Client
    from pytest_django import DjangoCaptureOnCommitCallbacks

    from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def file(tenant: Tenant, **kwargs: Any) -> UnsubscribeRequest:
    return unsubscribe_request_create(
        tenant=tenant,
        phone=kwargs.pop("phone", NUMBER),
        channel=kwargs.pop("channel", "app"),
        verification_method="partner_assertion",
        **kwargs,
    ).request


def run_pipeline(request: UnsubscribeRequest) -> UnsubscribeRequest:
    """What workers do, in-process: advance, run due steps, repeat."""
    for _ in range(10):
        request_advance(request.pk)
        due = Step.objects.unscoped(reason="test").filter(request=request, status__in=["pending", "retrying"])
        if not due:
            break
        for step in due:
            step_run(step.pk)
    request.refresh_from_db()
    return request


@pytest.mark.parametrize(
    ("raw", "e164", "masked"),
    [
        ("13800138000", "+8613800138000", "138****8000"),
        ("+86 138 0013 8000", "+8613800138000", "138****8000"),
        ("008613800138000", "+8613800138000", "138****8000"),
        ("+1 415 555 2671", "+14155552671", "+1 415***2671"),
    ],
)
def test_numbers_are_normalised_and_masked(raw: str, e164: str, masked: str) -> None:
    assert normalise(raw) == e164
    assert mask(e164) == masked


@pytest.mark.parametrize("raw", ["", "12345", "not a number", "1" * 40])
def test_bad_numbers_are_refused_with_a_message(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as exc:
        normalise(raw)
    assert str(exc.value)


def test_reference_is_short_and_unambiguous(tenant_a: Tenant) -> None:
    request = file(tenant_a)
    assert len(request.reference) == 9 and request.reference[4] == "-"
    assert not set(request.reference) & set("01OIL")
    assert clean_reference(request.reference.lower().replace("-", " ")) == request.reference


def test_filing_suppresses_at_once_and_records_an_event(tenant_a: Tenant) -> None:
    subscriber(tenant_a)
    request = file(tenant_a, services=["offers"])
    status = suppression_status(tenant=tenant_a, phone=NUMBER, service_code="offers")
    assert status.suppressed and status.since == request.suppressed_at
    # only that service is stopped: "all marketing" is still allowed for the other one
    assert not suppression_status(tenant=tenant_a, phone=NUMBER, service_code="club").suppressed
    event = SuppressionEvent.objects.unscoped(reason="test").get()
    assert (event.scope, event.action, event.request) == ("offers", "added", request)


def test_suppression_is_per_tenant(tenant_a: Tenant, tenant_b: Tenant) -> None:
    file(tenant_a)
    assert suppression_status(tenant=tenant_a, phone=NUMBER).suppressed
    assert not suppression_status(tenant=tenant_b, phone=NUMBER).suppressed


def test_same_idempotency_key_returns_the_same_request_and_another_body_conflicts(tenant_a: Tenant) -> None:
    subscriber(tenant_a)
    first = file(tenant_a, idempotency_key="k1")
    again = unsubscribe_request_create(
        tenant=tenant_a,
        phone=NUMBER,
        channel="app",
        verification_method="partner_assertion",
        idempotency_key="k1",
    )
    assert again.request == first and again.created is False
    with pytest.raises(IdempotencyConflict):
        file(tenant_a, idempotency_key="k1", services=["offers"])


def test_unknown_service_codes_are_named(tenant_a: Tenant) -> None:
    subscriber(tenant_a)
    with pytest.raises(UnknownServices) as exc:
        file(tenant_a, services=["offers", "nope"])
    assert "nope" in exc.value.message
    assert not UnsubscribeRequest.objects.unscoped(reason="test").exists()


def test_a_switched_off_channel_refuses_clearly(tenant_a: Tenant) -> None:
    ChannelSetting.objects.create(tenant=tenant_a, channel="app", enabled=False)
    with pytest.raises(ChannelDisabled) as exc:
        file(tenant_a, channel="app")
    assert tenant_a.name in exc.value.message
    file(tenant_a, channel="hotline")  # other channels still work


def test_pipeline_in_process_completes_and_erases(
    tenant_a: Tenant, outbox: Path, bob: User, client: Client
) -> None:
    subscriber(tenant_a)
    request = run_pipeline(file(tenant_a))
    assert request.state == "completed" and request.phone == ""
    # the admin page shows the timeline with each step's receipt, even to a viewer
    client.force_login(bob)
    page = client.get(
        reverse("admin:unsubscribe_unsubscriberequest_change", args=[request.pk]), HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert "Ended 2 subscriptions." in page and "Deleted the marketing profile." in page
    assert UnsubscribeRequest.history.filter(id=request.pk).count() >= 3
    assert not any(h.phone_masked == "" for h in UnsubscribeRequest.history.filter(id=request.pk))


def test_erasure_waits_for_the_tenants_delay(tenant_a: Tenant, outbox: Path) -> None:
    tenant_a.erasure_delay_hours = 24
    tenant_a.save()
    subscriber(tenant_a)
    request = run_pipeline(file(tenant_a))
    assert request.state == "erasing"
    assert request.erasure_due_at is not None
    assert request.erasure_due_at > timezone.now() + timedelta(hours=23)
    assert request.next_run_at == request.erasure_due_at
    assert (
        Subscription.objects.unscoped(reason="test").filter(status="ended").count() == 2
    )  # services ended already
    # when the delay has passed, the sweep wakes it up
    now = timezone.now()
    UnsubscribeRequest.objects.unscoped(reason="test").filter(pk=request.pk).update(
        erasure_due_at=now, next_run_at=now
    )
    assert pipeline_sweep()["dispatched"] == 1
    request = run_pipeline(request)
    assert request.state == "completed"


def test_sweep_flags_requests_past_their_sla(tenant_a: Tenant) -> None:
    request = file(tenant_a)
    UnsubscribeRequest.objects.unscoped(reason="test").filter(pk=request.pk).update(
        sla_due_at=timezone.now() - timedelta(minutes=1)
    )
    assert pipeline_sweep()["sla_breached"] == 1
    request.refresh_from_db()
    assert request.sla_breached_at is not None
    assert pipeline_sweep()["sla_breached"] == 0


def test_resubscribe_lifts_suppression_where_allowed(tenant_a: Tenant) -> None:
    subscriber(tenant_a)
    run_pipeline(file(tenant_a))
    assert resubscribe(tenant=tenant_a, phone=NUMBER, channel="sms") == ["*"]
    assert not suppression_status(tenant=tenant_a, phone=NUMBER).suppressed
    assert SuppressionEvent.objects.unscoped(reason="test").filter(action="lifted").count() == 1
    assert set(Subscription.objects.unscoped(reason="test").values_list("status", flat=True)) == {"active"}


def test_resubscribe_is_refused_where_opt_outs_are_final(tenant_a: Tenant) -> None:
    tenant_a.allow_resubscribe = False
    tenant_a.save()
    file(tenant_a)
    with pytest.raises(ResubscribeRefused) as exc:
        resubscribe(tenant=tenant_a, phone=NUMBER, channel="sms")
    assert tenant_a.name in exc.value.message
    assert suppression_status(tenant=tenant_a, phone=NUMBER).suppressed


# --- admin ---------------------------------------------------------------------------


def test_admin_finds_a_request_by_number_or_reference(tenant_a: Tenant, alice: User, client: Client) -> None:
    request = file(tenant_a)
    other = file(tenant_a, phone="13912345678")
    client.force_login(alice)
    url = reverse("admin:unsubscribe_unsubscriberequest_changelist")
    by_number = client.get(url, {"q": "+86 138-0013-8000"}).content.decode()
    assert request.reference in by_number and other.reference not in by_number
    by_ref = client.get(url, {"q": request.reference.lower()}).content.decode()
    assert request.reference in by_ref and other.reference not in by_ref


def test_agent_files_a_request_in_the_admin_and_viewer_cannot(
    tenant_a: Tenant, agent_amy: User, bob: User, client: Client, eager_celery: Celery, outbox: Path
) -> None:
    subscriber(tenant_a)
    client.force_login(bob)
    assert client.get(reverse("admin:unsubscribe_unsubscriberequest_add")).status_code == 403
    client.force_login(agent_amy)
    response = client.post(
        reverse("admin:unsubscribe_unsubscriberequest_add"),
        {
            "tenant": tenant_a.pk,
            "phone": "138 0013 8000",
            "channel": "hotline",
            "agent_note": "caller verified by PIN",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    request = UnsubscribeRequest.objects.unscoped(reason="test").get()
    assert request.channel == "hotline" and request.verification_method == "agent_assertion"
    assert request.verification_evidence["agent"] == "amy"
    assert suppression_status(tenant=tenant_a, phone=NUMBER).suppressed
    page = client.get(response["Location"]).content.decode()
    assert request.reference in page and "138****8000" in page
    # agents cannot change configuration
    assert client.get(reverse("admin:unsubscribe_target_add")).status_code == 403


def test_admin_file_form_shows_a_bad_number_as_a_form_error(
    tenant_a: Tenant, alice: User, client: Client
) -> None:
    client.force_login(alice)
    response = client.post(
        reverse("admin:unsubscribe_unsubscriberequest_add"),
        {"tenant": tenant_a.pk, "phone": "12", "channel": "hotline"},
    )
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    assert not UnsubscribeRequest.objects.unscoped(reason="test").exists()


def test_admin_imports_subscriptions_from_csv_with_progress(
    tenant_a: Tenant,
    alice: User,
    client: Client,
    eager_celery: Celery,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    subscriber(tenant_a, number="13900000000")
    rows = ["phone,service,consent_source,consent_at"] + [
        f"1380000{i:04d},offers,web,2026-01-01T00:00:00" for i in range(500)
    ]
    rows += ["bad,offers,web,", "13800000001,unknown,web,"]
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:unsubscribe_subscription_import"),
            {"tenant": tenant_a.pk, "file": SimpleUploadedFile("subs.csv", "\n".join(rows).encode())},
        )
    assert response.status_code == 302
    progress = client.get(response["Location"], {"format": "json"}).json()
    assert progress["status"] == "done" and progress["percent"] == 100
    assert (progress["created"], progress["invalid"]) == (500, 2)
    # row errors are written in the uploader's language (zh-Hans here, the default)
    assert any("未知服务" in e for e in progress["errors"])
    assert Subscription.objects.for_tenant(tenant_a).filter(service__code="offers").count() == 501
    page = client.get(response["Location"]).content.decode()
    assert "<progress" in page


def test_import_progress_of_another_tenant_is_404(
    tenant_a: Tenant, tenant_b: Tenant, charlie: User, client: Client
) -> None:
    import_ = SubscriptionImport.objects.create(tenant=tenant_a, file=SimpleUploadedFile("x.csv", b"phone\n"))
    client.force_login(charlie)
    assert (
        client.get(reverse("admin:unsubscribe_subscription_import_progress", args=[import_.pk])).status_code
        == 404
    )


def test_target_secret_is_write_only_in_the_admin(tenant_a: Tenant, alice: User, client: Client) -> None:
    client.force_login(alice)
    response = client.post(
        reverse("admin:unsubscribe_target_add"),
        {
            "tenant": tenant_a.pk,
            "name": "CRM",
            "purpose": "terminate",
            "kind": "http",
            "url": "https://crm.example.com/optout",
            "signing_secret": "topsecret-value",
            "timeout_seconds": 10,
            "max_attempts": 5,
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    from unsubscribe.models import Target

    target = Target.objects.unscoped(reason="test").get()
    page = client.get(reverse("admin:unsubscribe_target_change", args=[target.pk])).content.decode()
    assert "topsecret-value" not in page
    # saving without a new secret keeps the old one
    client.post(
        reverse("admin:unsubscribe_target_change", args=[target.pk]),
        {
            "tenant": tenant_a.pk,
            "name": "CRM 2",
            "purpose": "terminate",
            "kind": "http",
            "url": "https://crm.example.com/optout",
            "signing_secret": "",
            "timeout_seconds": 10,
            "max_attempts": 5,
            "is_active": "on",
        },
    )
    target.refresh_from_db()
    assert target.name == "CRM 2" and target.signing_secret == "topsecret-value"
    assert (
        "topsecret-value"
        not in client.get(reverse("admin:unsubscribe_target_history", args=[target.pk])).content.decode()
    )


def test_http_target_needs_https_and_a_secret(tenant_a: Tenant, alice: User, client: Client) -> None:
    client.force_login(alice)
    response = client.post(
        reverse("admin:unsubscribe_target_add"),
        {
            "tenant": tenant_a.pk,
            "name": "CRM",
            "purpose": "erase",
            "kind": "http",
            "url": "http://crm.example.com/",
            "signing_secret": "",
            "timeout_seconds": 10,
            "max_attempts": 5,
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "url" in errors and "signing_secret" in errors


def test_status_page_by_reference_and_number(tenant_a: Tenant, client: Client, outbox: Path) -> None:
    subscriber(tenant_a)
    request = run_pipeline(file(tenant_a))
    url = reverse("unsubscribe-status", args=[tenant_a.slug])
    wrong = client.post(url, {"reference": request.reference, "phone": "13912345678"}, follow=True)
    assert request.reference not in wrong.content.decode().split("</h1>", 1)[1].split('id="id_reference"')[0]
    right = client.post(
        url, {"reference": request.reference, "phone": NUMBER}, HTTP_ACCEPT_LANGUAGE="en", follow=True
    )  # post/redirect/get: the page after the redirect
    body = right.content.decode()
    assert "138****8000" in body and 'data-testid="step-erase"' in body


def test_staff_are_emailed_once_when_a_request_needs_attention(
    tenant_a: Tenant,
    alice: User,
    bob: User,
    agent_amy: User,
    outbox: Path,
    eager_celery: Celery,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    import json

    from unsubscribe.models import Target

    alice.email, amy_email = "alice@provider.example", "amy@provider.example"
    alice.save()
    agent_amy.email = amy_email
    agent_amy.save()
    bob.email = "bob@provider.example"  # a viewer: not alerted
    bob.save()
    Target.objects.create(  # an address the platform refuses to call: fails for good at once
        tenant=tenant_a, name="Old CRM", purpose="terminate", kind="http", url="http://10.20.30.40/end"
    )
    with django_capture_on_commit_callbacks(execute=True):
        request = run_pipeline(file(tenant_a))
    assert request.state == "needs_attention"
    emails = [json.loads(line) for line in outbox.read_text().splitlines() if '"email"' in line]
    assert sorted(e["to"] for e in emails) == ["alice@provider.example", amy_email]
    assert all(request.reference in e["body"] and "Old CRM" in e["body"] for e in emails)
    assert f"/admin/unsubscribe/unsubscriberequest/{request.pk}/change/" in emails[0]["body"]
    # advancing it again while still stuck sends nothing new
    with django_capture_on_commit_callbacks(execute=True):
        request_advance(request.pk)
    assert len([line for line in outbox.read_text().splitlines() if '"email"' in line]) == 2


def test_request_list_query_count_does_not_grow_with_rows(
    tenant_a: Tenant, alice: User, client: Client
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    offers = {s.code: s for s in subscriber(tenant_a)}["offers"]
    client.force_login(alice)
    url = reverse("admin:unsubscribe_unsubscriberequest_changelist")

    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200
        return len(captured)

    file(tenant_a, phone="13900000000", services=["offers"])
    client.get(url)  # warm the per-process caches (content types, sessions)
    one_row = queries_for_list()
    for i in range(1, 30):
        file(tenant_a, phone=f"1390000{i:04d}", services=["offers"])
    thirty_rows = queries_for_list()
    assert thirty_rows == one_row <= 20, (one_row, thirty_rows)
    # every row names its scope: the service's name, as staff read it
    assert client.get(url).content.decode().count(offers.name) >= 30


def test_import_never_brings_back_the_number_of_someone_who_opted_out(tenant_a: Tenant, outbox: Path) -> None:
    from django.core.files.base import ContentFile

    from unsubscribe.subscriptions.services import subscription_import_run

    subscriber(tenant_a)
    run_pipeline(file(tenant_a))  # ended and erased
    csv_text = f"phone,service,consent_source\n{NUMBER},offers,old list\n13900000001,offers,new\n"
    import_ = SubscriptionImport.objects.create(
        tenant=tenant_a, file=ContentFile(csv_text.encode(), name="s.csv")
    )
    import_ = subscription_import_run(import_.pk)
    assert (import_.created, import_.updated, import_.skipped_opted_out) == (1, 0, 1)
    ended = Subscription.objects.unscoped(reason="test").get(
        service__code="offers", phone_hash=phones.tenant_phone_hash(tenant_a.pk, normalise(NUMBER))
    )
    assert ended.status == "ended" and ended.phone == ""
