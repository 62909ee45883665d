"""Partner webhooks: endpoints through the API and the admin, signed deliveries to a
real local HTTP server that verifies the signature, retries with backoff, the
sweep, "Send again" in the admin, and the whole pipeline delivering after commit."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from lanzuan import signing
from unsubscribe import domain_events
from unsubscribe.partner import tasks, webhooks
from unsubscribe.partner.models import WebhookDelivery, WebhookEndpoint
from unsubscribe.requests.services import unsubscribe_request_create

if TYPE_CHECKING:
    from pathlib import Path

    from django.contrib.auth.models import User
    from django.test import Client
    from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

    from tenants.models import Tenant
    from unsubscribe.models import UnsubscribeRequest

    from .pipeline_helpers import Pipeline

NUMBER = "+8613800138000"
SECRET = "whsec_test-secret-0123456789"


@pytest.fixture(autouse=True)
def partner_settings(settings: Settings) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "EXCEPTION_HANDLER": "unsubscribe.partner.problems.problem_exception_handler",
    }


@dataclass
class Receiver:
    """A partner's webhook receiver: verifies each signature with lanzuan.signing."""

    secret: str
    statuses: list[int] = field(default_factory=lambda: [200])
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def receiver(secret: str = SECRET, statuses: list[int] | None = None) -> Iterator[Receiver]:
    state = Receiver(secret=secret, statuses=statuses or [200])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            valid = signing.verify(
                state.secret,
                self.headers.get(signing.TIMESTAMP_HEADER, ""),
                body,
                self.headers.get(signing.SIGNATURE_HEADER, ""),
            )
            with state.lock:
                state.received.append({"headers": dict(self.headers.items()), "body": body, "valid": valid})
                status = state.statuses[min(len(state.received), len(state.statuses)) - 1]
            if not valid:
                status = 401
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else f"error {status}".encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def endpoint_for(
    tenant: Tenant, url: str, events_: list[str] | None = None, secret: str = SECRET
) -> WebhookEndpoint:
    endpoint, _secret = webhooks.webhook_endpoint_create(
        tenant=tenant, url=url, events=events_ or list(domain_events.EVENTS), secret=secret
    )
    return endpoint


@pytest.fixture
def sync_delivery(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Queueing a delivery sends it at once, in this process (the task itself runs)."""
    sent: list[str] = []

    def apply_async(args: tuple[int], **kwargs: Any) -> None:
        sent.append(tasks.deliver_webhook(*args))

    monkeypatch.setattr(tasks.deliver_webhook, "apply_async", apply_async)
    return sent


def file(tenant: Tenant, phone: str = NUMBER) -> UnsubscribeRequest:
    return unsubscribe_request_create(
        tenant=tenant, phone=phone, channel="app", verification_method="partner_assertion"
    ).request


# --- endpoints through the API -------------------------------------------------------------


def test_register_list_and_delete_endpoints_through_the_api(
    api_key_a: str, api_key_b: str, tenant_a: Tenant
) -> None:
    a, b = api(api_key_a), api(api_key_b)
    created = a.post(
        "/api/v1/webhooks",
        {"url": "https://crm.example.com/hooks", "events": ["request.created", "suppression.added"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    endpoint = WebhookEndpoint.objects.for_tenant(tenant_a).get()
    assert endpoint.secret == secret

    # the secret is never shown again; B sees nothing of A's endpoint
    listed = a.get("/api/v1/webhooks").json()
    assert [e["url"] for e in listed] == ["https://crm.example.com/hooks"] and "secret" not in listed[0]
    assert "secret" not in a.get(f"/api/v1/webhooks/{endpoint.pk}").json()
    assert b.get("/api/v1/webhooks").json() == []
    assert b.get(f"/api/v1/webhooks/{endpoint.pk}").status_code == 404
    assert b.delete(f"/api/v1/webhooks/{endpoint.pk}").status_code == 404

    # invalid input is a problem naming the field
    bad = a.post(
        "/api/v1/webhooks", {"url": "http://example.com/x", "events": ["request.eaten"]}, format="json"
    )
    assert bad.status_code == 400 and bad["Content-Type"] == "application/problem+json"
    assert {e["field"] for e in bad.json()["errors"]} == {"url", "events[0]"}
    short = a.post(
        "/api/v1/webhooks",
        {"url": "https://x.example", "events": ["request.created"], "secret": "short"},
        format="json",
    )
    assert short.status_code == 400

    assert a.delete(f"/api/v1/webhooks/{endpoint.pk}").status_code == 204
    assert not WebhookEndpoint.objects.unscoped(reason="test").exists()


def test_endpoints_per_tenant_are_capped_in_the_api(
    api_key_a: str, api_key_b: str, tenant_a: Tenant, settings: Settings
) -> None:
    settings.LANZUAN_MAX_WEBHOOK_ENDPOINTS = 2
    a = api(api_key_a)
    for n in range(2):
        body = {"url": f"https://crm.example.com/hooks/{n}", "events": ["request.created"]}
        assert a.post("/api/v1/webhooks", body, format="json").status_code == 201
    # a third is a problem document naming the limit; switched-off endpoints count too
    WebhookEndpoint.objects.for_tenant(tenant_a).update(is_active=False)
    third = a.post(
        "/api/v1/webhooks",
        {"url": "https://crm.example.com/hooks/3", "events": ["request.created"]},
        format="json",
    )
    assert third.status_code == 409 and third["Content-Type"] == "application/problem+json"
    problem = third.json()
    assert problem["code"] == "too_many_webhook_endpoints"
    assert problem["type"] == "urn:lanzuan:problem:too_many_webhook_endpoints"
    # in the API's default language, zh-Hans
    assert problem["title"] == "Webhook 接口地址过多" and "已有 2 个 Webhook 接口地址" in problem["detail"]
    assert problem["instance"] == "/api/v1/webhooks" and problem["status"] == 409
    assert WebhookEndpoint.objects.for_tenant(tenant_a).count() == 2
    # another tenant has its own room; removing one makes room again
    created = {"events": ["request.created"]}
    assert (
        api(api_key_b).post("/api/v1/webhooks", {**created, "url": "https://b.example.com/h"}, format="json")
    ).status_code == 201
    first = WebhookEndpoint.objects.for_tenant(tenant_a).order_by("pk").first()
    assert first is not None
    assert a.delete(f"/api/v1/webhooks/{first.pk}").status_code == 204
    assert (
        a.post(
            "/api/v1/webhooks", {**created, "url": "https://crm.example.com/h4"}, format="json"
        ).status_code
        == 201
    )
    # the schema documents the 409
    schema = a.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "409" in schema["paths"]["/api/v1/webhooks"]["post"]["responses"]


def test_endpoints_per_tenant_are_capped_in_the_admin(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, root: User, settings: Settings
) -> None:
    settings.LANZUAN_MAX_WEBHOOK_ENDPOINTS = 1
    client.force_login(root)
    add = reverse("admin:partner_webhookendpoint_add")
    form = {"tenant": tenant_a.pk, "url": "https://crm.example.com/hooks", "events": ["request.created"]}
    assert client.post(add, form).status_code == 302
    endpoint = WebhookEndpoint.objects.for_tenant(tenant_a).get()  # made by the service
    assert endpoint.secret.startswith("whsec_") and endpoint.history.count() == 1

    # a second one for A is a form error, in the admin's language, and nothing is saved
    refused = client.post(add, {**form, "url": "https://crm.example.com/other"})
    assert refused.status_code == 200
    admin_form = refused.context["adminform"].form
    assert admin_form.has_error("__all__", code="too_many_webhook_endpoints")
    assert refused.context["LANGUAGE_CODE"] == "zh-hans"
    assert WebhookEndpoint.objects.for_tenant(tenant_a).count() == 1
    # editing A's endpoint is fine; moving it to a tenant with no room is not
    change = reverse("admin:partner_webhookendpoint_change", args=[endpoint.pk])
    assert client.post(change, {**form, "description": "CRM"}).status_code == 302
    webhooks.webhook_endpoint_create(tenant=tenant_b, url="https://b.example.com/h", events=[])
    moved = client.post(change, {**form, "tenant": tenant_b.pk})
    assert moved.status_code == 200
    assert moved.context["adminform"].form.has_error("__all__", code="too_many_webhook_endpoints")
    assert WebhookEndpoint.objects.for_tenant(tenant_a).count() == 1


# --- fair dispatch --------------------------------------------------------------------------------


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Queueing records the delivery id and runs nothing (the broker holds it)."""
    ids: list[int] = []

    def apply_async(args: tuple[int], **kwargs: Any) -> None:
        ids.append(args[0])

    monkeypatch.setattr(tasks.deliver_webhook, "apply_async", apply_async)
    return ids


def test_a_tenants_fan_out_is_queued_a_few_at_a_time(
    tenant_a: Tenant,
    tenant_b: Tenant,
    queued: list[int],
    settings: Settings,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    settings.LANZUAN_WEBHOOK_IN_FLIGHT_PER_TENANT = 3
    with receiver() as server:
        for n in range(10):
            endpoint_for(tenant_a, f"{server.url}/{n}", ["suppression.added"])
        endpoint_for(tenant_b, server.url + "/b", ["suppression.added"])

        # when A's event fans out to 10 deliveries, only 3 are queued; B's is queued at once
        with django_capture_on_commit_callbacks(execute=True):
            domain_events.emit(tenant_a.pk, "suppression.added", {"phone_hash": "a"})
            domain_events.emit(tenant_a.pk, "suppression.added", {"phone_hash": "a2"})
        a_rows = list(WebhookDelivery.objects.for_tenant(tenant_a).order_by("next_attempt_at", "pk"))
        assert queued == [d.pk for d in a_rows[:3]]
        with django_capture_on_commit_callbacks(execute=True):
            domain_events.emit(tenant_b.pk, "suppression.added", {"phone_hash": "b"})
        b_delivery = WebhookDelivery.objects.for_tenant(tenant_b).get()
        assert queued[-1] == b_delivery.pk and len(queued) == 4
        # the sweep adds none while A's slots are taken
        assert tasks.partner_sweep()["webhook_deliveries_dispatched"] == 0

        # then each finished delivery hands its slot to A's next one, oldest first
        tasks.deliver_webhook(queued[0])
        assert len(queued) == 5 and queued[-1] == a_rows[3].pk
        # a duplicate message for a finished delivery is skipped and frees nothing
        assert tasks.deliver_webhook(queued[0]) == "skipped" and len(queued) == 5
        # the worker takes them in queue order until none are left: every one sent, once,
        # with never more than 3 of A's queued and unsent
        waiting = WebhookDelivery.objects.for_tenant(tenant_a).filter(status="pending")
        position = 1
        while position < len(queued):
            tasks.deliver_webhook(queued[position])
            position += 1
            assert waiting.exclude(dispatched_at=None).count() <= 3
        assert len(queued) == 21 and not waiting.exists()
        sent = [r["headers"]["X-Lanzuan-Delivery"] for r in server.received]
        assert len(sent) == len(set(sent)) == 21


def test_the_sweep_goes_round_the_tenants(
    tenant_a: Tenant, tenant_b: Tenant, queued: list[int], settings: Settings
) -> None:
    settings.LANZUAN_WEBHOOK_IN_FLIGHT_PER_TENANT = 2
    for n in range(5):
        endpoint_for(tenant_a, f"https://a.example.com/{n}", ["suppression.added"])
    endpoint_for(tenant_b, "https://b.example.com/hooks", ["suppression.added"])
    # the broker lost everything (no on-commit dispatch ran): A's 10 rows, then B's 1
    domain_events.emit(tenant_a.pk, "suppression.added", {"phone_hash": "a"})
    domain_events.emit(tenant_a.pk, "suppression.added", {"phone_hash": "a2"})
    domain_events.emit(tenant_b.pk, "suppression.added", {"phone_hash": "b"})
    tenant_of = dict(WebhookDelivery.objects.unscoped(reason="test").values_list("pk", "tenant_id"))

    # one round: A's two slots, then B's one, not A's whole backlog first
    assert tasks.partner_sweep()["webhook_deliveries_dispatched"] == 3
    assert [tenant_of[pk] for pk in queued] == [tenant_a.pk, tenant_a.pk, tenant_b.pk]
    # a round with a limit stops there
    WebhookDelivery.objects.unscoped(reason="test").update(dispatched_at=None)
    queued.clear()
    assert webhooks.webhook_deliveries_sweep(limit=1) == {"webhook_deliveries_dispatched": 1}
    # queued ones lost by the broker count as free after a while, and go again
    time_passes_by(webhooks.STALE_DISPATCH + timedelta(seconds=1))
    assert tasks.partner_sweep()["webhook_deliveries_dispatched"] == 3


def test_with_the_broker_down_deliveries_wait_for_the_sweep(
    tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch, queued: list[int]
) -> None:
    endpoint_for(tenant_a, "https://a.example.com/hooks", ["suppression.added"])
    domain_events.emit(tenant_a.pk, "suppression.added", {"phone_hash": "a"})
    real = tasks.deliver_webhook.apply_async

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.deliver_webhook, "apply_async", broker_down)
    assert webhooks.webhook_deliveries_dispatch(tenant_id=tenant_a.pk) == 0
    delivery = WebhookDelivery.objects.for_tenant(tenant_a).get()
    assert delivery.dispatched_at is None  # its slot given back
    monkeypatch.setattr(tasks.deliver_webhook, "apply_async", real)
    assert tasks.partner_sweep()["webhook_deliveries_dispatched"] == 1 and queued == [delivery.pk]


# --- delivery -----------------------------------------------------------------------------------


def test_events_are_delivered_signed_to_a_real_server(
    tenant_a: Tenant,
    tenant_b: Tenant,
    sync_delivery: list[str],
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with receiver() as server:
        # given A's endpoint for request.created and suppression.added, and B's for everything
        endpoint_for(tenant_a, server.url, ["request.created", "suppression.added"])
        endpoint_for(tenant_b, server.url + "/b")

        # when a request is filed for A (deliveries are queued after commit)
        with django_capture_on_commit_callbacks(execute=True):
            request = file(tenant_a)

        # then both events reached the server, signed, without the raw number
        assert len(server.received) == 2 and all(r["valid"] for r in server.received)
        bodies = [json.loads(r["body"]) for r in server.received]
        assert sorted(b["event"] for b in bodies) == ["request.created", "suppression.added"]
        created = next(b for b in bodies if b["event"] == "request.created")
        assert created["tenant"] == "tenant-a" and created["data"]["reference"] == request.reference
        assert created["data"]["phone_masked"] == "138****8000" and created["data"]["phone_hash"]
        for r in server.received:
            assert b"13800138000" not in r["body"]
            assert r["headers"]["X-Lanzuan-Event"] in ("request.created", "suppression.added")
            assert r["headers"]["X-Lanzuan-Delivery"]
        deliveries = WebhookDelivery.objects.for_tenant(tenant_a)
        assert {(d.status, d.attempts, d.response_code) for d in deliveries} == {("succeeded", 1, 200)}
        assert not WebhookDelivery.objects.for_tenant(tenant_b).exists()


def test_deliveries_roll_back_with_the_transaction(tenant_a: Tenant) -> None:
    endpoint_for(tenant_a, "https://crm.example.com/hooks")
    # the row is counted inside the transaction, before the error rolls it back
    with pytest.raises(RuntimeError, match="the change failed"), transaction.atomic():  # noqa: PT012
        domain_events.emit(tenant_a.pk, "suppression.added", {"phone_hash": "x", "phone": NUMBER})
        assert WebhookDelivery.objects.unscoped(reason="test").count() == 1
        raise RuntimeError("the change failed")
    assert not WebhookDelivery.objects.unscoped(reason="test").exists()


def test_payload_drops_any_raw_number(tenant_a: Tenant) -> None:
    endpoint_for(tenant_a, "https://crm.example.com/hooks")
    domain_events.emit(
        tenant_a.pk, "suppression.added", {"phone_hash": "h", "phone": NUMBER, "nested": {"e164": NUMBER}}
    )
    assert WebhookDelivery.objects.unscoped(reason="test").get().payload == {"phone_hash": "h", "nested": {}}


def time_passes_by(delta: timedelta) -> None:
    """Every delivery's times move back by `delta`, as if that long had passed."""
    for delivery in WebhookDelivery.objects.unscoped(reason="test"):
        WebhookDelivery.objects.unscoped(reason="test").filter(pk=delivery.pk).update(
            next_attempt_at=delivery.next_attempt_at - delta if delivery.next_attempt_at else None,
            dispatched_at=delivery.dispatched_at - delta if delivery.dispatched_at else None,
        )


def time_passes() -> None:
    """Move every delivery's clock forward to just after its next attempt is due."""
    for delivery in WebhookDelivery.objects.unscoped(reason="test").exclude(next_attempt_at=None):
        assert delivery.next_attempt_at is not None  # excluded above; narrows the type
        shift = delivery.next_attempt_at - timezone.now() + timedelta(seconds=1)
        WebhookDelivery.objects.unscoped(reason="test").filter(pk=delivery.pk).update(
            next_attempt_at=delivery.next_attempt_at - shift,
            dispatched_at=delivery.dispatched_at - shift if delivery.dispatched_at else None,
        )


def test_a_failing_endpoint_is_retried_with_backoff(
    tenant_a: Tenant,
    sync_delivery: list[str],
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with receiver(statuses=[500, 503, 200]) as server:
        endpoint_for(tenant_a, server.url, ["request.created"])
        with django_capture_on_commit_callbacks(execute=True):
            file(tenant_a)

        # the first attempt failed: recorded, and due again later
        delivery = WebhookDelivery.objects.unscoped(reason="test").get()
        assert (delivery.status, delivery.attempts, delivery.response_code) == ("retrying", 1, 500)
        assert delivery.last_error == "HTTP 500" and "error 500" in delivery.response_excerpt
        assert delivery.next_attempt_at is not None
        wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
        assert 10 < wait <= 30

        # the sweep sends nothing before it is due, then sends it when it is
        assert tasks.partner_sweep()["webhook_deliveries_dispatched"] == 0
        time_passes()
        assert tasks.partner_sweep()["webhook_deliveries_dispatched"] == 1
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.response_code) == ("retrying", 2, 503)
        assert delivery.next_attempt_at is not None
        assert 25 < (delivery.next_attempt_at - timezone.now()).total_seconds() <= 60  # backing off

        time_passes()
        tasks.partner_sweep()
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.response_code) == ("succeeded", 3, 200)
        assert delivery.delivered_at and delivery.last_error == ""
        assert len(server.received) == 3
        assert len({r["headers"]["X-Lanzuan-Delivery"] for r in server.received}) == 1  # one event id


def test_delivery_gives_up_after_24_hours(tenant_a: Tenant, sync_delivery: list[str]) -> None:
    # nothing listens on this port
    with receiver() as server:
        url = server.url
    endpoint_for(tenant_a, url, ["suppression.added"])
    domain_events.emit(tenant_a.pk, "suppression.added", {"phone_hash": "h"})
    delivery = WebhookDelivery.objects.unscoped(reason="test").get()
    assert webhooks.webhook_delivery_attempt(delivery.pk) == "retry"
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("could not connect") and delivery.response_code is None
    WebhookDelivery.objects.unscoped(reason="test").update(
        next_attempt_at=timezone.now(), give_up_at=timezone.now() + timedelta(seconds=5)
    )
    assert webhooks.webhook_delivery_attempt(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 2, None)
    assert webhooks.webhook_delivery_attempt(delivery.pk) == "skipped"


def test_retry_delays_grow_and_are_capped() -> None:
    for attempt, ceiling in [(1, 30), (2, 60), (3, 120), (8, 3600), (30, 3600)]:
        delay = webhooks.retry_delay(attempt)
        assert ceiling / 2 <= delay <= ceiling


# --- admin --------------------------------------------------------------------------------------


def test_admin_send_again(
    client: Client,
    tenant_a: Tenant,
    alice: User,
    bob: User,
    sync_delivery: list[str],
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with receiver(statuses=[410, 200]) as server:
        endpoint_for(tenant_a, server.url, ["suppression.added"])
        domain_events.emit(
            tenant_a.pk, "suppression.added", {"phone_hash": "h", "phone_masked": "138****8000"}
        )
        delivery = WebhookDelivery.objects.unscoped(reason="test").get()
        webhooks.webhook_delivery_attempt(delivery.pk)
        WebhookDelivery.objects.unscoped(reason="test").update(status="failed", next_attempt_at=None)
        url = reverse("admin:partner_webhookdelivery_changelist")
        action = {"action": "send_again", "_selected_action": [delivery.pk]}

        # a viewer cannot send again
        client.force_login(bob)
        client.post(url, action)
        delivery.refresh_from_db()
        assert delivery.status == "failed"

        # an administrator can: the same event, delivered
        client.force_login(alice)
        page = client.get(url).content.decode()
        assert "send_again" in page
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url, action)
        assert response.status_code == 302
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.response_code) == ("succeeded", 2, 200)
        assert len(server.received) == 2

        # and the change page shows the log
        detail = client.get(
            reverse("admin:partner_webhookdelivery_change", args=[delivery.pk])
        ).content.decode()
        assert "138****8000" in detail and "HTTP" not in detail


def test_admin_endpoint_secret_is_write_only(client: Client, tenant_a: Tenant, alice: User) -> None:
    client.force_login(alice)
    add = reverse("admin:partner_webhookendpoint_add")
    form = {
        "tenant": tenant_a.pk,
        "url": "https://crm.example.com/hooks",
        "description": "CRM",
        "events": ["request.created", "request.completed"],
        "secret": "",
        "is_active": "on",
    }
    response = client.post(add, form, follow=True)
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.for_tenant(tenant_a).get()
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.secret in response.content.decode()  # shown once, in the message
    assert endpoint.events == ["request.created", "request.completed"]

    change = reverse("admin:partner_webhookendpoint_change", args=[endpoint.pk])
    assert endpoint.secret not in client.get(change).content.decode()
    # saving without a secret keeps it; typing one replaces it
    client.post(change, {**form, "description": "CRM v2"})
    endpoint.refresh_from_db()
    assert endpoint.description == "CRM v2" and endpoint.secret.startswith("whsec_")
    client.post(change, {**form, "secret": "a-new-secret-of-some-length"})
    endpoint.refresh_from_db()
    assert endpoint.secret == "a-new-secret-of-some-length"
    # and a plain-http URL elsewhere than this machine is refused
    bad = client.post(add, {**form, "url": "http://crm.example.com/hooks"})
    assert bad.status_code == 200 and WebhookEndpoint.objects.unscoped(reason="test").count() == 1


def test_tenant_b_admin_sees_none_of_a_webhooks(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, charlie: User
) -> None:
    endpoint = endpoint_for(tenant_a, "https://crm-a.example.com/hooks")
    domain_events.emit(tenant_a.pk, "suppression.added", {"phone_hash": "h"})
    delivery = WebhookDelivery.objects.unscoped(reason="test").get()
    client.force_login(charlie)
    endpoints = client.get(reverse("admin:partner_webhookendpoint_changelist")).content.decode()
    deliveries = client.get(reverse("admin:partner_webhookdelivery_changelist")).content.decode()
    assert "crm-a.example.com" not in endpoints and "crm-a.example.com" not in deliveries
    assert client.get(reverse("admin:partner_webhookendpoint_change", args=[endpoint.pk])).status_code == 404
    assert client.get(reverse("admin:partner_webhookdelivery_change", args=[delivery.pk])).status_code == 404


# --- the whole pipeline ---------------------------------------------------------------------------


def test_the_pipeline_delivers_after_commit(
    tenant_a: Tenant,
    outbox: Path,
    pipeline: Pipeline,
) -> None:
    with receiver() as server:
        endpoint_for(tenant_a, server.url, ["request.created", "request.completed"])
        with pipeline():
            with transaction.atomic():
                request = file(tenant_a)
            assert server.received == []  # nothing before the commit
        assert len(server.received) == 2
    events_seen = sorted(json.loads(r["body"])["event"] for r in server.received)
    assert events_seen == ["request.completed", "request.created"]
    assert all(r["valid"] for r in server.received)
    assert {d.status for d in WebhookDelivery.objects.for_tenant(tenant_a)} == {"succeeded"}
    assert all(json.loads(r["body"])["data"]["reference"] == request.reference for r in server.received)


def test_the_documented_verification_snippet_accepts_our_signatures() -> None:
    from unsubscribe.partner.examples import WEBHOOK_DESCRIPTION

    snippet = WEBHOOK_DESCRIPTION.split("```python\n")[1].split("```")[0]
    assert len(snippet.strip().splitlines()) == 5
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    body = b'{"event":"request.created"}'
    headers = signing.signed_headers(SECRET, body)
    timestamp, signature = headers[signing.TIMESTAMP_HEADER], headers[signing.SIGNATURE_HEADER]
    assert namespace["verify"](SECRET, body, timestamp, signature)
    assert not namespace["verify"]("another-secret", body, timestamp, signature)
    assert not namespace["verify"](SECRET, body + b" ", timestamp, signature)
