"""What a reply means and what it causes, end to end through the real webhook URLs with real
signatures (issue 11 items 3, 8, 14, 19; issue 12's inbound half): yes after a clarification,
verified re-subscribes with evidence and a suppression.lifted event, status answers, replies in
the number's language with the tenant's keywords, shared gateways, reply text kept as evidence."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from io import StringIO
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.urls import reverse
from twilio.request_validator import RequestValidator

from lanzuan.phones import mask, mask_digit_runs, tenant_phone_hash
from notifications.models import Message
from unsubscribe import domain_events
from unsubscribe.inbound.models import (
    Action,
    InboundMessage,
    PlatformInboundCredential,
    ReplyRoute,
    UnroutedMessage,
)
from unsubscribe.inbound.services import inbound_credential_set, platform_credential_set
from unsubscribe.models import (
    ChannelSetting,
    Service,
    Subscription,
    Suppression,
    SuppressionEvent,
    UnsubscribeRequest,
)
from unsubscribe.partner.models import WebhookDelivery
from unsubscribe.partner.webhooks import webhook_endpoint_create
from unsubscribe.suppressions.selectors import suppression_status

from .test_inbound import (
    ALIYUN_TOKEN,
    GENERIC_SECRET,
    OTHER_PHONE,
    PHONE,
    PUBLIC,
    TWILIO_TOKEN,
    aliyun_message,
    generic_payload,
    post_generic,
    post_twilio,
    twilio_params,
)

if TYPE_CHECKING:
    from pathlib import Path

    from celery import Celery
    from django.contrib.auth.models import User
    from django.test import Client
    from django.test.client import _MonkeyPatchedWSGIResponse as Response
    from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

    from tenants.models import Tenant
    from unsubscribe.inbound.models import InboundCredential

US_PHONE = "+12025550123"


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
def generic_a(tenant_a: Tenant) -> InboundCredential:
    return inbound_credential_set(tenant=tenant_a, provider="generic", secret=GENERIC_SECRET)


def say(
    client: Client, tenant: Tenant, text: str, sid: str, sender: str = PHONE, to: str = "+14155550100"
) -> InboundMessage:
    """A Twilio-signed reply through the tenant's webhook URL."""
    response = post_twilio(client, tenant, twilio_params(text, sid=sid, sender=sender, to=to))
    assert response.status_code == 200, response.content
    return InboundMessage.objects.for_tenant(tenant).get(provider="twilio", provider_message_id=sid)


def sent(tenant: Tenant, event: str) -> list[Message]:
    return list(Message.objects.for_tenant(tenant).filter(event=event).order_by("pk"))


def subscribe(tenant: Tenant, service: Service, phone: str = PHONE) -> Subscription:
    return Subscription.objects.create(
        tenant=tenant,
        service=service,
        phone=phone,
        phone_hash=tenant_phone_hash(tenant.pk, phone),
        phone_masked=mask(phone),
    )


# --- issue 12, end to end: each intent through a Twilio-signed reply -------------------------


@pytest.mark.parametrize(
    ("text", "intent", "action", "reply_event", "filed"),
    [
        ("TD", "unsubscribe", Action.UNSUBSCRIBE, None, True),  # the confirmation comes from the pipeline
        ("重新订阅", "resubscribe", Action.STATUS, "status_none", False),  # nothing to lift (F9)
        ("HELP", "help", Action.HELP, "help", False),
        ("退订成功了吗", "status", Action.STATUS, "status_none", False),
        ("不要", "unsubscribe", Action.CLARIFY, "clarify", False),
        ("yes", "other", Action.NONE, None, False),
        ("see you at lunch", "other", Action.NONE, None, False),
    ],
)
def test_each_intent_causes_its_action_and_reply(
    client: Client,
    tenant_a: Tenant,
    twilio_a: InboundCredential,
    public_url: str,
    text: str,
    intent: str,
    action: str,
    reply_event: str | None,
    filed: bool,
) -> None:
    message = say(client, tenant_a, text, "SM1")
    assert (message.intent, message.action) == (intent, action)
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).exists() == filed
    events_sent = list(Message.objects.for_tenant(tenant_a).values_list("event", flat=True))
    assert events_sent == ([reply_event] if reply_event else [])


# --- item 3: a yes is read against the question we asked ---------------------------------------


def test_yes_after_a_clarification_files_an_opt_out(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    # given an unclear reply that got the clarification SMS
    unclear = say(client, tenant_a, "不用了", "SM1")
    assert unclear.action == Action.CLARIFY and len(sent(tenant_a, "clarify")) == 1

    # when the person answers "yes"
    answer = say(client, tenant_a, "yes", "SM2")

    # then the yes is an opt-out, filed at once
    assert (answer.context, answer.intent, answer.action) == (
        "clarification",
        "unsubscribe",
        Action.UNSUBSCRIBE,
    )
    assert answer.request is not None and suppression_status(tenant=tenant_a, phone=PHONE).suppressed
    # and the question is answered: another yes is a bare yes again
    again = say(client, tenant_a, "是", "SM3")
    assert (again.context, again.intent, again.action) == ("", "other", Action.NONE)
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1


def test_no_after_a_clarification_files_nothing(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    say(client, tenant_a, "不用了", "SM1")
    answer = say(client, tenant_a, "no", "SM2")
    assert (answer.context, answer.intent, answer.action) == ("clarification", "other", Action.NONE)
    assert not UnsubscribeRequest.objects.unscoped(reason="test").exists()


def test_a_bare_yes_files_nothing(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    message = say(client, tenant_a, "yes", "SM1")
    assert (message.intent, message.action) == ("other", Action.NONE)
    assert not UnsubscribeRequest.objects.unscoped(reason="test").exists()
    assert not Message.objects.unscoped(reason="test").exists()


def test_a_clarification_older_than_the_window_is_no_longer_pending(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    with time_machine.travel(datetime(2026, 3, 1, 8, 0, tzinfo=UTC), tick=False):
        say(client, tenant_a, "不用了", "SM1")
    with time_machine.travel(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), tick=False):
        answer = say(client, tenant_a, "yes", "SM2")
    assert (answer.context, answer.action) == ("", Action.NONE)


def test_yes_never_lifts_an_opt_out(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    # given the sequence: an opt-out, then 不用了 (asked to confirm), then "yes"
    endpoint, _secret = webhook_endpoint_create(
        tenant=tenant_a, url="https://crm.example.com/hooks", events=list(domain_events.EVENTS)
    )
    say(client, tenant_a, "TD", "SM1")
    say(client, tenant_a, "不用了", "SM2")
    answer = say(client, tenant_a, "yes", "SM3")

    # then the number stays suppressed, nothing was lifted and partners hear of no lift
    assert answer.action == Action.UNSUBSCRIBE
    assert suppression_status(tenant=tenant_a, phone=PHONE).suppressed
    assert not SuppressionEvent.objects.for_tenant(tenant_a).filter(action="lifted").exists()
    assert not WebhookDelivery.objects.for_tenant(tenant_a).filter(event="suppression.lifted").exists()
    assert not sent(tenant_a, "resubscribed")


def test_resubscribe_is_recorded_with_its_evidence_and_tells_partners(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    webhook_endpoint_create(
        tenant=tenant_a, url="https://crm.example.com/hooks", events=["suppression.lifted"]
    )
    say(client, tenant_a, "TD", "SM1")

    message = say(client, tenant_a, "重新订阅 13800138000", "SM2")

    assert message.action == Action.RESUBSCRIBE and "*" in message.note
    assert not suppression_status(tenant=tenant_a, phone=PHONE).suppressed
    lifted = SuppressionEvent.objects.for_tenant(tenant_a).get(action="lifted")
    assert lifted.scope == "*" and lifted.channel == "sms"
    assert lifted.evidence == {
        "provider": "twilio",
        "message_id": "SM2",
        "to": "+14155550100",
        "inbound_reference": message.reference,
        "text": "重新订阅 ***********",
        "verification_method": "sms_origin",
    }
    delivery = WebhookDelivery.objects.for_tenant(tenant_a).get(event="suppression.lifted")
    payload = json.dumps(delivery.payload)
    assert "13800138000" not in payload
    data = delivery.payload  # the event body; the envelope is added when sent
    assert data["scopes"] == ["*"] and data["phone_hash"] == tenant_phone_hash(tenant_a.pk, PHONE)
    assert data["verification_method"] == "sms_origin"
    assert len(sent(tenant_a, "resubscribed")) == 1


def test_partners_can_subscribe_to_suppression_lifted_through_the_api(client: Client, api_key_a: str) -> None:
    response = client.post(
        "/api/v1/webhooks",
        {"url": "https://crm.example.com/hooks", "events": ["suppression.lifted"]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Api-Key {api_key_a}",
    )
    assert response.status_code == 201, response.content
    assert response.json()["events"] == ["suppression.lifted"]


def test_resubscribe_refused_where_final_lifts_nothing_and_emits_nothing(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    tenant_a.allow_resubscribe = False
    tenant_a.save()
    webhook_endpoint_create(
        tenant=tenant_a, url="https://crm.example.com/hooks", events=["suppression.lifted"]
    )
    say(client, tenant_a, "TD", "SM1")
    assert say(client, tenant_a, "重新订阅", "SM2").action == Action.RESUBSCRIBE_REFUSED
    assert suppression_status(tenant=tenant_a, phone=PHONE).suppressed
    assert not WebhookDelivery.objects.for_tenant(tenant_a).exists()


@pytest.fixture
def routed(tenant_a: Tenant) -> tuple[Service, Service]:
    """Two services, each with its own extension under the tenant's base number."""
    promo = Service.objects.create(tenant=tenant_a, name="Promo", code="promo")
    news = Service.objects.create(tenant=tenant_a, name="News", code="news")
    ReplyRoute.objects.create(tenant=tenant_a, destination="1069000188", service=promo)
    ReplyRoute.objects.create(tenant=tenant_a, destination="1069000199", service=news)
    return promo, news


def test_one_service_resubscribe_never_lifts_an_all_marketing_opt_out(
    client: Client,
    tenant_a: Tenant,
    twilio_a: InboundCredential,
    public_url: str,
    routed: tuple[Service, Service],
) -> None:
    promo, news = routed
    sub = subscribe(tenant_a, promo)
    # given the person stopped everything (a reply to the base number, no service route)
    say(client, tenant_a, "TD", "SM1", to="10690001")
    sub.status, sub.phone = Subscription.Status.ENDED, ""
    sub.save()

    # when they re-subscribe on promo's number
    message = say(client, tenant_a, "重新订阅", "SM2", to="1069000188")

    # then the all-marketing opt-out stands, promo stays ended, and the reply says what it takes
    assert message.action == Action.RESUBSCRIBE
    assert suppression_status(tenant=tenant_a, phone=PHONE, service_code="promo").suppressed
    assert Suppression.objects.for_tenant(tenant_a).filter(scope="*").exists()
    sub.refresh_from_db()
    assert sub.status == Subscription.Status.ENDED and sub.phone == ""
    assert len(sent(tenant_a, "resubscribe_all_needed")) == 1 and not sent(tenant_a, "resubscribed")

    # when they say "resume everything" in words
    message = say(client, tenant_a, "恢复全部", "SM3", to="1069000188")

    # then everything is lifted and promo is active again
    assert message.action == Action.RESUBSCRIBE
    assert not Suppression.objects.for_tenant(tenant_a).exists()
    sub.refresh_from_db()
    # refresh_from_db() changed the status, which mypy narrowed to ENDED above
    assert sub.status == Subscription.Status.ACTIVE and sub.phone == PHONE  # type: ignore[comparison-overlap]


def test_a_service_resubscribe_lifts_and_reactivates_only_that_service(
    client: Client,
    tenant_a: Tenant,
    twilio_a: InboundCredential,
    public_url: str,
    routed: tuple[Service, Service],
) -> None:
    promo, news = routed
    subs = {s.service.code: s for s in (subscribe(tenant_a, promo), subscribe(tenant_a, news))}
    say(client, tenant_a, "TD", "SM1", to="1069000188")
    say(client, tenant_a, "TD", "SM2", to="1069000199")
    for sub in subs.values():
        sub.status = Subscription.Status.ENDED
        sub.save()

    say(client, tenant_a, "重新订阅", "SM3", to="1069000188")

    scopes = set(Suppression.objects.for_tenant(tenant_a).values_list("scope", flat=True))
    assert scopes == {"news"}
    for sub in subs.values():
        sub.refresh_from_db()
    assert subs["promo"].status == Subscription.Status.ACTIVE
    assert subs["news"].status == Subscription.Status.ENDED
    assert len(sent(tenant_a, "resubscribed")) == 1


# --- status: "did my opt-out work?" -----------------------------------------------------------


def test_a_status_question_answers_with_the_reference_state_and_local_date(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    # given an opt-out at 17:30 UTC, which is 01:30 the next day in the tenant's Asia/Shanghai
    with time_machine.travel(datetime(2026, 3, 1, 17, 30, tzinfo=UTC), tick=False):
        request = say(client, tenant_a, "TD", "SM1").request
        assert request is not None
    with time_machine.travel(datetime(2026, 3, 1, 18, 0, tzinfo=UTC), tick=False):
        message = say(client, tenant_a, "退订成功了吗？", "SM2")

    # then the answer is that number's real status, in Chinese, and nothing new is filed
    assert (message.intent, message.action) == ("status", Action.STATUS)
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1
    (reply,) = sent(tenant_a, "status")
    assert request.reference in reply.body and "2026-03-02 01:30" in reply.body
    assert "已生效" in reply.body and reply.language == "zh-hans"
    assert "/t/tenant-a/status/?token=" in reply.body


def test_a_status_question_in_english_from_a_us_number(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    tenant_a.time_zone = "America/New_York"
    tenant_a.save()
    with time_machine.travel(datetime(2026, 3, 8, 6, 30, tzinfo=UTC), tick=False):  # 01:30 EST, before DST
        request = say(client, tenant_a, "STOP", "SM1", sender=US_PHONE).request
        assert request is not None
        message = say(client, tenant_a, "did my STOP work?", "SM2", sender=US_PHONE)
    assert message.action == Action.STATUS
    (reply,) = sent(tenant_a, "status")
    assert reply.language == "en" and request.reference in reply.body and "2026-03-08 01:30" in reply.body


def test_a_status_question_without_a_request_says_so_and_how_to_opt_out(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    ChannelSetting.objects.create(tenant=tenant_a, channel="sms", extra_keywords="QX")
    message = say(client, tenant_a, "am I unsubscribed?", "SM1", sender=US_PHONE)
    assert message.action == Action.STATUS
    assert not UnsubscribeRequest.objects.unscoped(reason="test").exists()
    (reply,) = sent(tenant_a, "status_none")
    assert "no unsubscribe request" in reply.body and "STOP/TD/QX" in reply.body


def test_a_status_question_after_the_record_was_purged_still_says_opted_out(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    with time_machine.travel(datetime(2026, 3, 1, 2, 0, tzinfo=UTC), tick=False):
        request = say(client, tenant_a, "TD", "SM1").request
        assert request is not None
    UnsubscribeRequest.objects.for_tenant(tenant_a).filter(pk=request.pk).delete()  # past retention

    say(client, tenant_a, "退订成功了吗", "SM2")

    (reply,) = sent(tenant_a, "status")
    assert "已生效" in reply.body and "2026-03-01 10:00" in reply.body
    assert not sent(tenant_a, "status_none")


# --- item 14: the number's language and the tenant's keywords ---------------------------------


def test_help_from_a_chinese_number_is_in_chinese_with_the_tenants_keywords(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    ChannelSetting.objects.create(tenant=tenant_a, channel="sms", extra_keywords="QX, 取消营销")
    say(client, tenant_a, "HELP", "SM1")
    say(client, tenant_a, "HELP", "SM2", sender=US_PHONE)

    chinese, english_ = sent(tenant_a, "help")
    assert chinese.language == "zh-hans" and "请回复TD/退订/QX/取消营销，" in chinese.body
    assert "STOP" not in chinese.body
    assert english_.language == "en" and "reply STOP/TD/QX/取消营销," in english_.body


def test_the_clarification_names_the_tenants_keywords(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    ChannelSetting.objects.create(tenant=tenant_a, channel="sms", extra_keywords="QX")
    say(client, tenant_a, "不要", "SM1")
    (clarify,) = sent(tenant_a, "clarify")
    assert clarify.language == "zh-hans" and "TD/退订/QX" in clarify.body


# --- item 8: shared gateways -------------------------------------------------------------------

PLATFORM_TOKEN = "shared-gateway-token-for-tests"


@pytest.fixture
def shared(tenant_a: Tenant, tenant_b: Tenant) -> PlatformInboundCredential:
    """demo-mobile (A) replies on 10690001, demo-shop (B) on 10690002, one Aliyun account for both."""
    ChannelSetting.objects.create(tenant=tenant_a, channel="sms", reply_numbers="10690001")
    ChannelSetting.objects.create(tenant=tenant_b, channel="sms", reply_numbers="10690002")
    return platform_credential_set(
        account="aliyun-main", provider="aliyun", secret=PLATFORM_TOKEN, reply_tenant=tenant_a
    )


def platform_hook(account: str, provider: str) -> str:
    return reverse("inbound:platform-sms-hook", kwargs={"account": account, "provider": provider})


def post_platform_aliyun(
    client: Client, messages: list[dict[str, Any]], token: str = PLATFORM_TOKEN
) -> Response:
    url = platform_hook("aliyun-main", "aliyun") + "?" + urlencode({"token": token})
    return client.post(url, json.dumps(messages, ensure_ascii=False), content_type="application/json")


def test_the_platform_url_routes_each_reply_to_its_tenant(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, shared: PlatformInboundCredential
) -> None:
    assert platform_hook("aliyun-main", "aliyun") == "/hooks/sms/platform/aliyun-main/aliyun/"
    batch = [
        aliyun_message("TD", 1, dest_code="1069000188"),  # A's base number + an extension
        aliyun_message("TD", 2, phone="13900139000", dest_code="10690002"),  # B's number
    ]
    response = post_platform_aliyun(client, batch)

    assert response.status_code == 200 and response.json()["code"] == 0
    mine = InboundMessage.objects.for_tenant(tenant_a).get()
    theirs = InboundMessage.objects.for_tenant(tenant_b).get()
    assert (mine.from_hash, theirs.from_hash) == (
        tenant_phone_hash(tenant_a.pk, PHONE),
        tenant_phone_hash(tenant_b.pk, OTHER_PHONE),
    )
    assert mine.gateway_account == shared and mine.request is not None
    assert suppression_status(tenant=tenant_a, phone=PHONE).suppressed
    assert not suppression_status(tenant=tenant_b, phone=PHONE).suppressed
    assert suppression_status(tenant=tenant_b, phone=OTHER_PHONE).suppressed
    assert not UnroutedMessage.objects.exists()


def test_the_longest_prefix_wins_across_tenants(client: Client, tenant_a: Tenant, tenant_b: Tenant) -> None:
    ChannelSetting.objects.create(tenant=tenant_a, channel="sms", reply_numbers="1069000")
    ReplyRoute.objects.create(tenant=tenant_b, destination="10690001")
    platform_credential_set(account="aliyun-main", provider="aliyun", secret=PLATFORM_TOKEN)
    post_platform_aliyun(client, [aliyun_message("TD", 1, dest_code="106900015")])
    assert InboundMessage.objects.for_tenant(tenant_b).count() == 1
    assert not InboundMessage.objects.for_tenant(tenant_a).exists()


def test_an_unroutable_reply_is_kept_flagged_and_answered_with_the_hub(
    client: Client,
    tenant_a: Tenant,
    tenant_b: Tenant,
    shared: PlatformInboundCredential,
    outbox: Path,
    eager_celery: Celery,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post_platform_aliyun(client, [aliyun_message("退订", 7, dest_code="10699999")])

    assert response.status_code == 200
    assert (
        not InboundMessage.objects.unscoped(reason="test").exists()
        and not UnsubscribeRequest.objects.unscoped(reason="test").exists()
    )
    unrouted = UnroutedMessage.objects.get()
    assert unrouted.reason == "no_match" and unrouted.flagged_for_attention and unrouted.answered
    assert (unrouted.intent, unrouted.source, unrouted.body) == (
        "unsubscribe",
        "platform:aliyun-main",
        "退订",
    )
    (help_,) = Message.objects.for_tenant(tenant_a).filter(event="unrouted_help")
    assert "/hub/" in help_.body and help_.language == "zh-hans"

    # a retry of the same batch stores nothing new and answers once
    post_platform_aliyun(client, [aliyun_message("退订", 7, dest_code="10699999")])
    assert UnroutedMessage.objects.count() == 1
    assert Message.objects.unscoped(reason="test").filter(event="unrouted_help").count() == 1


def test_a_destination_two_tenants_claim_is_not_guessed(
    client: Client, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    ReplyRoute.objects.create(tenant=tenant_a, sign_name="蓝钻")
    ReplyRoute.objects.create(tenant=tenant_b, sign_name="蓝钻")
    platform_credential_set(account="aliyun-main", provider="aliyun", secret=PLATFORM_TOKEN)
    message = aliyun_message("TD", 1, dest_code="")
    message["sign_name"] = "蓝钻"
    post_platform_aliyun(client, [message])
    assert UnroutedMessage.objects.get().reason == "ambiguous"
    assert not InboundMessage.objects.unscoped(reason="test").exists()


def test_an_account_routes_only_to_the_tenants_it_serves(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, shared: PlatformInboundCredential
) -> None:
    shared.tenants.set([tenant_a])
    post_platform_aliyun(client, [aliyun_message("TD", 1, dest_code="10690002")])  # B's number
    assert UnroutedMessage.objects.get().reason == "no_match"
    assert not InboundMessage.objects.for_tenant(tenant_b).exists()


def test_the_platform_url_checks_its_own_secret_and_twilio_signature(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, shared: PlatformInboundCredential, settings: Settings
) -> None:
    settings.PUBLIC_BASE_URL = PUBLIC
    assert post_platform_aliyun(client, [aliyun_message("TD", 1)], token=ALIYUN_TOKEN).status_code == 403
    assert (
        client.post(platform_hook("nobody", "aliyun"), b"[]", content_type="application/json").status_code
        == 404
    )
    assert (
        client.post(platform_hook("aliyun-main", "twilio"), {}).status_code == 404
    )  # the account is Aliyun's

    platform_credential_set(account="twilio-main", provider="twilio", secret="twilio-shared-token")
    url = platform_hook("twilio-main", "twilio")
    params = twilio_params("STOP", sid="SMx", to="+10690002")
    signature = RequestValidator("twilio-shared-token").compute_signature(PUBLIC + url, params)
    assert client.post(url, params, HTTP_X_TWILIO_SIGNATURE=signature).status_code == 200
    assert InboundMessage.objects.for_tenant(tenant_b).get().provider_message_id == "SMx"
    bad = RequestValidator("wrong").compute_signature(PUBLIC + url, params)
    assert client.post(url, params, HTTP_X_TWILIO_SIGNATURE=bad).status_code == 403


def test_a_reply_to_another_tenants_number_on_a_tenant_url_is_flagged_not_filed(
    client: Client,
    tenant_a: Tenant,
    tenant_b: Tenant,
    generic_a: InboundCredential,
    shared: PlatformInboundCredential,
) -> None:
    # a reply to B's (demo-shop's) 10690002, posted by the shared gateway to A's URL
    response = post_generic(client, tenant_a, generic_payload("TD", message_id="x1", to="10690002"))

    assert response.status_code == 200 and response.json()["action"] == "unrouted"
    assert not InboundMessage.objects.unscoped(reason="test").exists()
    assert not UnsubscribeRequest.objects.unscoped(reason="test").exists()
    unrouted = UnroutedMessage.objects.get()
    assert (unrouted.reason, unrouted.received_by, unrouted.belongs_to) == (
        "other_tenant",
        tenant_a,
        tenant_b,
    )
    assert unrouted.flagged_for_attention and unrouted.answered  # with A's help text (review F8)

    # A's own number (and no destination at all) still works on A's URL
    assert (
        post_generic(client, tenant_a, generic_payload("TD", message_id="x2", to="10690001")).json()["action"]
        == "unsubscribe"
    )
    assert post_generic(client, tenant_a, generic_payload("TD", message_id="x3", to="")).json()["action"] == (
        "unsubscribe"
    )


def test_configure_inbound_platform_form(tenant_a: Tenant, tenant_b: Tenant, public_url: str) -> None:
    out = StringIO()
    call_command(
        "configure_inbound",
        "--platform",
        "gw-1",
        "generic",
        "--generate",
        "--tenants",
        f"{tenant_a.slug},{tenant_b.slug}",
        "--reply-tenant",
        tenant_a.slug,
        stdout=out,
    )
    secret = out.getvalue().strip().splitlines()[-1]
    credential = PlatformInboundCredential.objects.get(account="gw-1")
    assert credential.secret == secret and credential.reply_tenant == tenant_a
    assert set(credential.tenants.all()) == {tenant_a, tenant_b}
    assert f"{PUBLIC}/hooks/sms/platform/gw-1/generic/" in out.getvalue()

    call_command("configure_inbound", "--platform", "gw-1", "generic", "--disable", stdout=StringIO())
    credential.refresh_from_db()
    assert not credential.enabled and credential.secret == secret
    with pytest.raises(CommandError):
        call_command("configure_inbound", "--platform", "gw-1", "twilio", "--auth-token", "x")
    with pytest.raises(CommandError):
        call_command("configure_inbound", "--platform", "gw-2", "aliyun", "--disable")
    with pytest.raises(CommandError):
        call_command("configure_inbound", tenant_a.slug, "generic", "--generate", "--tenants", "x")


def test_shared_gateways_and_unroutable_replies_are_for_superusers_only(
    client: Client, tenant_a: Tenant, shared: PlatformInboundCredential, alice: User, root: User
) -> None:
    post_platform_aliyun(client, [aliyun_message("TD", 1, dest_code="10699999")])
    unrouted = UnroutedMessage.objects.get()
    pages = [
        reverse("admin:inbound_platforminboundcredential_changelist"),
        reverse("admin:inbound_platforminboundcredential_change", args=[shared.pk]),
        reverse("admin:inbound_unroutedmessage_changelist"),
        reverse("admin:inbound_unroutedmessage_change", args=[unrouted.pk]),
    ]
    client.force_login(alice)
    for page in pages:
        assert client.get(page).status_code in (403, 404), page
    client.force_login(root)
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        assert (
            PLATFORM_TOKEN not in response.content.decode() and "13800138000" not in response.content.decode()
        )

    changelist = reverse("admin:inbound_unroutedmessage_changelist")
    client.post(changelist, {"action": "mark_handled", "_selected_action": [unrouted.pk]})
    unrouted.refresh_from_db()
    assert not unrouted.flagged_for_attention and unrouted.from_number == "" and unrouted.handled_by == "root"


# --- item 19: the wording stays, the numbers go -----------------------------------------------

NUMBER_FORMS = [
    "13800138000",
    "+86 138 0013 8000",
    "138-0013-8000",
    "+8613800138000",
    "(+86) 139-0013-9000",
    "139 0013 9000",
]


def test_mask_digit_runs_hides_every_number_form() -> None:
    text = "退订 " + "，".join(NUMBER_FORMS) + "，订单 12 号"
    masked = mask_digit_runs(text)
    assert masked.startswith("退订 ") and "订单 12 号" in masked  # short numbers and words stay
    assert sum(ch.isdigit() for ch in masked) == 2


def test_after_completion_the_reply_keeps_its_wording_without_any_number(
    client: Client,
    tenant_a: Tenant,
    generic_a: InboundCredential,
    outbox: Path,
    eager_celery: Celery,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    tenant_a.erasure_delay_hours = 0
    tenant_a.save()
    body = f"退订！我的号码 {' / '.join(NUMBER_FORMS)}，别再发了"
    with django_capture_on_commit_callbacks(execute=True):
        post_generic(client, tenant_a, generic_payload(body, message_id="e1"))

    request = UnsubscribeRequest.objects.for_tenant(tenant_a).get()
    assert request.state == UnsubscribeRequest.State.COMPLETED, request.attention_reason
    message = InboundMessage.objects.for_tenant(tenant_a).get()
    assert message.from_number == "" and message.from_masked == "138****8000"
    assert message.body.startswith("退订！我的号码 ") and message.body.endswith("，别再发了")
    assert not any(ch.isdigit() for ch in message.body)
    compact = message.body.replace(" ", "").replace("-", "")
    for raw in ("13800138000", "13900139000", "8613800138000"):
        assert raw not in compact
