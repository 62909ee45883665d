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
