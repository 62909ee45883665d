"""Notifications: templates, rendering, gateways (against real local HTTP servers),
delivery with retries and dedupe, delivery reports, erasure and the admin."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import include, path, reverse
from django.utils import timezone
from twilio.request_validator import RequestValidator

from lanzuan import signing
from lanzuan.phones import InvalidPhoneNumber, tenant_phone_hash
from notifications.catalogue import EVENT_VARIABLES, LANGUAGE_CODES, Event
from notifications.defaults import DEFAULT_TEXTS
from notifications.gateways import (
    FileGateway,
    OutgoingMessage,
    PermanentGatewayError,
    TransientGatewayError,
    aliyun_rpc_signature,
)
from notifications.models import GatewayConfig, Message, Template
from notifications.rendering import render, sms_length, text_errors
from notifications.services import message_create, message_deliver, notification_send
from notifications.tasks import deliver_message
from unsubscribe.pipeline import datasources

if TYPE_CHECKING:
    from pathlib import Path

    from celery import Celery
    from django.contrib.auth.models import User
    from django.core.mail import EmailMessage
    from django.test import Client
    from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

    from tenants.models import Tenant

# This module is its own URLconf: the project's URLs plus notifications.urls,
# whether or not the root URLconf includes them yet.
urlpatterns = [path("", include("notifications.urls")), path("", include("lanzuan.urls"))]
pytestmark = pytest.mark.urls(__name__)

PHONE = "+8613800138000"
CONTEXT: dict[str, object] = {
    "reference": "K7M2-9QXP",
    "status_url": "https://lz.example/t/a/status/?r=K7M2-9QXP",
}
TWILIO_SID = "AC" + "0" * 32
TWILIO_TOKEN = "twilio-test-token"


def outbox_lines(outbox: Path) -> list[dict[str, Any]]:
    if not outbox.exists():
        return []
    return [json.loads(line) for line in outbox.read_text().splitlines()]


def full_context(event: str) -> dict[str, object]:
    values: dict[str, object] = {
        "code": "482913",
        "reference": "K7M2-9QXP",
        "status_url": "https://lz.example/s",
        "unsubscribe_url": "https://lz.example/u",
        "reason": "endpoint down",
        "admin_url": "https://lz.example/admin/",
        "state": "completed",
        "date": "2025-01-31 08:00",
    }
    return {key: value for key, value in values.items() if key in EVENT_VARIABLES[event]}


# --- a real HTTP server on 127.0.0.1 ---------------------------------------------------

Seen = dict[str, Any]
Responder = Callable[[Seen], tuple[int, Any]]


@contextmanager
def local_server(respond: Responder) -> Iterator[tuple[str, list[Seen]]]:
    """Serves POSTs on a free local port; `respond` checks each request and answers."""
    seen: list[Seen] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = {"path": self.path, "headers": dict(self.headers.items()), "body": body}
            seen.append(request)
            status, payload = respond(request)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


# --- templates and rendering -------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGE_CODES)
@pytest.mark.parametrize("event", Event.values)
def test_defaults_render_for_every_event_and_language(
    tenant_a: Tenant, outbox: Path, event: str, language: str
) -> None:
    # given: the built-in text is valid under the same rules as a tenant's
    default = DEFAULT_TEXTS[(event, language)]
    assert text_errors(default.body, event) == []
    assert text_errors(default.subject, event) == []

    # when
    message = message_create(
        tenant=tenant_a, event=event, to=PHONE, language=language, context=full_context(event)
    )

    # then
    assert message.status == Message.Status.QUEUED
    assert message.language == language
    assert message.template is None
    assert tenant_a.name in message.body
    assert "{" not in message.body and "}" not in message.body
    assert message.subject == ""  # SMS has none
    email = message_create(
        tenant=tenant_a,
        event=event,
        to="x@example.com",
        channel="email",
        language=language,
        context=full_context(event),
    )
    assert email.subject and "{" not in email.subject


def test_confirmation_defaults_are_short() -> None:
    # With a real status link: two UCS-2 parts in Chinese, one GSM-7 message in English.
    values = {"reference": "K7M2-9QXP", "status_url": "https://lanzuan.example.com/t/tenant-a/status/"}
    zh = render(
        DEFAULT_TEXTS[(Event.UNSUBSCRIBE_COMPLETED, "zh-hans")].body,
        {**values, "tenant_name": "运营商A", "stopped": "全部营销信息", "continuing": "无"},
    )
    en = render(
        DEFAULT_TEXTS[(Event.UNSUBSCRIBE_COMPLETED, "en")].body,
        {**values, "tenant_name": "Platform B", "stopped": "all marketing", "continuing": "none"},
    )
    assert sms_length(zh).segments <= 2
    assert (sms_length(en).encoding, sms_length(en).segments) == ("GSM-7", 1)


def test_language_defaults_to_the_tenant_and_accepts_variants(tenant_a: Tenant, tenant_b: Tenant) -> None:
    tenant_b.default_language = "en"
    tenant_b.save()
    assert message_create(tenant=tenant_a, event="clarify", to=PHONE, context={}).language == "zh-hans"
    assert message_create(tenant=tenant_b, event="clarify", to=PHONE, context={}).language == "en"
    assert (
        message_create(tenant=tenant_b, event="clarify", to=PHONE, language="zh-CN", context={}).language
        == "zh-hans"
    )


def test_a_tenant_override_wins(tenant_a: Tenant, tenant_b: Tenant) -> None:
    # given
    own = Template.objects.create(
        tenant=tenant_a,
        event="unsubscribe_completed",
        channel="sms",
        language="zh-hans",
        body="【{tenant_name}】退订成功，参考号 {reference}",
    )

    # when
    mine = message_create(tenant=tenant_a, event="unsubscribe_completed", to=PHONE, context=CONTEXT)
    theirs = message_create(tenant=tenant_b, event="unsubscribe_completed", to=PHONE, context=CONTEXT)
    english = message_create(
        tenant=tenant_a, event="unsubscribe_completed", to=PHONE, language="en", context=CONTEXT
    )

    # then
    assert mine.body == "【运营商 A】退订成功，参考号 K7M2-9QXP"
    assert mine.template == own
    assert theirs.template is None and "已停止向本号码发送" in theirs.body
    assert english.template is None and "Stopped now" in english.body


def test_unknown_variable_is_refused_on_save(tenant_a: Tenant) -> None:
    template = Template(
        tenant=tenant_a, event="otp", channel="sms", language="en", body="Code {code} for {phone}"
    )
    with pytest.raises(ValidationError) as raised:
        template.full_clean()
    assert "{phone}" in str(raised.value.message_dict["body"])


@pytest.mark.parametrize(
    "body",
    ["{reference.__class__}", "{reference!r}", "{reference:>40}", "{0}", "{}", "unbalanced {reference"],
)
def test_only_plain_variables_are_allowed(tenant_a: Tenant, body: str) -> None:
    template = Template(
        tenant=tenant_a, event="unsubscribe_completed", channel="sms", language="en", body=body
    )
    with pytest.raises(ValidationError):
        template.full_clean()


def test_confirmations_refuse_literal_links(tenant_a: Tenant) -> None:
    template = Template(
        tenant=tenant_a,
        event="unsubscribe_completed",
        channel="sms",
        language="en",
        body="{tenant_name}: done. Deals at https://shop.example/sale",
    )
    with pytest.raises(ValidationError):
        template.full_clean()
    template.body = "{tenant_name}: done. Status: {status_url}. Use {{braces}} freely."
    template.full_clean()


def test_template_changes_are_kept_in_history(tenant_a: Tenant) -> None:
    template = Template.objects.create(
        tenant=tenant_a, event="help", language="en", body="{tenant_name}: help"
    )
    template.body = "{tenant_name}: reply STOP"
    template.save()
    assert [h.body for h in template.history.order_by("history_date")] == [
        "{tenant_name}: help",
        "{tenant_name}: reply STOP",
    ]


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("{" * 80, "GSM-7", 1),  # extension characters take two septets
        ("{" * 81, "GSM-7", 2),
        ("退" * 70, "UCS-2", 1),
        ("退" * 71, "UCS-2", 2),
        ("退" * 134, "UCS-2", 2),
        ("退" * 135, "UCS-2", 3),
        ("", "GSM-7", 0),
    ],
)
def test_sms_segments(text: str, encoding: str, segments: int) -> None:
    length = sms_length(text)
    assert (length.encoding, length.segments) == (encoding, segments)


def test_unknown_event_or_missing_variable_is_a_value_error(tenant_a: Tenant) -> None:
    with pytest.raises(ValueError, match="unknown event"):
        message_create(tenant=tenant_a, event="promo", to=PHONE, context={})
    with pytest.raises(ValueError, match="no value for the variable"):
        message_create(tenant=tenant_a, event="otp", to=PHONE, context={})  # no code
    with pytest.raises(InvalidPhoneNumber):
        message_create(tenant=tenant_a, event="otp", to="12", context={"code": "1"})


# --- the admin ------------------------------------------------------------------------------


def test_admin_add_form_refuses_an_unknown_variable(client: Client, alice: User, tenant_a: Tenant) -> None:
    client.force_login(alice)
    response = client.post(
        reverse("admin:notifications_template_add"),
        {
            "tenant": tenant_a.pk,
            "event": "unsubscribe_completed",
            "channel": "sms",
            "language": "zh-hans",
            "subject": "",
            "body": "【{tenant_name}】已退订 {refrence}",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "{refrence}" in str(errors["body"])
    assert not Template.objects.unscoped(reason="test").exists()


def test_admin_change_page_shows_preview_and_segments(client: Client, alice: User, tenant_a: Tenant) -> None:
    template = Template.objects.create(
        tenant=tenant_a,
        event="unsubscribe_completed",
        channel="sms",
        language="zh-hans",
        body="【{tenant_name}】您已退订，参考号 {reference}",
    )
    client.force_login(alice)

    response = client.get(
        reverse("admin:notifications_template_change", args=[template.pk]), HTTP_ACCEPT_LANGUAGE="en"
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "【运营商 A】您已退订，参考号 K7M2-9QXP" in page  # rendered with sample values
    assert "25 characters" in page
    assert "1 SMS segment" in page and "UCS-2" in page
    assert "notifications/template_preview.js" in page


def test_admin_live_preview_renders_what_is_typed(
    client: Client, alice: User, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    client.force_login(alice)
    url = reverse("admin:notifications_template_preview")

    response = client.post(
        url,
        {
            "tenant": tenant_a.pk,
            "event": "help",
            "channel": "sms",
            "language": "en",
            "body": "{tenant_name}: " + "x" * 200,
        },
        HTTP_ACCEPT_LANGUAGE="en",
    )
    html = response.json()["html"]
    assert "运营商 A" in html and "4 SMS segments" in html and "UCS-2" in html  # the name is Chinese
    latin = client.post(
        url, {"event": "help", "channel": "sms", "body": "Reply STOP " + "x" * 200}, HTTP_ACCEPT_LANGUAGE="en"
    ).json()
    assert "2 SMS segments" in latin["html"] and "GSM-7" in latin["html"]

    bad = client.post(url, {"event": "help", "channel": "sms", "body": "{nope}"}).json()["html"]
    assert "errorlist" in bad and "{nope}" in bad
    # another tenant's name is not lent to the preview
    other = client.post(url, {"tenant": tenant_b.pk, "event": "clarify", "body": "{tenant_name}"}).json()
    assert "Platform B" not in other["html"]


def test_gateway_secret_is_write_only(client: Client, alice: User, tenant_a: Tenant) -> None:
    client.force_login(alice)
    form = {
        "tenant": tenant_a.pk,
        "channel": "sms",
        "kind": "twilio",
        "is_active": "on",
        "sender_id": "+15005550006",
        "template_code": "",
        "template_codes": "{}",
        "endpoint": "",
        "account_id": TWILIO_SID,
        "secret": "s3cret-token-value",
    }
    response = client.post(reverse("admin:notifications_gatewayconfig_add"), form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    config = GatewayConfig.objects.unscoped(reason="test").get()
    assert config.secret == "s3cret-token-value"

    change_url = reverse("admin:notifications_gatewayconfig_change", args=[config.pk])
    assert "s3cret-token-value" not in client.get(change_url).content.decode()

    # blank keeps the old secret; the history never holds it
    client.post(change_url, {**form, "secret": "", "sender_id": "+15005550007"})
    config.refresh_from_db()
    assert (config.sender_id, config.secret) == ("+15005550007", "s3cret-token-value")
    assert not hasattr(config.history.first(), "secret")


def test_messages_are_read_only_and_scoped_in_the_admin(
    client: Client, alice: User, bob: User, charlie: User, tenant_a: Tenant
) -> None:
    message = message_create(tenant=tenant_a, event="clarify", to=PHONE, context={})
    change_url = reverse("admin:notifications_message_change", args=[message.pk])

    client.force_login(bob)  # a viewer
    assert client.get(reverse("admin:notifications_message_changelist")).status_code == 200
    page = client.get(change_url).content.decode()
    assert "138****8000" in page and PHONE not in page and "13800138000" not in page
    assert client.get(reverse("admin:notifications_message_add")).status_code == 403

    client.force_login(alice)  # an administrator cannot edit a record either
    client.post(change_url, {"body": "edited"})
    message.refresh_from_db()
    assert message.body != "edited"
    # searching by the full number finds it through the hash
    found = client.get(reverse("admin:notifications_message_changelist"), {"q": "138 0013 8000"})
    assert "138****8000" in found.content.decode()

    client.force_login(charlie)  # another tenant's administrator
    assert client.get(change_url).status_code == 404


def test_history_pages(client: Client, alice: User, tenant_a: Tenant) -> None:
    template = Template.objects.create(
        tenant=tenant_a, event="help", language="en", body="{tenant_name}: help"
    )
    message = message_create(tenant=tenant_a, event="clarify", to=PHONE, context={})
    client.force_login(alice)

    history = client.get(reverse("admin:notifications_template_history", args=[template.pk]))
    assert history.status_code == 200
    assert client.get(reverse("admin:notifications_message_history", args=[message.pk])).status_code == 200


# --- delivery ---------------------------------------------------------------------------------


def test_file_gateway_writes_the_exact_json_keys(tenant_a: Tenant, outbox: Path) -> None:
    sms = message_create(tenant=tenant_a, event="unsubscribe_completed", to=PHONE, context=CONTEXT)
    email = message_create(
        tenant=tenant_a,
        event="unsubscribe_completed",
        to="Alice@Example.com",
        channel="email",
        context=CONTEXT,
    )

    message_deliver(sms.pk)
    message_deliver(email.pk)

    first, second = outbox_lines(outbox)
    assert set(first) == {"to", "channel", "body", "tenant", "sent_at"}
    assert first["to"] == PHONE and first["channel"] == "sms" and first["tenant"] == "tenant-a"
    assert first["body"] == sms.body
    assert datetime.fromisoformat(first["sent_at"]).tzinfo is not None
    assert set(second) == {"to", "channel", "body", "tenant", "sent_at", "subject"}
    assert second["to"] == "Alice@Example.com"


def test_final_status_drops_the_recipient_and_keeps_hash_and_mask(tenant_a: Tenant, outbox: Path) -> None:
    message = message_create(tenant=tenant_a, event="clarify", to="138 0013 8000", context={})
    assert message.to == PHONE

    message = message_deliver(message.pk)

    assert message.status == Message.Status.SENT and message.sent_at and message.attempts == 1
    assert message.to == ""
    assert message.to_hash == tenant_phone_hash(tenant_a.pk, PHONE) and message.to_masked == "138****8000"
    assert message.gateway == "file" and message.provider_message_id.startswith("file-")
    email = message_create(
        tenant=tenant_a, event="clarify", to="Alice@Example.COM", channel="email", context={}
    )
    assert (
        email.to_hash == tenant_phone_hash(tenant_a.pk, "alice@example.com")
        and email.to_masked == "A***@Example.COM"
    )


def test_exactly_one_confirmation_when_the_send_is_retried(tenant_a: Tenant, outbox: Path) -> None:
    # given: the gateway accepted the message
    message = message_create(
        tenant=tenant_a, event="unsubscribe_completed", to=PHONE, context=CONTEXT, dedupe_key="confirm:1"
    )
    message_deliver(message.pk)

    # when: the caller retries, the task runs again, and the request files it again
    again = message_deliver(message.pk)
    deliver_message.apply(args=(message.pk,))
    same = message_create(
        tenant=tenant_a, event="unsubscribe_completed", to=PHONE, context=CONTEXT, dedupe_key="confirm:1"
    )
    message_deliver(same.pk)

    # then
    assert same.pk == message.pk and again.status == Message.Status.SENT
    assert len(outbox_lines(outbox)) == 1
    assert Message.objects.unscoped(reason="test").count() == 1
    message.refresh_from_db()
    assert message.attempts == 1


def test_notification_send_enqueues_after_commit_once(
    tenant_a: Tenant,
    outbox: Path,
    eager_celery: Celery,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        message = notification_send(
            tenant=tenant_a, event="unsubscribe_completed", to=PHONE, context=CONTEXT, dedupe_key="c:1"
        )
        notification_send(
            tenant=tenant_a, event="unsubscribe_completed", to=PHONE, context=CONTEXT, dedupe_key="c:1"
        )
    assert outbox_lines(outbox) == []  # nothing leaves before the commit
    assert len(callbacks) == 1

    callbacks[0]()

    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert len(outbox_lines(outbox)) == 1


def test_the_sweep_dispatches_a_message_whose_task_was_lost(
    tenant_a: Tenant, outbox: Path, eager_celery: Celery
) -> None:
    from notifications.services import messages_sweep

    message = notification_send(
        tenant=tenant_a, event="clarify", to=PHONE, context={}
    )  # on_commit never runs
    fresh = notification_send(tenant=tenant_a, event="help", to=PHONE, context={})
    Message.objects.unscoped(reason="test").filter(pk=message.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=10)
    )

    assert messages_sweep() == {"dispatched": 1}

    message.refresh_from_db()
    fresh.refresh_from_db()
    assert (message.status, fresh.status) == ("sent", "queued")
    assert len(outbox_lines(outbox)) == 1


def test_a_stale_claim_is_taken_over_and_sent_once(tenant_a: Tenant, outbox: Path) -> None:
    # A worker claimed the message and died before the gateway took it: the next try
    # after the lease sends it (once), rather than failing it.
    message = message_create(tenant=tenant_a, event="clarify", to=PHONE, context={})
    Message.objects.unscoped(reason="test").filter(pk=message.pk).update(
        claimed_at=timezone.now() - timedelta(hours=1), attempts=1
    )

    message = message_deliver(message.pk)

    assert (message.status, message.attempts, message.to) == (Message.Status.SENT, 2, "")
    assert len(outbox_lines(outbox)) == 1


def test_a_stale_claim_the_provider_took_is_not_sent_again(tenant_a: Tenant, outbox: Path) -> None:
    # The worker died after the gateway took the message: the file gateway finds it in its
    # outbox (as Aliyun finds its OutId), so the take-over records it without a second send.
    message = message_create(tenant=tenant_a, event="clarify", to=PHONE, context={})
    claimed_at = timezone.now() - timedelta(hours=1)
    FileGateway(outbox).send(
        OutgoingMessage(message.pk, "tenant-a", "sms", "clarify", "zh-hans", PHONE, message.body)
    )
    Message.objects.unscoped(reason="test").filter(pk=message.pk).update(claimed_at=claimed_at, attempts=1)

    message = message_deliver(message.pk)

    assert message.status == Message.Status.SENT and message.provider_message_id.startswith("file-")
    assert len(outbox_lines(outbox)) == 1


def test_a_stale_claim_past_the_attempt_limit_is_failed(tenant_a: Tenant, outbox: Path) -> None:
    message = message_create(tenant=tenant_a, event="clarify", to=PHONE, context={})
    Message.objects.unscoped(reason="test").filter(pk=message.pk).update(
        claimed_at=timezone.now() - timedelta(hours=1), attempts=5
    )

    with pytest.raises(PermanentGatewayError):
        message_deliver(message.pk)

    message.refresh_from_db()
    assert message.status == Message.Status.FAILED and message.to == ""
    assert "gave up after 5 attempts" in message.error
    assert outbox_lines(outbox) == []


def test_a_claim_in_flight_is_not_sent_twice(tenant_a: Tenant, outbox: Path) -> None:
    message = message_create(tenant=tenant_a, event="clarify", to=PHONE, context={})
    Message.objects.unscoped(reason="test").filter(pk=message.pk).update(
        claimed_at=timezone.now(), attempts=1
    )

    with pytest.raises(TransientGatewayError):
        message_deliver(message.pk)
    assert outbox_lines(outbox) == []


def test_otp_code_is_never_stored(client: Client, root: User, tenant_a: Tenant, outbox: Path) -> None:
    code = "739146"

    message = notification_send(tenant=tenant_a, event="otp", to=PHONE, context={"code": code})
    message_deliver(message.pk)

    # the person got the code ...
    assert code in outbox_lines(outbox)[0]["body"]
    # ... but no row of any table holds it
    message.refresh_from_db()
    assert message.body == "【运营商 A】验证码 ******，5分钟内有效。如非本人操作请忽略。"
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            for row in cursor.fetchall():
                assert code not in repr(row), table
    client.force_login(root)
    page = client.get(reverse("admin:notifications_message_change", args=[message.pk])).content.decode()
    assert "******" in page and code not in page


def test_an_otp_that_waited_past_its_validity_is_not_sent(tenant_a: Tenant, outbox: Path) -> None:
    from django.core.cache import cache

    message = message_create(tenant=tenant_a, event="otp", to=PHONE, context={"code": "123456"})
    cache.delete(f"notifications:secret-message:{message.secret_ref}")  # as if it expired

    with pytest.raises(PermanentGatewayError):
        message_deliver(message.pk)
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED and "expired" in message.error
    assert outbox_lines(outbox) == []


# --- gateways against real local servers -------------------------------------------------------


def http_gateway(
    tenant: Tenant, url: str, secret: str = "http-secret", channel: str = "sms"
) -> GatewayConfig:
    return GatewayConfig.objects.create(
        tenant=tenant, channel=channel, kind="http", endpoint=url, secret=secret, account_id="key-1"
    )


def verify_lanzuan_signature(request: Seen, secret: str) -> bool:
    timestamp = request["headers"]["X-Lanzuan-Timestamp"]
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + request["body"], hashlib.sha256)
    expected = "v1=" + mac.hexdigest()  # the project's versioned scheme (lanzuan.signing)
    fresh = abs(time.time() - int(timestamp)) < 300
    return fresh and hmac.compare_digest(expected, request["headers"]["X-Lanzuan-Signature"])


def test_generic_gateway_is_signed_and_verified_by_the_receiver(tenant_a: Tenant) -> None:
    def receiver(request: Seen) -> tuple[int, Any]:
        if not verify_lanzuan_signature(request, "http-secret"):
            return 401, {"error": "bad signature"}
        return 200, {"id": "gw-42"}

    with local_server(receiver) as (url, seen):
        http_gateway(tenant_a, url + "/send")
        message = message_create(tenant=tenant_a, event="unsubscribe_completed", to=PHONE, context=CONTEXT)
        message = message_deliver(message.pk)

    assert message.status == Message.Status.SENT and message.provider_message_id == "gw-42"
    (request,) = seen
    payload = json.loads(request["body"])
    headers = request["headers"]
    assert signing.verify(
        "http-secret", headers["X-Lanzuan-Timestamp"], request["body"], headers["X-Lanzuan-Signature"]
    )
    assert request["path"] == "/send"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["Idempotency-Key"] == f"lanzuan-message-{message.pk}"
    assert payload["to"] == PHONE and payload["tenant"] == "tenant-a" and payload["body"] == message.body


def test_generic_gateway_wrong_secret_is_a_permanent_failure(tenant_a: Tenant) -> None:
    with local_server(lambda r: (200, {}) if verify_lanzuan_signature(r, "other") else (401, {})) as (
        url,
        _seen,
    ):
        http_gateway(tenant_a, url)
        message = message_create(tenant=tenant_a, event="clarify", to=PHONE, context={})
        with pytest.raises(PermanentGatewayError):
            message_deliver(message.pk)
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED and "401" in message.error and message.to == ""


def test_a_failing_gateway_is_retried_then_marked_failed(tenant_a: Tenant) -> None:
    with local_server(lambda request: (503, {"error": "down"})) as (url, seen):
        http_gateway(tenant_a, url)
        message = message_create(tenant=tenant_a, event="unsubscribe_completed", to=PHONE, context=CONTEXT)

        deliver_message.apply(args=(message.pk,))  # Celery runs its retries in-process

    assert len(seen) == 5
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert message.attempts == 5
    assert "503" in message.error and "gave up after 5 attempts" in message.error
    assert message.to == "" and message.failed_at


def test_a_transient_failure_is_retried_until_it_is_sent(tenant_a: Tenant) -> None:
    answers = iter([(503, {}), (429, {}), (200, {"id": "third-time"})])
    with local_server(lambda request: next(answers)) as (url, seen):
        http_gateway(tenant_a, url)
        message = message_create(tenant=tenant_a, event="unsubscribe_completed", to=PHONE, context=CONTEXT)

        deliver_message.apply(args=(message.pk,))

    message.refresh_from_db()
    assert len(seen) == 3
    assert (message.status, message.attempts, message.provider_message_id) == ("sent", 3, "third-time")


def test_transient_failure_leaves_the_message_queued(tenant_a: Tenant) -> None:
    with local_server(lambda request: (500, {})) as (url, _seen):
        http_gateway(tenant_a, url)
        message = message_create(tenant=tenant_a, event="clarify", to=PHONE, context={})
        with pytest.raises(TransientGatewayError):
            message_deliver(message.pk)
    message.refresh_from_db()
    assert (message.status, message.attempts, message.to) == ("queued", 1, PHONE)
    assert "HTTP 500" in message.error and message.claimed_at is None


def twilio_gateway(tenant: Tenant, url: str) -> GatewayConfig:
    return GatewayConfig.objects.create(
        tenant=tenant,
        channel="sms",
        kind="twilio",
        endpoint=url,
        account_id=TWILIO_SID,
        secret=TWILIO_TOKEN,
        sender_id="+15005550006",
    )


def fake_twilio(request: Seen) -> tuple[int, Any]:
    """Twilio's Messages API, as far as the shape and the credentials go."""
    expected_auth = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    if request["headers"].get("Authorization") != expected_auth:
        return 401, {"code": 20003, "message": "Authenticate", "status": 401}
    if request["path"] != f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json":
        return 404, {"code": 20404, "message": "Not found", "status": 404}
    form = dict(parse_qsl(request["body"].decode()))
    if not (form.get("To", "").startswith("+") and form.get("From") and form.get("Body")):
        return 400, {"code": 21604, "message": "missing parameter", "status": 400}
    if form["To"] == "+8613900139000":
        return 400, {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}
    return 201, {
        "sid": "SM" + "1" * 32,
        "status": "queued",
        "to": form["To"],
        "from": form["From"],
        "body": form["Body"],
        "account_sid": TWILIO_SID,
    }


def test_twilio_gateway_against_a_local_server(tenant_a: Tenant, settings: Settings) -> None:
    with local_server(fake_twilio) as (url, seen):
        twilio_gateway(tenant_a, url)
        message = message_create(tenant=tenant_a, event="unsubscribe_completed", to=PHONE, context=CONTEXT)
        message = message_deliver(message.pk)

    assert message.status == Message.Status.SENT
    assert message.provider_message_id == "SM" + "1" * 32 and message.gateway == "twilio"
    form = dict(parse_qsl(seen[0]["body"].decode()))
    assert form["To"] == PHONE and form["From"] == "+15005550006" and form["Body"] == message.body
    assert form["StatusCallback"] == settings.PUBLIC_BASE_URL + "/hooks/notifications/twilio/status/"


def test_twilio_refusal_is_permanent(tenant_a: Tenant) -> None:
    with local_server(fake_twilio) as (url, _seen):
        twilio_gateway(tenant_a, url)
        message = message_create(tenant=tenant_a, event="clarify", to="+8613900139000", context={})
        with pytest.raises(PermanentGatewayError):
            message_deliver(message.pk)
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED and "21211" in message.error


def test_twilio_status_callback_updates_the_status(
    client: Client, tenant_a: Tenant, settings: Settings
) -> None:
    with local_server(fake_twilio) as (url, _seen):
        twilio_gateway(tenant_a, url)
        message = message_create(tenant=tenant_a, event="clarify", to=PHONE, context={})
        message = message_deliver(message.pk)
    callback = "/hooks/notifications/twilio/status/"
    params = {
        "MessageSid": message.provider_message_id,
        "MessageStatus": "delivered",
        "AccountSid": TWILIO_SID,
    }
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(settings.PUBLIC_BASE_URL + callback, params)

    forged = client.post(callback, {**params, "MessageStatus": "failed"}, HTTP_X_TWILIO_SIGNATURE=signature)
    assert forged.status_code == 403
    message.refresh_from_db()
    assert message.status == Message.Status.SENT

    response = client.post(callback, params, HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 204
    message.refresh_from_db()
    assert message.status == Message.Status.DELIVERED and message.delivered_at

    # a late, out-of-order "sent" does not move it back
    late = {**params, "MessageStatus": "sent"}
    late_signature = RequestValidator(TWILIO_TOKEN).compute_signature(
        settings.PUBLIC_BASE_URL + callback, late
    )
    client.post(callback, late, HTTP_X_TWILIO_SIGNATURE=late_signature)
    message.refresh_from_db()
    assert message.status == Message.Status.DELIVERED


def pop_encode(value: str) -> str:
    return quote(value, safe="-_.~")


def aliyun_server_signature(params: dict[str, str], secret: str) -> str:
    """Written from Aliyun's RPC signature documentation, independently of the gateway."""
    canonical = "&".join(f"{pop_encode(k)}={pop_encode(v)}" for k, v in sorted(params.items()))
    to_sign = "POST&" + pop_encode("/") + "&" + pop_encode(canonical)
    return base64.b64encode(hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()).decode()


def test_aliyun_signature_matches_the_documented_example() -> None:
    params = {
        "AccessKeyId": "testId",
        "Action": "SendSms",
        "Format": "XML",
        "OutId": "123",
        "PhoneNumbers": "15300000001",
        "RegionId": "cn-hangzhou",
        "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_71390007",
        "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z",
        "Version": "2017-05-25",
    }
    assert aliyun_rpc_signature(params, "testSecret", method="GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_aliyun_gateway_against_a_local_server(tenant_a: Tenant) -> None:
    def fake_aliyun(request: Seen) -> tuple[int, Any]:
        params = dict(parse_qsl(request["body"].decode(), keep_blank_values=True))
        signature = params.pop("Signature", "")
        if signature != aliyun_server_signature(params, "aliyun-secret"):
            return 400, {"Code": "SignatureDoesNotMatch", "Message": "bad signature"}
        if params["AccessKeyId"] != "LTAI-test" or params["Action"] != "SendSms":
            return 400, {"Code": "InvalidAccessKeyId.NotFound"}
        return 200, {"Code": "OK", "Message": "OK", "BizId": "900619746936498440^0", "RequestId": "F655A8D5"}

    with local_server(fake_aliyun) as (url, seen):
        GatewayConfig.objects.create(
            tenant=tenant_a,
            channel="sms",
            kind="aliyun",
            endpoint=url + "/",
            account_id="LTAI-test",
            secret="aliyun-secret",
            sender_id="运营商A",
            template_code="SMS_200",
            template_codes={"unsubscribe_completed": "SMS_100"},
        )
        message = message_create(tenant=tenant_a, event="unsubscribe_completed", to=PHONE, context=CONTEXT)
        message = message_deliver(message.pk)

    assert message.status == Message.Status.SENT and message.provider_message_id == "900619746936498440^0"
    params = dict(parse_qsl(seen[0]["body"].decode()))
    assert params["PhoneNumbers"] == "13800138000"
    assert params["SignName"] == "运营商A" and params["TemplateCode"] == "SMS_100"
    assert params["SignatureMethod"] == "HMAC-SHA1" and params["Version"] == "2017-05-25"
    assert json.loads(params["TemplateParam"])["reference"] == "K7M2-9QXP"


def test_aliyun_throttling_is_transient_and_bad_template_permanent(tenant_a: Tenant) -> None:
    answers = iter(
        [(200, {"Code": "isv.BUSINESS_LIMIT_CONTROL"}), (200, {"Code": "isv.SMS_TEMPLATE_ILLEGAL"})]
    )
    with local_server(lambda request: next(answers)) as (url, _seen):
        GatewayConfig.objects.create(
            tenant=tenant_a,
            channel="sms",
            kind="aliyun",
            endpoint=url,
            account_id="LTAI-test",
            secret="s",
            sender_id="运营商A",
            template_code="SMS_200",
        )
        message = message_create(tenant=tenant_a, event="clarify", to=PHONE, context={})
        with pytest.raises(TransientGatewayError):
            message_deliver(message.pk)
        with pytest.raises(PermanentGatewayError):
            message_deliver(message.pk)


def test_smtp_gateway_uses_django_email(tenant_a: Tenant, mailoutbox: list[EmailMessage]) -> None:
    GatewayConfig.objects.create(tenant=tenant_a, channel="email", kind="smtp", sender_id="noreply@a.example")
    message = message_create(
        tenant=tenant_a,
        event="unsubscribe_completed",
        to="alice@example.com",
        channel="email",
        context=CONTEXT,
    )

    message = message_deliver(message.pk)

    (email,) = mailoutbox
    assert email.to == ["alice@example.com"] and email.from_email == "noreply@a.example"
    assert email.subject == "【运营商 A】退订已生效：您选择退订的营销信息" and "K7M2-9QXP" in email.body
    assert message.provider_message_id == email.extra_headers["Message-ID"]


def test_gateway_config_is_validated_per_kind(tenant_a: Tenant) -> None:
    with pytest.raises(ValidationError) as raised:
        GatewayConfig(tenant=tenant_a, channel="email", kind="aliyun").full_clean()
    assert {"kind", "sender_id", "account_id", "secret", "template_code"} <= set(raised.value.message_dict)
    with pytest.raises(ValidationError):
        GatewayConfig(
            tenant=tenant_a, channel="sms", kind="http", endpoint="ftp://x", secret="s"
        ).full_clean()


# --- erasure --------------------------------------------------------------------------------------


def test_erasure_clears_the_number_from_the_tenants_messages(tenant_a: Tenant, tenant_b: Tenant) -> None:
    queued = message_create(tenant=tenant_a, event="clarify", to=PHONE, context={})
    other_number = message_create(tenant=tenant_a, event="clarify", to="+8613900139000", context={})
    other_tenant = message_create(tenant=tenant_b, event="clarify", to=PHONE, context={})
    request = SimpleNamespace(tenant_id=tenant_a.pk, phone_hash=tenant_phone_hash(tenant_a.pk, PHONE))

    erase = datasources.get_source("notifications.messages").erase
    assert erase is not None
    receipt = erase(request)  # type: ignore[arg-type]  # a stand-in: erasers read only these two fields

    assert receipt == datasources.Receipt.of(("copies_cleared", 1))
    for message, to in [(queued, ""), (other_number, "+8613900139000"), (other_tenant, PHONE)]:
        message.refresh_from_db()
        assert message.to == to
    with pytest.raises(PermanentGatewayError):  # nothing left to send to
        message_deliver(queued.pk)
