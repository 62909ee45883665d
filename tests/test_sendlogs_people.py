"""What the person and staff see of send logs (issue 17): the violation count on the status page,
"I still get messages" from the status page and by reply SMS (recorded, linked, staff alerted,
answered), the request's admin page, its "has violations" filter, the dashboard chart, the case
page, the proof-pack evidence, and the retention purge."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from lanzuan import phones
from notifications.models import Message
from unsubscribe import links, tasks
from unsubscribe.inbound.services import inbound_credential_set
from unsubscribe.models import SendLogEntry, SendViolation, Service, StillReceivingReport, UnsubscribeRequest
from unsubscribe.sendlogs.selectors import request_violation_evidence
from unsubscribe.sendlogs.services import SendRecord, send_logs_ingest

from .pipeline_helpers import E164, NUMBER, file
from .test_inbound import GENERIC_SECRET, generic_payload, post_generic

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from pytest_django import DjangoCaptureOnCommitCallbacks

    from tenants.models import Tenant

    from .pipeline_helpers import Pipeline

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
EN: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "en"}
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def offers(tenant_a: Tenant) -> Service:
    return Service.objects.create(tenant=tenant_a, name="Offers", code="offers")


def opt_out_then_sends(tenant: Tenant, *hours_after: int) -> UnsubscribeRequest:
    """The number opts out at T0; the sender reports a message at each of `hours_after` (negative: before)."""
    with time_machine.travel(T0, tick=False):
        request = file(tenant, NUMBER)
    digest = phones.tenant_phone_hash(tenant.pk, E164)
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        send_logs_ingest(
            tenant=tenant,
            records=[
                SendRecord(
                    phone_hash=digest,
                    sent_at=T0 + timedelta(hours=h),
                    service_code="offers",
                    template=f"t{h}",
                )
                for h in hours_after
            ],
        )
    return request


def status_page(client: Client, request: UnsubscribeRequest, **headers: Any) -> Any:
    return client.get(links.status_url(request, absolute=False), **headers)


def test_the_status_page_shows_messages_after_the_opt_out_in_both_languages(
    client: Client, tenant_a: Tenant, offers: Service
) -> None:
    request = opt_out_then_sends(tenant_a, -2, 3, 5)

    english = status_page(client, request, **EN).content.decode()
    chinese = status_page(client, request, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()

    assert 'data-testid="violation-count"' in english
    assert "2 messages after your opt-out; the provider has been told." in english
    assert "退订后仍收到 2 条消息，已通知服务商。" in chinese
    assert 'data-testid="still-receiving"' in english and 'data-testid="still-receiving"' in chinese


def test_no_violation_no_count(client: Client, tenant_a: Tenant, offers: Service) -> None:
    request = opt_out_then_sends(tenant_a, -2)
    page = status_page(client, request, **EN).content.decode()
    assert 'data-testid="violation-count"' not in page and 'data-testid="still-receiving"' in page


def test_reporting_from_the_status_page_records_links_and_alerts_once(
    client: Client,
    tenant_a: Tenant,
    offers: Service,
    alice: User,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    alice.email = "alice@example.com"
    alice.save()
    request = opt_out_then_sends(tenant_a, 3)
    token = links.status_url(request, absolute=False).split("token=")[1]

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("unsubscribe-status", args=[tenant_a.slug]),
            {"action": "still_receiving", "token": token},
            follow=True,
            **EN,
        )
        again = client.post(
            reverse("unsubscribe-status", args=[tenant_a.slug]),
            {"action": "still_receiving", "token": token},
            **EN,
        )

    assert response.status_code == 200
    page = response.content.decode()
    assert "We have recorded that you still get messages" in page
    assert 'data-testid="still-receiving-reported"' in page
    assert again.status_code == 302
    report = StillReceivingReport.objects.for_tenant(tenant_a).get()  # pressed twice: one report
    assert (report.request, report.channel) == (request, "web")
    alerts = Message.objects.for_tenant(tenant_a).filter(
        event="request_needs_attention", to="alice@example.com"
    )
    assert alerts.count() == 1
    assert request.reference in alerts.get().body


def test_a_forged_token_reports_nothing(client: Client, tenant_a: Tenant, offers: Service) -> None:
    opt_out_then_sends(tenant_a, 3)
    response = client.post(
        reverse("unsubscribe-status", args=[tenant_a.slug]),
        {"action": "still_receiving", "token": "x.y"},
        **EN,
    )
    assert response.status_code == 302
    assert not StillReceivingReport.objects.for_tenant(tenant_a).exists()


def test_reports_count_against_the_status_page_limit(
    client: Client, tenant_a: Tenant, offers: Service, settings: Any
) -> None:
    settings.LANZUAN_STATUS_LOOKUPS_PER_IP_HOUR = 1
    first = opt_out_then_sends(tenant_a, 3)
    token = links.status_url(first, absolute=False).split("token=")[1]
    url = reverse("unsubscribe-status", args=[tenant_a.slug])
    client.post(url, {"action": "still_receiving", "token": token}, **EN)
    StillReceivingReport.objects.for_tenant(tenant_a).delete()
    limited = client.post(url, {"action": "still_receiving", "token": token}, follow=True, **EN)
    assert "Too many look-ups from your network" in limited.content.decode()
    assert not StillReceivingReport.objects.for_tenant(tenant_a).exists()


def test_an_opt_out_by_sms_while_opted_out_is_a_still_receiving_report(
    client: Client,
    tenant_a: Tenant,
    alice: User,
    outbox: Any,
    pipeline: Pipeline,
) -> None:
    alice.email = "alice@example.com"
    alice.save()
    inbound_credential_set(tenant=tenant_a, provider="generic", secret=GENERIC_SECRET)
    with pipeline():
        first = post_generic(client, tenant_a, generic_payload("TD", message_id="g-1", sender=E164))
    assert first.status_code == 200
    request = UnsubscribeRequest.objects.for_tenant(tenant_a).get()
    assert not StillReceivingReport.objects.for_tenant(tenant_a).exists()  # the first opt-out is no report

    with pipeline():
        again = post_generic(
            client, tenant_a, generic_payload("我已经退订了还在发", message_id="g-2", sender=E164)
        )
    assert again.status_code == 200

    report = StillReceivingReport.objects.for_tenant(tenant_a).get()
    assert (report.request, report.channel) == (request, "sms")
    sent = [json.loads(line) for line in outbox.read_text().splitlines()]
    replies = [
        m for m in sent if m["to"] == E164 and request.reference in m["body"] and "通知服务商" in m["body"]
    ]
    assert len(replies) == 1
    assert Message.objects.for_tenant(tenant_a).filter(event="request_needs_attention").count() == 1


def test_staff_see_violations_and_reports_on_the_request_list_page_dashboard_and_case(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, offers: Service, alice: User, charlie: User
) -> None:
    request = opt_out_then_sends(tenant_a, 3, 4)
    quiet = file(tenant_a, "13900139000")
    StillReceivingReport.objects.create(tenant=tenant_a, request=request, channel="web")
    client.login(username="alice", password=PASSWORD)

    page = client.get(reverse("admin:unsubscribe_unsubscriberequest_change", args=[request.pk]), **EN)
    text = page.content.decode()
    assert page.status_code == 200
    assert "messages sent after the opt-out (send logs)" in text.lower()
    assert "“I still get messages” reports" in text

    changelist = reverse("admin:unsubscribe_unsubscriberequest_changelist")
    flagged = client.get(changelist, {"violations": "yes"}, **EN).content.decode()
    assert request.reference in flagged and quiet.reference not in flagged
    reported = client.get(changelist, {"violations": "reported"}, **EN).content.decode()
    assert request.reference in reported and quiet.reference not in reported

    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        board = client.get(reverse("admin:unsubscribe_dashboard"), **EN).content.decode()
    assert 'data-testid="violations-chart"' in board
    assert f'data-week="{(T0 - timedelta(days=T0.weekday())).date().isoformat()}">2<' in board

    case = client.post(reverse("admin:unsubscribe_case"), {"number": NUMBER}, **EN).content.decode()
    assert "Message sent after the opt-out (send log)" in case
    assert "Person reports messages still arriving" in case

    # another tenant's staff see none of it
    client.logout()
    client.login(username="charlie", password=PASSWORD)
    assert (
        client.get(reverse("admin:unsubscribe_sendviolation_changelist"), **EN)
        .content.decode()
        .count("/change/")
        == 0
    )
    assert client.get(
        reverse("admin:unsubscribe_unsubscriberequest_change", args=[request.pk])
    ).status_code in (
        302,
        404,
    )


def test_the_proof_pack_evidence_holds_digests_and_masked_numbers_only(
    tenant_a: Tenant, offers: Service
) -> None:
    request = opt_out_then_sends(tenant_a, -1, 3)
    StillReceivingReport.objects.create(
        tenant=tenant_a, request=request, channel="sms", created_at=T0 + timedelta(days=1)
    )

    evidence = request_violation_evidence(request=request)

    assert evidence["reference"] == request.reference
    assert evidence["phone_hash"] == phones.tenant_phone_hash(tenant_a.pk, E164)
    assert [r["channel"] for r in evidence["reports"]] == ["sms"]
    (message,) = evidence["messages_after_opt_out"]
    assert message["sent_at"] == (T0 + timedelta(hours=3)).isoformat() and message["service"] == "offers"
    assert message["send_log"]["template"] == "t3"
    dumped = json.dumps(evidence)
    assert E164 not in dumped and NUMBER not in dumped


def test_the_retention_purge_removes_old_send_logs_and_keeps_violations(
    tenant_a: Tenant, tenant_b: Tenant, offers: Service
) -> None:
    opt_out_then_sends(tenant_a, 3)
    tenant_a.send_log_retention_days = 10
    tenant_a.save()
    digest_b = phones.tenant_phone_hash(tenant_b.pk, E164)
    send_logs_ingest(tenant=tenant_b, records=[SendRecord(phone_hash=digest_b, sent_at=T0)])

    with time_machine.travel(T0 + timedelta(days=9), tick=False):
        assert tasks.purge_expired_records()["send_logs_purged"] == 0
    with time_machine.travel(T0 + timedelta(days=11), tick=False):
        assert tasks.purge_expired_records()["send_logs_purged"] == 1

    assert not SendLogEntry.objects.for_tenant(tenant_a).exists()
    assert SendLogEntry.objects.for_tenant(tenant_b).count() == 1  # B keeps 30 days
    violation = SendViolation.objects.for_tenant(tenant_a).get()  # the violation stays, minimised
    assert violation.entry is None and violation.service_code == "offers"


def test_the_proof_pack_carries_the_reports_and_the_messages_after_the_opt_out(
    client: Client, tenant_a: Tenant, offers: Service, api_key_a: str
) -> None:
    """The report and the matching send-log rows go into the request's proof pack (issue 17),
    through the API a regulator's copy is taken with."""
    request = opt_out_then_sends(tenant_a, -1, 3)
    StillReceivingReport.objects.create(
        tenant=tenant_a, request=request, channel="web", created_at=T0 + timedelta(days=1)
    )
    response = client.get(
        f"/api/v1/unsubscribe-requests/{request.reference}/proof", HTTP_AUTHORIZATION=f"Api-Key {api_key_a}"
    )
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as pack:
        proof = json.loads(pack.read("proof.json"))
        page = pack.read("index.html").decode()
    section = proof["sections"]["still_receiving"]
    assert [r["channel"] for r in section["reports"]] == ["web"]
    assert [m["service"] for m in section["messages_after_opt_out"]] == ["offers"]
    assert 'data-testid="messages-after-opt-out"' in page and E164 not in page and NUMBER not in page
