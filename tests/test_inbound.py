"""Reply SMS webhooks (Twilio, Aliyun MO push, generic signed JSON), what each reply causes,
the configure_inbound command and the admin. Every request goes through the Django test
client with real signatures: Twilio's own RequestValidator, lanzuan.signing."""

from __future__ import annotations

import json
import threading
import time
from io import StringIO
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from twilio.request_validator import RequestValidator

from lanzuan import signing
from lanzuan.phones import tenant_phone_hash
from notifications.models import Message
from tenants.models import Tenant
from tests.pipeline_helpers import thread_like_the_test
from unsubscribe.inbound import selectors as inbound_selectors
from unsubscribe.inbound.models import Action, InboundCredential, InboundMessage, ReplyRoute
from unsubscribe.inbound.services import (
    guess_language,
    inbound_credential_set,
    inbound_message_receive,
)
from unsubscribe.models import ChannelSetting, Service, Suppression, UnsubscribeRequest
from unsubscribe.pipeline import datasources
from unsubscribe.suppressions.selectors import suppression_status

if TYPE_CHECKING:
    from pathlib import Path

    from celery import Celery
    from django.contrib.auth.models import User
    from django.test import Client
    from django.test.client import _MonkeyPatchedWSGIResponse as Response
    from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

PUBLIC = "https://lz.example"
PHONE = "+8613800138000"
OTHER_PHONE = "+8613900139000"
TWILIO_TOKEN = "twilio-auth-token-for-tests"
ALIYUN_TOKEN = "aliyun-push-token-for-tests"
GENERIC_SECRET = "generic-hmac-secret-for-tests"


def hook(tenant: Tenant, provider: str) -> str:
    return reverse("inbound:sms-hook", kwargs={"tenant_slug": tenant.slug, "provider": provider})


def outbox_lines(outbox: Path) -> list[dict[str, Any]]:
    if not outbox.exists():
        return []
    return [json.loads(line) for line in outbox.read_text().splitlines()]


@pytest.fixture(autouse=True)
def english(client: Client) -> None:
    """Reasons and admin texts in English, whatever translations exist."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


@pytest.fixture
def public_url(settings: Settings) -> str:
    settings.PUBLIC_BASE_URL = PUBLIC
    return PUBLIC


@pytest.fixture
def twilio_a(tenant_a: Tenant) -> InboundCredential:
    return inbound_credential_set(tenant=tenant_a, provider="twilio", secret=TWILIO_TOKEN)


@pytest.fixture
def aliyun_a(tenant_a: Tenant) -> InboundCredential:
    return inbound_credential_set(tenant=tenant_a, provider="aliyun", secret=ALIYUN_TOKEN)


@pytest.fixture
def generic_a(tenant_a: Tenant) -> InboundCredential:
    return inbound_credential_set(tenant=tenant_a, provider="generic", secret=GENERIC_SECRET)


def post_twilio(
    client: Client,
    tenant: Tenant,
    params: dict[str, str],
    *,
    token: str = TWILIO_TOKEN,
    signature: str | None = None,
) -> Response:
    url = hook(tenant, "twilio")
    if signature is None:
        signature = RequestValidator(token).compute_signature(PUBLIC + url, params)
    return client.post(url, params, HTTP_X_TWILIO_SIGNATURE=signature)


def twilio_params(
    body: str, sid: str = "SM0001", sender: str = PHONE, to: str = "+14155550100"
) -> dict[str, str]:
    return {"From": sender, "To": to, "Body": body, "MessageSid": sid, "AccountSid": "AC" + "0" * 32}


def post_aliyun(
    client: Client,
    tenant: Tenant,
    messages: list[dict[str, Any]],
    *,
    token: str | None = ALIYUN_TOKEN,
    **extra: Any,
) -> Response:
    url = hook(tenant, "aliyun")
    if token is not None:
        url += "?" + urlencode({"token": token})
    return client.post(
        url, json.dumps(messages, ensure_ascii=False), content_type="application/json", **extra
    )


def aliyun_message(
    content: str, seq: int, phone: str = "13800138000", dest_code: str = "1234"
) -> dict[str, Any]:
    return {
        "phone_number": phone,
        "content": content,
        "send_time": "2025-03-01 10:00:00",
        "dest_code": dest_code,
        "sequence_id": seq,
        "sign_name": "运营商A",
    }


def post_generic(
    client: Client,
    tenant: Tenant,
    payload: Any,
    *,
    secret: str = GENERIC_SECRET,
    now: float | None = None,
    raw: bytes | None = None,
) -> Response:
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = signing.signed_headers(secret, body, now=now)
    return client.post(
        hook(tenant, "generic"),
        body,
        content_type="application/json",
        HTTP_X_LANZUAN_TIMESTAMP=headers[signing.TIMESTAMP_HEADER],
        HTTP_X_LANZUAN_SIGNATURE=headers[signing.SIGNATURE_HEADER],
    )


def generic_payload(
    text: str, message_id: str = "g-1", sender: str = PHONE, to: str = "10690001"
) -> dict[str, Any]:
    return {"from": sender, "to": to, "text": text, "message_id": message_id, "timestamp": int(time.time())}


# --- Twilio ---------------------------------------------------------------------------------


def test_twilio_signed_td_files_a_request_and_suppresses_at_once(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    # when a correctly signed "TD" arrives
    response = post_twilio(client, tenant_a, twilio_params("TD"))

    # then Twilio gets empty TwiML, and the number reads as suppressed before any worker ran
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert b"<Response" in response.content
    assert suppression_status(tenant=tenant_a, phone=PHONE).suppressed

    message = InboundMessage.objects.for_tenant(tenant_a).get()
    assert (message.intent, message.action) == ("unsubscribe", Action.UNSUBSCRIBE)
    assert message.confidence > 0.9 and "td" in message.matched_rule
    # filed: the request holds the number, the reply keeps only hash and mask (review F3)
    assert message.from_number == "" and message.from_masked == "138****8000"
    assert message.from_hash == tenant_phone_hash(tenant_a.pk, PHONE)
    request = message.request
    assert request is not None and request.scope_all
    assert (request.channel, request.verification_method) == ("sms", "sms_origin")
    assert request.verification_evidence == {
        "provider": "twilio",
        "message_id": "SM0001",
        "to": "+14155550100",
    }
    assert request.language == "zh-hans"  # "TD" is the Chinese carriers' code: the tenant's language
    assert not message.flagged_for_attention


@pytest.mark.parametrize("signature", ["", "bm90IGEgc2lnbmF0dXJl", "wrong-token"])
def test_twilio_bad_or_missing_signature_is_403_and_stores_nothing(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str, signature: str
) -> None:
    if signature == "wrong-token":
        signature = RequestValidator("someone-else").compute_signature(
            PUBLIC + hook(tenant_a, "twilio"), twilio_params("TD")
        )
    response = post_twilio(client, tenant_a, twilio_params("TD"), signature=signature)
    assert response.status_code == 403
    assert InboundMessage.objects.unscoped(reason="test").count() == 0
    assert UnsubscribeRequest.objects.unscoped(reason="test").count() == 0


def test_twilio_signature_over_another_url_is_refused(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    inbound_credential_set(tenant=tenant_b, provider="twilio", secret=TWILIO_TOKEN)
    params = twilio_params("TD")
    # signed for tenant A's URL, replayed to tenant B's
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC + hook(tenant_a, "twilio"), params)
    response = client.post(hook(tenant_b, "twilio"), params, HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 403


def test_twilio_without_public_base_url_checks_the_url_we_were_called_at(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, settings: Settings
) -> None:
    settings.PUBLIC_BASE_URL = ""
    params = twilio_params("STOP", sender="+12025550123")  # a US number: STOP is answered in English
    url = hook(tenant_a, "twilio")
    signature = RequestValidator(TWILIO_TOKEN).compute_signature("http://testserver" + url, params)
    assert client.post(url, params, HTTP_X_TWILIO_SIGNATURE=signature).status_code == 200
    request = InboundMessage.objects.for_tenant(tenant_a).get().request
    assert request is not None
    assert request.language == "en"


def test_twilio_without_message_sid_is_400(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    params = twilio_params("TD")
    del params["MessageSid"]
    response = post_twilio(client, tenant_a, params)
    assert response.status_code == 400
    assert "MessageSid" in response.json()["message"]


# --- Aliyun ---------------------------------------------------------------------------------


def test_aliyun_batch_files_one_request_and_sends_one_help_reply(
    client: Client,
    tenant_a: Tenant,
    aliyun_a: InboundCredential,
    outbox: Path,
    eager_celery: Celery,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    batch = [aliyun_message("退订", 1001), aliyun_message("HELP", 1002, phone="13900139000")]
    with django_capture_on_commit_callbacks(execute=True):
        response = post_aliyun(client, tenant_a, batch)

    assert response.status_code == 200
    assert response.json() == {"code": 0, "msg": "成功"}
    rows = {m.provider_message_id: m for m in InboundMessage.objects.for_tenant(tenant_a)}
    assert set(rows) == {"1001", "1002"}
    assert rows["1001"].action == Action.UNSUBSCRIBE and rows["1001"].request is not None
    assert rows["1002"].action == Action.HELP and rows["1002"].request is None
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1
    assert rows["1001"].to == "1234" and rows["1001"].sign_name == "运营商A"
    assert rows["1001"].received_at.isoformat().startswith("2025-03-01T02:00:00")  # Beijing → UTC

    helps = [line for line in outbox_lines(outbox) if line["to"] == OTHER_PHONE]
    assert len(helps) == 1
    # "HELP" from a +86 number: answered in Chinese, with the keywords the tenant advertises
    assert "回复TD/退订" in helps[0]["body"] and "/t/tenant-a/unsubscribe/" in helps[0]["body"]
    assert "STOP" not in helps[0]["body"]
    assert Message.objects.for_tenant(tenant_a).filter(event="help").count() == 1


@pytest.mark.parametrize(
    ("token", "header", "status"),
    [(None, None, 401), ("not-the-token", None, 403), (None, "not-the-token", 403)],
)
def test_aliyun_bad_token_answers_in_aliyun_shape(
    client: Client,
    tenant_a: Tenant,
    aliyun_a: InboundCredential,
    token: str | None,
    header: str | None,
    status: int,
) -> None:
    extra = {"HTTP_X_LANZUAN_TOKEN": header} if header else {}
    response = post_aliyun(client, tenant_a, [aliyun_message("退订", 1)], token=token, **extra)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"code", "msg"} and body["code"] == status and body["msg"]
    assert InboundMessage.objects.unscoped(reason="test").count() == 0


def test_aliyun_token_in_header_is_accepted(
    client: Client, tenant_a: Tenant, aliyun_a: InboundCredential
) -> None:
    response = post_aliyun(
        client, tenant_a, [aliyun_message("TD", 7)], token=None, HTTP_X_LANZUAN_TOKEN=ALIYUN_TOKEN
    )
    assert response.status_code == 200 and response.json()["code"] == 0


def test_aliyun_malformed_element_keeps_the_readable_ones(
    client: Client, tenant_a: Tenant, aliyun_a: InboundCredential
) -> None:
    # given a batch with one readable opt-out and one element without a phone number
    broken = aliyun_message("TD", 2)
    del broken["phone_number"]
    response = post_aliyun(client, tenant_a, [aliyun_message("退订", 1), broken])

    # then Aliyun is told to retry (400, its shape) but the readable opt-out is not dropped
    assert response.status_code == 400
    assert response.json()["code"] == 400 and "phone_number" in response.json()["msg"]
    assert suppression_status(tenant=tenant_a, phone=PHONE).suppressed
    # and the retry of the same batch causes nothing new
    post_aliyun(client, tenant_a, [aliyun_message("退订", 1), broken])
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1


@pytest.mark.parametrize("raw", [b"not json", b"{}", b"[]", b'"text"'])
def test_aliyun_unreadable_body_is_400(
    client: Client, tenant_a: Tenant, aliyun_a: InboundCredential, raw: bytes
) -> None:
    url = hook(tenant_a, "aliyun") + "?token=" + ALIYUN_TOKEN
    response = client.post(url, raw, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == 400


def test_dest_code_routed_to_a_service_scopes_the_request(
    client: Client, tenant_a: Tenant, aliyun_a: InboundCredential
) -> None:
    promo = Service.objects.create(tenant=tenant_a, name="促销", code="promo")
    Service.objects.create(tenant=tenant_a, name="News", code="news")
    ReplyRoute.objects.create(tenant=tenant_a, destination="88", service=promo)

    post_aliyun(client, tenant_a, [aliyun_message("TD", 1, dest_code="1069000188")])

    request = UnsubscribeRequest.objects.for_tenant(tenant_a).get()
    assert not request.scope_all and [s.code for s in request.services.all()] == ["promo"]
    assert suppression_status(tenant=tenant_a, phone=PHONE, service_code="promo").suppressed
    assert not suppression_status(tenant=tenant_a, phone=PHONE, service_code="news").suppressed


def test_reply_route_matching(tenant_a: Tenant, tenant_b: Tenant) -> None:
    promo = Service.objects.create(tenant=tenant_a, name="Promo", code="promo")
    news = Service.objects.create(tenant=tenant_a, name="News", code="news")
    shop = Service.objects.create(tenant=tenant_a, name="Shop", code="shop")
    base = ReplyRoute.objects.create(tenant=tenant_a, destination="1069 0001", service=None)
    ext = ReplyRoute.objects.create(tenant=tenant_a, destination="88", service=promo)
    full = ReplyRoute.objects.create(tenant=tenant_a, destination="+86 1069000199", service=news)
    signed = ReplyRoute.objects.create(tenant=tenant_a, sign_name="蓝钻商城", service=shop)
    ReplyRoute.objects.create(tenant=tenant_b, destination="1069000177", service=None)

    def match(to: str, sign: str = "") -> ReplyRoute | None:
        return inbound_selectors.reply_route_for(tenant=tenant_a, to=to, sign_name=sign)

    # stored as digits, China's country code taken off (review F7)
    assert (base.destination, full.destination) == ("10690001", "1069000199")
    assert match("+86 1069000199") == full  # exact, whatever the punctuation
    assert match("88") == ext  # exact
    assert match("2088") == ext  # ends with the extension
    assert match("1069000155") == base  # starts with the base number
    assert match("1069000188") == base  # both match: the longer route (8 digits) wins over "88"
    assert match("1069000177") == base  # tenant B's exact route is not ours
    assert match("8610690000199") is None  # neither prefix nor suffix of any route
    assert match("5", "蓝钻商城") == signed  # no number route: the sign name decides
    assert match("", "another sign") is None


def test_longest_route_wins_and_suffix_breaks_ties(tenant_a: Tenant) -> None:
    promo = Service.objects.create(tenant=tenant_a, name="Promo", code="promo")
    ReplyRoute.objects.create(tenant=tenant_a, destination="106900", service=None)
    ext = ReplyRoute.objects.create(tenant=tenant_a, destination="000188", service=promo)
    assert inbound_selectors.reply_route_for(tenant=tenant_a, to="1069000188") == ext


# --- generic --------------------------------------------------------------------------------


def test_generic_signed_message_files_a_request(
    client: Client, tenant_a: Tenant, generic_a: InboundCredential
) -> None:
    response = post_generic(client, tenant_a, generic_payload("please stop texting me"))
    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "message_id": "g-1", "action": "unsubscribe"}
    request = UnsubscribeRequest.objects.for_tenant(tenant_a).get()
    assert request.language == "en"
    assert suppression_status(tenant=tenant_a, phone=PHONE).suppressed


def test_generic_stale_timestamp_is_refused_with_a_reason(
    client: Client, tenant_a: Tenant, generic_a: InboundCredential
) -> None:
    response = post_generic(client, tenant_a, generic_payload("TD"), now=time.time() - 301)
    assert response.status_code == 403
    assert response.json()["error"] == "bad_signature" and "300" in response.json()["message"]
    assert InboundMessage.objects.unscoped(reason="test").count() == 0


def test_generic_wrong_or_missing_signature(
    client: Client, tenant_a: Tenant, generic_a: InboundCredential
) -> None:
    assert post_generic(client, tenant_a, generic_payload("TD"), secret="wrong").status_code == 403
    unsigned = client.post(hook(tenant_a, "generic"), generic_payload("TD"), content_type="application/json")
    assert unsigned.status_code == 401 and unsigned.json()["error"] == "unsigned"
    assert InboundMessage.objects.unscoped(reason="test").count() == 0


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "JSON"),
        (b"[1, 2]", "object"),
        (json.dumps({"from": PHONE, "text": "TD"}).encode(), "message_id"),
        (json.dumps({"message_id": "x", "text": "TD"}).encode(), "from"),
        (json.dumps({"message_id": "x", "from": PHONE}).encode(), "text"),
        (
            json.dumps({"message_id": "x", "from": PHONE, "text": "TD", "timestamp": "soon"}).encode(),
            "timestamp",
        ),
        (json.dumps({"message_id": ["x"], "from": PHONE, "text": "TD"}).encode(), "message_id"),
    ],
)
def test_generic_malformed_payload_is_400_with_a_reason(
    client: Client, tenant_a: Tenant, generic_a: InboundCredential, raw: bytes, reason: str
) -> None:
    response = post_generic(client, tenant_a, None, raw=raw)
    assert response.status_code == 400
    assert response.json()["error"] == "malformed" and reason in response.json()["message"]
    assert InboundMessage.objects.unscoped(reason="test").count() == 0


# --- retries and races ----------------------------------------------------------------------


def test_the_same_message_id_twice_is_one_row_and_one_request(
    client: Client,
    tenant_a: Tenant,
    generic_a: InboundCredential,
    twilio_a: InboundCredential,
    public_url: str,
) -> None:
    first = post_generic(client, tenant_a, generic_payload("TD", message_id="dup"))
    again = post_generic(client, tenant_a, generic_payload("TD", message_id="dup"))
    assert first.status_code == again.status_code == 200
    assert InboundMessage.objects.for_tenant(tenant_a).count() == 1
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1

    # the same id from another provider is another message
    assert post_twilio(client, tenant_a, twilio_params("TD", sid="dup")).status_code == 200
    assert InboundMessage.objects.for_tenant(tenant_a).count() == 2


def test_a_concurrent_duplicate_loses_the_race_quietly(
    tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given another delivery of the same message commits between our check and our insert
    real = inbound_selectors.reply_route_for

    def racing_route_lookup(**kwargs: Any) -> Any:
        InboundMessage.objects.create(
            tenant=tenant_a,
            provider="generic",
            provider_message_id="race",
            reference="AAAA-BBBB",
            from_hash=tenant_phone_hash(tenant_a.pk, PHONE),
            from_masked="138****8000",
            action=Action.UNSUBSCRIBE,
        )
        return real(**kwargs)

    monkeypatch.setattr(inbound_selectors, "reply_route_for", racing_route_lookup)

    # when ours tries to insert it
    message = inbound_message_receive(
        tenant=tenant_a, provider="generic", message_id="race", from_number=PHONE, to="", body="TD"
    )

    # then we get the winner's row and file nothing
    assert message.reference == "AAAA-BBBB"
    assert InboundMessage.objects.for_tenant(tenant_a).count() == 1
    assert UnsubscribeRequest.objects.unscoped(reason="test").count() == 0


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_at_the_same_moment_file_one_request(tenant_a: Tenant) -> None:
    # given a gateway that delivers the same message twice at once (real transactions, two connections)
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def deliver() -> None:
        try:
            barrier.wait(timeout=5)
            message = inbound_message_receive(
                tenant=tenant_a, provider="generic", message_id="twin", from_number=PHONE, to="", body="TD"
            )
            results.append(message.pk)
        except Exception as exc:  # surfaced by the assertion below
            results.append(exc)
        finally:
            connection.close()

    threads = [thread_like_the_test(deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # then both answer with the same row, and one request was filed
    assert len(results) == 2 and results[0] == results[1], results
    assert InboundMessage.objects.for_tenant(tenant_a).count() == 1
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1


def test_a_retry_is_answered_with_few_queries(
    client: Client, tenant_a: Tenant, generic_a: InboundCredential
) -> None:
    post_generic(client, tenant_a, generic_payload("TD", message_id="q"))
    with CaptureQueriesContext(connection) as queries:
        assert post_generic(client, tenant_a, generic_payload("TD", message_id="q")).status_code == 200
    assert len(queries) <= 4  # tenant, credential, the stored row (+ savepoint noise)


# --- replies --------------------------------------------------------------------------------


def test_resubscribe_refused_where_opt_outs_are_final(
    client: Client,
    tenant_a: Tenant,
    generic_a: InboundCredential,
    outbox: Path,
    eager_celery: Celery,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    tenant_a.allow_resubscribe = False
    tenant_a.save()
    post_generic(client, tenant_a, generic_payload("TD", message_id="m1"))
    with django_capture_on_commit_callbacks(execute=True):
        response = post_generic(client, tenant_a, generic_payload("取消退订", message_id="m2"))

    assert response.status_code == 200 and response.json()["action"] == "resubscribe_refused"
    assert suppression_status(tenant=tenant_a, phone=PHONE).suppressed
    refused = Message.objects.for_tenant(tenant_a).get(event="resubscribe_refused")
    message = InboundMessage.objects.for_tenant(tenant_a).get(provider_message_id="m2")
    assert message.reference in refused.body and refused.language == "zh-hans"
    assert any("无法重新订阅" in line["body"] for line in outbox_lines(outbox))


def test_resubscribe_lifts_the_suppression_and_says_so(
    client: Client, tenant_a: Tenant, generic_a: InboundCredential
) -> None:
    post_generic(client, tenant_a, generic_payload("TD", message_id="m1"))
    response = post_generic(client, tenant_a, generic_payload("取消退订", message_id="m2"))
    assert response.json()["action"] == "resubscribe"
    assert not suppression_status(tenant=tenant_a, phone=PHONE).suppressed
    assert Message.objects.for_tenant(tenant_a).filter(event="resubscribed").count() == 1


def test_unclear_replies_get_one_clarification_per_number_per_day(
    client: Client, tenant_a: Tenant, generic_a: InboundCredential
) -> None:
    for index, text in enumerate(["不要", "stop?", "不要"]):
        post_generic(client, tenant_a, generic_payload(text, message_id=f"u{index}"))
    post_generic(client, tenant_a, generic_payload("不要", message_id="other", sender=OTHER_PHONE))

    clarifications = Message.objects.for_tenant(tenant_a).filter(event="clarify")
    assert sorted(m.to_hash for m in clarifications) == sorted(
        [tenant_phone_hash(tenant_a.pk, PHONE), tenant_phone_hash(tenant_a.pk, OTHER_PHONE)]
    )
    actions = list(
        InboundMessage.objects.for_tenant(tenant_a)
        .filter(from_hash=tenant_phone_hash(tenant_a.pk, PHONE))
        .order_by("created_at", "pk")
        .values_list("action", flat=True)
    )
    assert actions == [Action.CLARIFY, Action.CLARIFY_SKIPPED, Action.CLARIFY_SKIPPED]
    assert UnsubscribeRequest.objects.unscoped(reason="test").count() == 0


def test_other_messages_are_stored_without_a_reply(
    client: Client, tenant_a: Tenant, generic_a: InboundCredential
) -> None:
    response = post_generic(client, tenant_a, generic_payload("see you at lunch"))
    assert response.status_code == 200 and response.json()["action"] == "none"
    message = InboundMessage.objects.for_tenant(tenant_a).get()
    assert (message.intent, message.body) == ("other", "see you at lunch")
    assert Message.objects.unscoped(reason="test").count() == 0
    assert UnsubscribeRequest.objects.unscoped(reason="test").count() == 0


def test_tenant_keywords_count(client: Client, tenant_a: Tenant, generic_a: InboundCredential) -> None:
    ChannelSetting.objects.create(tenant=tenant_a, channel="sms", extra_keywords="QX, 取消营销")
    assert post_generic(client, tenant_a, generic_payload("qx")).json()["action"] == "unsubscribe"


def test_language_guess() -> None:
    assert guess_language("退订", default="en") == "zh-hans"
    assert guess_language("ＴＤ", default="en") == "zh-hans"
    assert guess_language("please stop", default="zh-hans") == "en"
    assert guess_language("TD", default="zh-hans") == "zh-hans"
    assert guess_language("?", default="en") == "en"
    # a keyword alone: the number's country decides (item 14)
    assert guess_language("HELP", number=PHONE, default="en") == "zh-hans"
    assert guess_language("STOP", number="+85291234567", default="en") == "zh-hans"
    assert guess_language("HELP", number="+12025550123", default="zh-hans") == "en"
    assert guess_language("TD", number="+12025550123", default="zh-hans") == "en"
    # clearly English from a +86 number stays English; Chinese from a US number stays Chinese
    assert guess_language("help me please", number=PHONE, default="zh-hans") == "en"
    assert guess_language("退订", number="+12025550123", default="en") == "zh-hans"


# --- the SMS channel switched off -------------------------------------------------------------


def test_disabled_sms_channel_stores_and_flags_but_files_nothing(
    client: Client, tenant_a: Tenant, generic_a: InboundCredential, agent_amy: User, bob: User
) -> None:
    ChannelSetting.objects.create(tenant=tenant_a, channel="sms", enabled=False)

    response = post_generic(client, tenant_a, generic_payload("TD", message_id="off-1"))

    assert response.status_code == 200
    message = InboundMessage.objects.for_tenant(tenant_a).get()
    assert message.flagged_for_attention and "switched off" in message.flag_reason
    assert message.action == Action.HELD and message.request is None
    assert UnsubscribeRequest.objects.unscoped(reason="test").count() == 0
    assert not suppression_status(tenant=tenant_a, phone=PHONE).suppressed
    assert Message.objects.unscoped(reason="test").count() == 0  # no replies from a switched-off channel

    # the admin lists it under "needs attention"
    client.force_login(agent_amy)
    changelist = reverse("admin:inbound_inboundmessage_changelist")
    assert message.reference not in client.get(changelist, {"flagged": "no"}).content.decode()
    page = client.get(changelist, {"flagged": "yes"}).content.decode()
    assert "138****8000" in page and "File unsubscribe request" in page

    # the agent files it although SMS is still off: the person asked, and an opt-out is
    # never dropped; the request reads as an SMS opt-out
    action = {"action": "file_unsubscribe_requests", "_selected_action": [message.pk]}
    client.post(changelist, action, follow=True)
    message.refresh_from_db()
    assert message.request is not None and not message.flagged_for_attention
    assert message.request.verification_evidence["filed_by"] == "amy"
    assert suppression_status(tenant=tenant_a, phone=PHONE).suppressed
    client.post(changelist, action, follow=True)  # twice: nothing new
    assert UnsubscribeRequest.objects.unscoped(reason="test").count() == 1

    # viewers cannot run it
    client.force_login(bob)
    assert "File unsubscribe request" not in client.get(changelist).content.decode()


def test_an_invalid_sender_is_kept_and_flagged(
    client: Client, tenant_a: Tenant, generic_a: InboundCredential
) -> None:
    response = post_generic(client, tenant_a, generic_payload("TD", sender="VERIFY"))
    assert response.status_code == 200
    message = InboundMessage.objects.for_tenant(tenant_a).get()
    assert message.flagged_for_attention and message.action == Action.HELD
    assert UnsubscribeRequest.objects.unscoped(reason="test").count() == 0


# --- tenants, providers, credentials ---------------------------------------------------------


def test_unknown_tenant_or_provider_is_404_and_unconfigured_is_403(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, generic_a: InboundCredential
) -> None:
    assert client.post("/hooks/sms/no-such-tenant/generic/", {}).status_code == 404
    assert client.post(f"/hooks/sms/{tenant_a.slug}/carrier-pigeon/", {}).status_code == 404
    aliyun_404 = client.post("/hooks/sms/no-such-tenant/aliyun/", b"[]", content_type="application/json")
    assert aliyun_404.status_code == 404 and aliyun_404.json()["code"] == 404

    # tenant B never configured generic: a reason, not a 500; tenant A's secret does not open B's door
    response = post_generic(client, tenant_b, generic_payload("TD"))
    assert response.status_code == 403 and response.json()["error"] == "not_configured"

    inbound_credential_set(tenant=tenant_a, provider="generic", enabled=False)
    assert post_generic(client, tenant_a, generic_payload("TD")).status_code == 403
    assert InboundMessage.objects.unscoped(reason="test").count() == 0
    assert client.get(hook(tenant_a, "generic")).status_code == 405


def test_configure_inbound_command_sets_and_disables_credentials(
    client: Client, tenant_a: Tenant, public_url: str
) -> None:
    out = StringIO()
    call_command("configure_inbound", tenant_a.slug, "twilio", "--auth-token", TWILIO_TOKEN, stdout=out)
    assert TWILIO_TOKEN not in out.getvalue()
    assert f"{PUBLIC}/hooks/sms/{tenant_a.slug}/twilio/" in out.getvalue()
    call_command("configure_inbound", tenant_a.slug, "aliyun", "--token", ALIYUN_TOKEN, stdout=StringIO())
    generated = StringIO()
    call_command("configure_inbound", tenant_a.slug, "generic", "--generate", stdout=generated)
    secret = generated.getvalue().strip().splitlines()[-1]

    credentials = {c.provider: c for c in InboundCredential.objects.for_tenant(tenant_a)}
    assert credentials["twilio"].secret == TWILIO_TOKEN and credentials["twilio"].enabled
    assert credentials["aliyun"].secret == ALIYUN_TOKEN
    assert credentials["generic"].secret == secret and len(secret) > 30
    assert post_generic(client, tenant_a, generic_payload("TD"), secret=secret).status_code == 200

    call_command("configure_inbound", tenant_a.slug, "twilio", "--disable", stdout=StringIO())
    twilio = InboundCredential.objects.for_tenant(tenant_a).get(provider="twilio")
    assert not twilio.enabled and twilio.secret == TWILIO_TOKEN
    assert post_twilio(client, tenant_a, twilio_params("TD", sid="x")).status_code == 403

    # the history keeps who changed what, never the secret
    history = twilio.history.all()
    assert history.count() == 2 and not hasattr(history.first(), "secret")

    with pytest.raises(CommandError):
        call_command("configure_inbound", tenant_a.slug, "twilio", "--token", "x")
    with pytest.raises(CommandError):
        call_command("configure_inbound", "nobody", "twilio", "--auth-token", "x")
    with pytest.raises(CommandError):
        call_command("configure_inbound", tenant_a.slug, "twilio", "--generate")


def test_admin_never_shows_a_secret_and_blank_keeps_it(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, alice: User, bob: User
) -> None:
    url = reverse("admin:inbound_inboundcredential_change", args=[twilio_a.pk])
    for user in (alice, bob):
        client.force_login(user)
        page = client.get(url)
        assert page.status_code == 200
        assert TWILIO_TOKEN not in page.content.decode()
    assert 'type="password"' not in page.content.decode()  # the viewer gets no field at all

    client.force_login(alice)
    assert 'name="secret"' in client.get(url).content.decode()
    assert client.post(url, {"secret": "", "enabled": "on"}).status_code == 302
    twilio_a.refresh_from_db()
    assert twilio_a.secret == TWILIO_TOKEN
    assert client.post(url, {"secret": "a-new-token"}).status_code == 302
    twilio_a.refresh_from_db()
    assert twilio_a.secret == "a-new-token" and not twilio_a.enabled

    add = reverse("admin:inbound_inboundcredential_add")
    response = client.post(add, {"tenant": tenant_a.pk, "provider": "generic", "secret": ""})
    assert response.status_code == 200 and "Enter the secret" in response.content.decode()


def test_admin_reply_route_is_normalised_and_scoped(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, alice: User
) -> None:
    theirs = Service.objects.create(tenant=tenant_b, name="Theirs", code="theirs")
    mine = Service.objects.create(tenant=tenant_a, name="Mine", code="mine")
    client.force_login(alice)
    add = reverse("admin:inbound_replyroute_add")
    assert "Theirs" not in client.get(add).content.decode()
    refused = client.post(add, {"tenant": tenant_a.pk, "destination": "1", "service": theirs.pk})
    assert refused.status_code == 200 and not ReplyRoute.objects.unscoped(reason="test").exists()
    empty = client.post(add, {"tenant": tenant_a.pk, "destination": "", "sign_name": ""})
    assert empty.status_code == 200 and not ReplyRoute.objects.unscoped(reason="test").exists()
    assert (
        client.post(
            add, {"tenant": tenant_a.pk, "destination": "1069-0001 88", "service": mine.pk}
        ).status_code
        == 302
    )
    assert ReplyRoute.objects.for_tenant(tenant_a).get().destination == "1069000188"


# --- erasure ----------------------------------------------------------------------------------


def test_erasure_clears_number_and_text_of_that_tenants_replies(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, generic_a: InboundCredential
) -> None:
    post_generic(client, tenant_a, generic_payload("TD 13800138000 别再发了", message_id="e1"))
    inbound_credential_set(tenant=tenant_b, provider="generic", secret=GENERIC_SECRET)
    post_generic(client, tenant_b, generic_payload("TD", message_id="e1"))
    request = UnsubscribeRequest.objects.for_tenant(tenant_a).get()
    # Replies are stored without the raw number once handled; rows from before that (or
    # held for staff) still have it, and erasure is what clears them.
    InboundMessage.objects.unscoped(reason="test").filter(tenant=tenant_a).update(
        from_number=PHONE, body="TD 13800138000 别再发了"
    )
    InboundMessage.objects.unscoped(reason="test").filter(tenant=tenant_b).update(from_number=PHONE)

    erase = datasources.get_source("inbound.messages").erase
    assert erase is not None
    assert erase(request) == datasources.Receipt.of(("copies_cleared", 1))

    mine = InboundMessage.objects.for_tenant(tenant_a).get()
    assert (mine.from_number, mine.body) == ("", "TD *********** 别再发了")  # the wording is the evidence
    assert mine.from_hash == tenant_phone_hash(tenant_a.pk, PHONE) and mine.from_masked == "138****8000"
    theirs = InboundMessage.objects.for_tenant(tenant_b).get()
    assert theirs.from_number == PHONE and theirs.body == "TD"
    assert erase(request) == datasources.Receipt.of(("copies_cleared", 0))
    assert (
        Suppression.objects.for_tenant(tenant_a)
        .filter(phone_hash=tenant_phone_hash(tenant_a.pk, PHONE))
        .exists()
    )


# --- the STOP webhook's hot path (issue 13) -------------------------------------------------


def test_a_stop_is_filed_and_suppressed_before_the_answer_and_its_work_follows_in_the_pipeline(
    client: Client,
    tenant_a: Tenant,
    twilio_a: InboundCredential,
    public_url: str,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    from unsubscribe import domain_events
    from unsubscribe.models import RequestDeadline, Step, SuppressionEvent
    from unsubscribe.partner.models import WebhookDelivery
    from unsubscribe.partner.webhooks import webhook_endpoint_create
    from unsubscribe.pipeline.services import request_process

    # given a partner listening to every event
    webhook_endpoint_create(
        tenant=tenant_a, url="http://127.0.0.1:40001/hook", events=list(domain_events.EVENTS)
    )
    post_twilio(client, tenant_a, twilio_params("TD", sid="warm", sender=OTHER_PHONE))  # config read once

    # when a STOP comes in (nothing run after commit yet: no worker has seen it)
    with django_capture_on_commit_callbacks(execute=False), CaptureQueriesContext(connection) as queries:
        response = post_twilio(client, tenant_a, twilio_params("STOP", sid="SMstop"))

    # then the answer comes after the reply, its request and the suppression are stored, in
    # one short transaction; steps, deadlines and partner events are the pipeline's to write
    assert response.status_code == 200
    assert len(queries) <= 20, "\n".join(q["sql"][:120] for q in queries)
    assert suppression_status(tenant=tenant_a, phone=PHONE).suppressed
    message = InboundMessage.objects.for_tenant(tenant_a).get(provider_message_id="SMstop")
    request = message.request
    assert request is not None
    assert request.state == "suppressed" and request.dispatched_at is not None
    assert not Step.objects.for_tenant(tenant_a).filter(request=request).exists()
    assert not RequestDeadline.objects.for_tenant(tenant_a).filter(request=request).exists()
    deliveries = WebhookDelivery.objects.for_tenant(tenant_a).filter(payload__reference=request.reference)
    assert not deliveries.exists()

    # when a worker takes it, and (a lost message, the sweep) takes it again
    request_process(request.pk)
    request_process(request.pk)

    # then it is planned once, and the partner hears what filing used to tell, once each
    kinds = set(Step.objects.for_tenant(tenant_a).filter(request=request).values_list("kind", flat=True))
    assert {"terminate", "erase", "confirm"} <= kinds
    assert Step.objects.for_tenant(tenant_a).filter(request=request, kind="confirm").count() == 1
    assert RequestDeadline.objects.for_tenant(tenant_a).filter(request=request).exists()
    assert sorted(deliveries.values_list("event", flat=True)) == ["request.created", "suppression.added"]
    added = deliveries.get(event="suppression.added").payload
    event = SuppressionEvent.objects.for_tenant(tenant_a).get(request=request)
    assert added["scopes"] == ["*"] and added["since"] == event.created_at.isoformat()
    assert added["phone_hash"] == request.phone_hash and PHONE not in json.dumps(added)


def test_a_retry_of_a_stop_files_nothing_and_reads_one_row(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    assert post_twilio(client, tenant_a, twilio_params("STOP", sid="SMonce")).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert post_twilio(client, tenant_a, twilio_params("STOP", sid="SMonce")).status_code == 200
    assert len(queries) == 1  # the stored row; tenant and credential are remembered
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1


def test_webhook_settings_are_remembered_until_changed_here_or_for_a_second(
    client: Client,
    tenant_a: Tenant,
    twilio_a: InboundCredential,
    public_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lanzuan import memo

    now = [1000.0]
    monkeypatch.setattr(memo, "_clock", lambda: now[0])
    assert post_twilio(client, tenant_a, twilio_params("hello", sid="m1")).status_code == 200

    # a change saved in this process is seen at once
    inbound_credential_set(tenant=tenant_a, provider="twilio", enabled=False)
    assert post_twilio(client, tenant_a, twilio_params("hello", sid="m2")).status_code == 403
    inbound_credential_set(tenant=tenant_a, provider="twilio", enabled=True)
    assert post_twilio(client, tenant_a, twilio_params("hello", sid="m3")).status_code == 200

    # one made elsewhere (another process; here an update(), which tells no one) within CONFIG_SECONDS
    InboundCredential.objects.for_tenant(tenant_a).update(enabled=False)
    assert post_twilio(client, tenant_a, twilio_params("hello", sid="m4")).status_code == 200
    now[0] += inbound_selectors.CONFIG_SECONDS
    assert post_twilio(client, tenant_a, twilio_params("hello", sid="m5")).status_code == 403

    # a tenant switched off, or its SMS channel, likewise at once
    InboundCredential.objects.for_tenant(tenant_a).update(enabled=True)
    ChannelSetting.objects.create(tenant=tenant_a, channel="sms", enabled=False)
    post_twilio(client, tenant_a, twilio_params("TD", sid="m6"))
    assert InboundMessage.objects.for_tenant(tenant_a).get(provider_message_id="m6").action == Action.HELD
    tenant_a.is_active = False
    tenant_a.save()
    assert post_twilio(client, tenant_a, twilio_params("TD", sid="m7")).status_code == 404
