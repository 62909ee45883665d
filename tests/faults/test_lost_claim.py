"""Issue 19, item 5: a lost claim no longer leaves the confirmation unsent for good.

A worker that dies while sending the confirmation (its database connection killed, or
the process SIGKILLed mid-call) leaves the message claimed. After the claim's lease the
real sweeps take it over and send it again, as the same message to the provider: once in
effect (the file gateway and Aliyun look up what they already took, the signed HTTP
gateway's receiver drops a repeated Idempotency-Key). The confirm step waits for the
message meanwhile instead of giving up, the request completes and the raw number is gone.
Staff can send a failed confirmation again from the admin.
"""

from __future__ import annotations

import contextlib
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import psycopg
import pytest
import time_machine
from django.db import DatabaseError, connection
from django.urls import reverse
from django.utils import timezone

from lanzuan.celery import app
from notifications import selectors as notification_selectors
from notifications.gateways import AliyunSmsGateway, FileGateway, GatewayResult, OutgoingMessage
from notifications.models import GatewayConfig, Message
from notifications.services import CLAIM_LEASE, message_create, message_deliver
from notifications.tasks import messages_sweep
from unsubscribe.models import Step, UnsubscribeRequest
from unsubscribe.pipeline.services import step_run
from unsubscribe.pipeline.steps import _create_confirmation
from unsubscribe.tasks import pipeline_sweep

from ..httpserver import http_endpoint
from ..pipeline_helpers import E164, file, outbox_lines, subscriber
from ..test_notifications import aliyun_server_signature, local_server
from ..workers import celery_worker, purge_queue, wait_for
from .leftovers import baseline, raw_numbers_left

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from celery import Celery
    from django.contrib.auth.models import User
    from django.test import Client
    from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

    from tenants.models import Tenant

    from ..pipeline_helpers import Pipeline

PAST_THE_LEASE = CLAIM_LEASE + timedelta(minutes=1)


def fresh(request: UnsubscribeRequest) -> UnsubscribeRequest:
    return UnsubscribeRequest.objects.unscoped(reason="test").get(pk=request.pk)


def confirmation(tenant: Tenant) -> Message:
    return Message.objects.for_tenant(tenant).get(event="unsubscribe_completed")


def confirm_step(request: UnsubscribeRequest) -> Step:
    return Step.objects.for_tenant(request.tenant_id).get(request_id=request.pk, kind="confirm")


def kill_own_db_connection() -> None:
    """pg_terminate_backend on this process's own connection to the test database."""
    pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    conninfo = {key: params[key] for key in ("host", "port", "user", "password", "dbname") if params.get(key)}
    with psycopg.connect(**conninfo, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


def run_the_sweeps() -> None:
    """What beat runs every 30-60 s: the message sweep, then the pipeline sweep."""
    messages_sweep.delay()
    pipeline_sweep.delay()


@pytest.fixture
def lanzuan_settings(settings: Settings) -> Settings:
    settings.LANZUAN_RETRY_BASE_SECONDS = 0
    return settings


@pytest.fixture
def before() -> set[str]:
    """What held a number before the test (other tests' files and keys)."""
    return baseline()


# --- the database connection dies mid-send -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("took_it", [False, True], ids=["before-the-gateway-took-it", "after-it-took-it"])
def test_a_confirmation_whose_db_connection_died_mid_send_goes_out_once_after_the_lease(
    took_it: bool,
    tenant_a: Tenant,
    outbox: Path,
    eager_celery: Celery,
    lanzuan_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    before: set[str],
) -> None:
    subscriber(tenant_a)
    dead: list[str] = []
    real_send, real_config = FileGateway.send, notification_selectors.gateway_config_get

    def config_then_die(**kwargs: Any) -> GatewayConfig | None:
        if not took_it and not dead:  # the connection dies after the claim, before the gateway
            dead.append("before")
            kill_own_db_connection()
        return real_config(**kwargs)

    def send_then_die(self: FileGateway, message: OutgoingMessage) -> GatewayResult:
        result = real_send(self, message)
        if took_it and not dead and message.event == "unsubscribe_completed":
            dead.append("after")  # the gateway took it; the worker dies before recording it
            kill_own_db_connection()
        return result

    monkeypatch.setattr(notification_selectors, "gateway_config_get", config_then_die)
    monkeypatch.setattr(FileGateway, "send", send_then_die)

    # when a request is filed and its confirmation's worker loses the database mid-send
    with contextlib.suppress(DatabaseError):
        file(tenant_a)
    connection.close()  # the worker process is gone; the next one connects afresh
    assert dead
    request = UnsubscribeRequest.objects.for_tenant(tenant_a).get()
    message = confirmation(tenant_a)
    assert message.status == "queued" and message.claimed_at is not None  # the claim stays
    assert len(outbox_lines(outbox)) == (1 if took_it else 0)

    # then the sweeps before the lease ends leave the claim alone ...
    run_the_sweeps()
    assert confirmation(tenant_a).status == "queued"
    assert len(outbox_lines(outbox)) == (1 if took_it else 0)

    # ... and after it they send the confirmation: exactly once to the person
    with time_machine.travel(timezone.now() + PAST_THE_LEASE, tick=True):
        run_the_sweeps()
    message = confirmation(tenant_a)
    assert message.status == "sent" and message.attempts == 2 and message.to == ""
    sent = [line for line in outbox_lines(outbox) if line["to"] == E164]
    assert len(sent) == 1 and request.reference in sent[0]["body"]
    assert confirm_step(request).status == "succeeded"
    # and the request completes: the raw number is erased everywhere
    assert fresh(request).state == "completed"
    assert raw_numbers_left(before) == []


def test_the_confirm_step_waits_for_the_message_instead_of_giving_up(
    tenant_a: Tenant,
    outbox: Path,
    eager_celery: Celery,
    lanzuan_settings: Settings,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    # given a request whose confirmation is claimed by a worker that stopped mid-send
    with django_capture_on_commit_callbacks(execute=False):
        request = file(tenant_a)  # nothing dispatched: the steps are still pending
    message = _create_confirmation(request, attempt=1)
    Message.objects.unscoped(reason="test").filter(pk=message.pk).update(
        claimed_at=timezone.now(), attempts=1
    )
    step = confirm_step(request)

    # when the confirm step runs again and again while the claim holds (far more often than
    # its attempts allow)
    for _ in range(step.max_attempts + 3):
        step_run(step.pk)
        Step.objects.unscoped(reason="test").filter(pk=step.pk).update(next_attempt_at=timezone.now())

    # then it waits: no attempt used up, nothing failed, the reason shown
    step.refresh_from_db()
    assert (step.status, step.attempts) == ("retrying", 0)
    assert f"message {message.pk}" in step.last_error and "another worker" in step.last_error
    assert outbox_lines(outbox) == []
    # and once the lease has passed, its next run sends the message and succeeds
    with time_machine.travel(timezone.now() + PAST_THE_LEASE, tick=True):
        step_run(step.pk)
    step.refresh_from_db()
    assert step.status == "succeeded" and f"message {message.pk} sent" in step.receipt
    assert len([line for line in outbox_lines(outbox) if line["to"] == E164]) == 1


# --- a worker SIGKILLed while the provider holds the call -------------------------------------------


@pytest.fixture
def eager_after_the_worker() -> Iterator[None]:
    yield
    app.conf.task_always_eager = False


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_send_gets_the_confirmation_out_once_through_the_idempotency_key(
    tenant_a: Tenant,
    tmp_path: Path,
    lanzuan_settings: Settings,
    eager_after_the_worker: None,
    before: set[str],
) -> None:
    subscriber(tenant_a)
    # the provider takes the first call and holds it for a while: the worker is killed meanwhile
    with http_endpoint(script=[(200, 6.0), (200, 0.0)]) as provider:
        GatewayConfig.objects.create(
            tenant=tenant_a, channel="sms", kind="http", endpoint=provider.url, secret="gw-secret"
        )
        purge_queue()
        with celery_worker(tmp_path, concurrency=1) as worker:
            request = file(tenant_a)
            wait_for(lambda: provider.received, 60, message=worker.output())
            worker.kill()
        wait_for(lambda: provider.effects, 30, message="the provider to take the first call")
        message = confirmation(tenant_a)
        assert message.status == "queued" and message.claimed_at is not None
        assert confirm_step(request).status == "running"

        # after the lease, beat's sweeps (run here, in-process) send it again
        app.conf.task_always_eager = True
        with time_machine.travel(timezone.now() + PAST_THE_LEASE, tick=True):
            run_the_sweeps()
            wait_for(lambda: fresh(request).state == "completed", 30)

    # sent twice with the same key, applied once: the person got one confirmation
    keys = [received.headers["Idempotency-Key"] for received in provider.received]
    assert keys == [f"lanzuan-message-{message.pk}"] * 2
    assert provider.effects == {f"lanzuan-message-{message.pk}": 1}
    assert json.loads(provider.received[1].body)["id"] == keys[0]
    message.refresh_from_db()
    assert message.status == "sent" and message.attempts == 2
    assert raw_numbers_left(before) == []


# --- Aliyun: the re-send looks up the OutId first -------------------------------------------------


def aliyun_with_records(records: list[dict[str, Any]], sends: list[dict[str, str]]) -> Any:
    def answer(request: dict[str, Any]) -> tuple[int, Any]:
        params = dict(parse_qsl(request["body"].decode(), keep_blank_values=True))
        signature = params.pop("Signature", "")
        if signature != aliyun_server_signature(params, "aliyun-secret"):
            return 400, {"Code": "SignatureDoesNotMatch"}
        if params["Action"] == "QuerySendDetails":
            assert params["PhoneNumber"] == "13800138000" and len(params["SendDate"]) == 8
            dtos = [r for r in records if r["PhoneNum"] == params["PhoneNumber"]]
            return 200, {
                "Code": "OK",
                "TotalCount": len(dtos),
                "SmsSendDetailDTOs": {"SmsSendDetailDTO": dtos},
            }
        sends.append(params)
        records.append({"OutId": params["OutId"], "PhoneNum": params["PhoneNumbers"], "SendStatus": 1})
        return 200, {"Code": "OK", "BizId": f"biz-{len(sends)}", "RequestId": "R"}

    return answer


@pytest.mark.parametrize("took_it", [False, True], ids=["not-taken", "taken"])
def test_aliyun_resends_a_lost_claim_only_when_its_out_id_is_not_on_record(
    took_it: bool, tenant_a: Tenant
) -> None:
    records: list[dict[str, Any]] = []
    sends: list[dict[str, str]] = []
    with local_server(aliyun_with_records(records, sends)) as (url, _seen):
        GatewayConfig.objects.create(
            tenant=tenant_a,
            channel="sms",
            kind="aliyun",
            endpoint=url + "/",
            account_id="LTAI-test",
            secret="aliyun-secret",
            sender_id="运营商A",
            template_code="SMS_200",
        )
        message = message_create(
            tenant=tenant_a,
            event="unsubscribe_completed",
            to=E164,
            context={"reference": "K7M2-9QXP", "status_url": "https://lz.example/s"},
        )
        if took_it:  # the dead worker's SendSms reached Aliyun
            records.append({"OutId": str(message.pk), "PhoneNum": "13800138000", "SendStatus": 3})
        records.append({"OutId": "999999", "PhoneNum": "13800138000", "SendStatus": 3})  # another SMS
        Message.objects.unscoped(reason="test").filter(pk=message.pk).update(
            claimed_at=timezone.now() - PAST_THE_LEASE, attempts=1
        )
        message = message_deliver(message.pk)
    assert message.status == "sent"
    assert len(sends) == (0 if took_it else 1)
    assert [send["OutId"] for send in sends] == ([] if took_it else [str(message.pk)])


def test_every_gateway_says_how_it_guards_a_resend() -> None:
    from notifications.gateways import HttpGateway, SmtpGateway, TwilioGateway

    guards = {
        gateway.kind: gateway.resend_guard
        for gateway in (FileGateway, AliyunSmsGateway, HttpGateway, SmtpGateway, TwilioGateway)
    }
    assert guards == {"file": "lookup", "aliyun": "lookup", "http": "key", "smtp": "none", "twilio": "none"}


# --- staff send a failed confirmation again ------------------------------------------------------


def failing_once_gateway(tenant: Tenant, url: str) -> None:
    GatewayConfig.objects.create(tenant=tenant, channel="sms", kind="http", endpoint=url, secret="gw")


def test_admin_send_again_sends_a_failed_confirmation(
    client: Client, alice: User, tenant_a: Tenant, pipeline: Pipeline, before: set[str]
) -> None:
    subscriber(tenant_a)
    # given a confirmation the provider refused (a 400: for good, as far as the worker can tell)
    with http_endpoint(script=[(400, 0.0), (200, 0.0)]) as provider:
        failing_once_gateway(tenant_a, provider.url)
        with pipeline():
            request = file(tenant_a)
        message = confirmation(tenant_a)
        assert message.status == "failed" and message.to == ""
        assert fresh(request).state == "needs_attention"

        # when staff choose "Send failed messages again" in the admin of messages
        client.force_login(alice)
        with pipeline():
            response = client.post(
                reverse("admin:notifications_message_changelist"),
                {"action": "send_again", "_selected_action": [message.pk]},
                follow=True,
            )
        assert response.status_code == 200
        assert "放回队列" in response.content.decode()  # "put back in the queue", in the admin's zh-Hans

    # then it is sent, to the request's number (found again while the request is open)
    message.refresh_from_db()
    assert message.status == "sent" and message.to == ""
    assert [json.loads(r.body)["to"] for r in provider.received] == [E164, E164]
    assert provider.effects == {f"lanzuan-message-{message.pk}": 1}

    # and retrying the request finds it sent: the request completes, the number is erased
    with pipeline():
        client.post(
            reverse("admin:unsubscribe_unsubscriberequest_changelist"),
            {"action": "retry_requests", "_selected_action": [request.pk]},
        )
    assert fresh(request).state == "completed"
    assert len(provider.received) == 2  # no third send
    assert raw_numbers_left(before) == []


def test_admin_request_retry_sends_its_failed_confirmation(
    client: Client, alice: User, tenant_a: Tenant, pipeline: Pipeline, before: set[str]
) -> None:
    subscriber(tenant_a)
    with http_endpoint(script=[(400, 0.0), (200, 0.0)]) as provider:
        failing_once_gateway(tenant_a, provider.url)
        with pipeline():
            request = file(tenant_a)
        assert confirmation(tenant_a).status == "failed"

        client.force_login(alice)
        with pipeline():
            client.post(
                reverse("admin:unsubscribe_unsubscriberequest_changelist"),
                {"action": "retry_requests", "_selected_action": [request.pk]},
            )

    message = confirmation(tenant_a)  # the same message, sent this time
    assert message.status == "sent"
    assert len(provider.received) == 2 and provider.effects == {f"lanzuan-message-{message.pk}": 1}
    assert fresh(request).state == "completed"
    assert raw_numbers_left(before) == []


def test_a_one_time_code_or_an_erased_recipient_is_not_sent_again(
    client: Client, alice: User, tenant_a: Tenant, outbox: Path
) -> None:
    otp = message_create(tenant=tenant_a, event="otp", to=E164, context={"code": "123456"})
    help_reply = message_create(tenant=tenant_a, event="clarify", to=E164, context={})
    Message.objects.unscoped(reason="test").filter(pk__in=[otp.pk, help_reply.pk]).update(
        status="failed", to="", secret_ref="", error="HTTP 400"
    )
    client.force_login(alice)
    page = client.post(
        reverse("admin:notifications_message_changelist"),
        {"action": "send_again", "_selected_action": [otp.pk, help_reply.pk]},
        follow=True,
        HTTP_ACCEPT_LANGUAGE="en",
    ).content.decode()
    assert "A one-time code is not sent again" in page
    assert "was erased" in page
    assert set(Message.objects.for_tenant(tenant_a).values_list("status", flat=True)) == {"failed"}
    assert outbox_lines(outbox) == []


def test_a_viewer_cannot_send_messages_again(client: Client, bob: User, tenant_a: Tenant) -> None:
    client.force_login(bob)
    page = client.get(reverse("admin:notifications_message_changelist"))
    assert page.status_code == 200 and "send_again" not in page.content.decode()
