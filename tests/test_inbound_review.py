"""The outside review of reply SMS (FINDINGS-11-12: F1, F3, F6–F9, F12, F15), through the real
webhook URLs with real signatures: a guessed re-subscribe lifts nothing, raw numbers go as soon as a
reply is dealt with, unroutable replies show on the admin home, +86 destinations route, a reply to
another tenant's number is answered, wording of the built-in texts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import time_machine
from django.db import connection
from django.urls import reverse

from lanzuan.phones import mask, platform_phone_hash, tenant_phone_hash
from notifications.defaults import DEFAULT_TEXTS
from notifications.models import Message
from unsubscribe.inbound import services as inbound_services
from unsubscribe.inbound.intent import IntentResult
from unsubscribe.inbound.models import Action, InboundMessage, ReplyRoute, UnroutedMessage
from unsubscribe.inbound.tasks import inbound_numbers_sweep
from unsubscribe.models import ChannelSetting, Service, Subscription, Suppression, SuppressionEvent
from unsubscribe.partner.models import WebhookDelivery
from unsubscribe.partner.webhooks import webhook_endpoint_create
from unsubscribe.suppressions.selectors import suppression_status

from . import test_inbound_replies as replies
from .test_inbound import GENERIC_SECRET, PHONE, aliyun_message, generic_payload, post_generic
from .test_inbound_replies import post_platform_aliyun, say, sent

if TYPE_CHECKING:
    from pathlib import Path

    from celery import Celery
    from django.contrib.auth.models import User
    from django.test import Client
    from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

    from tenants.models import Tenant
    from unsubscribe.inbound.models import InboundCredential, PlatformInboundCredential

    from .pipeline_helpers import Pipeline

# The reply tests' fixtures, shared (pytest finds fixtures by the module's names).
generic_a = replies.generic_a
public_url = replies.public_url
shared = replies.shared
twilio_a = replies.twilio_a

THIRD_PARTY = "13912345678"


@pytest.fixture(autouse=True)
def english(client: Client) -> None:
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


def opted_out(client: Client, tenant: Tenant, sid: str = "SM1") -> None:
    say(client, tenant, "TD", sid)
    assert suppression_status(tenant=tenant, phone=PHONE).suppressed


# --- F1: a re-subscribe the classifier only guesses lifts nothing ---------------------------


@pytest.mark.parametrize("text", ["退订以后还能恢复吗", "稍后回复"])
def test_f1_a_help_question_or_chit_chat_after_td_lifts_nothing(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str, text: str
) -> None:
    webhook_endpoint_create(
        tenant=tenant_a, url="https://crm.example.com/hooks", events=["suppression.lifted"]
    )
    opted_out(client, tenant_a)

    message = say(client, tenant_a, text, "SM2")

    assert message.action != Action.RESUBSCRIBE
    assert suppression_status(tenant=tenant_a, phone=PHONE).suppressed
    assert not SuppressionEvent.objects.for_tenant(tenant_a).filter(action="lifted").exists()
    assert not WebhookDelivery.objects.for_tenant(tenant_a).filter(event="suppression.lifted").exists()
    assert not sent(tenant_a, "resubscribed")


@pytest.mark.parametrize("text", ["退订以后还能恢复吗", "稍后回复"])
def test_f1_a_borderline_resubscribe_is_kept_for_staff_not_acted_on(
    client: Client,
    tenant_a: Tenant,
    twilio_a: InboundCredential,
    public_url: str,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
) -> None:
    # given an opt-out, and a classifier that reads the next reply as a fairly sure re-subscribe
    opted_out(client, tenant_a)
    borderline = IntentResult(
        intent="resubscribe", confidence=0.85, action="act", matched="model (resubscribe 0.85)"
    )
    monkeypatch.setattr(inbound_services, "classify", lambda *args, **kwargs: borderline)

    message = say(client, tenant_a, text, "SM2")

    # then nothing is lifted, and staff are asked to read it (there is an opt-out it could be about)
    assert message.action == Action.NONE
    assert message.flagged_for_attention and "Nothing was lifted" in message.flag_reason
    assert Suppression.objects.for_tenant(tenant_a).filter(scope="*").exists()
    assert not sent(tenant_a, "resubscribed")


def test_f1_a_borderline_resubscribe_without_any_opt_out_is_not_flagged(
    client: Client,
    tenant_a: Tenant,
    twilio_a: InboundCredential,
    public_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    borderline = IntentResult(intent="resubscribe", confidence=0.85, action="act", matched="model")
    monkeypatch.setattr(inbound_services, "classify", lambda *args, **kwargs: borderline)
    message = say(client, tenant_a, "稍后回复", "SM1")
    assert message.action == Action.NONE and not message.flagged_for_attention


def test_f1_explicit_resubscribe_words_still_lift(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    opted_out(client, tenant_a)
    message = say(client, tenant_a, "重新订阅", "SM2")
    assert message.action == Action.RESUBSCRIBE
    assert not suppression_status(tenant=tenant_a, phone=PHONE).suppressed


def test_f1_the_threshold_is_a_setting(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str, settings: Settings
) -> None:
    settings.LANZUAN_RESUBSCRIBE_MIN_CONFIDENCE = 1.0
    opted_out(client, tenant_a)
    assert say(client, tenant_a, "重新订阅", "SM2").action == Action.NONE
    assert suppression_status(tenant=tenant_a, phone=PHONE).suppressed


# --- F3: the raw number goes as soon as the reply is dealt with ------------------------------


@pytest.mark.parametrize("text", ["HELP", "退订成功了吗", "不要", "see you at lunch", "TD"])
def test_f3_a_handled_reply_keeps_hash_and_mask_only(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str, text: str
) -> None:
    message = say(client, tenant_a, f"{text} {THIRD_PARTY}" if text == "TD" else text, "SM1")
    assert message.from_number == ""
    assert (message.from_hash, message.from_masked) == (tenant_phone_hash(tenant_a.pk, PHONE), mask(PHONE))
    assert THIRD_PARTY not in message.body


def test_f3_a_yes_to_a_clarification_still_files_without_the_stored_number(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    asked = say(client, tenant_a, "不要", "SM1")
    assert asked.action == Action.CLARIFY and asked.from_number == ""
    answer = say(client, tenant_a, "是", "SM2")
    assert answer.request is not None
    assert answer.action == Action.UNSUBSCRIBE and answer.request.phone_hash == tenant_phone_hash(
        tenant_a.pk, PHONE
    )


def test_f3_replies_after_the_opt_out_completed_keep_no_number(
    client: Client,
    tenant_a: Tenant,
    generic_a: InboundCredential,
    outbox: Path,
    eager_celery: Celery,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    tenant_a.erasure_delay_hours = 0
    tenant_a.save()
    with django_capture_on_commit_callbacks(execute=True):
        post_generic(client, tenant_a, generic_payload("TD", message_id="g1"))
    for n, text in enumerate(["yes", "好的", "退订成功了吗", f"退订，我的另一个号是{THIRD_PARTY}"], start=2):
        with django_capture_on_commit_callbacks(execute=True):
            post_generic(client, tenant_a, generic_payload(text, message_id=f"g{n}"))
    rows = InboundMessage.objects.for_tenant(tenant_a)
    assert rows.count() == 5
    assert not rows.exclude(from_number="").exists()
    assert not rows.filter(body__contains=THIRD_PARTY).exists()


def test_f3_a_held_reply_keeps_the_number_for_staff_until_the_deadline(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    ChannelSetting.objects.create(tenant=tenant_a, channel="sms", enabled=False)
    with time_machine.travel(datetime(2026, 3, 1, 8, 0, tzinfo=UTC), tick=False):
        held = say(client, tenant_a, f"TD {THIRD_PARTY}", "SM1")
    assert held.action == Action.HELD and held.from_number == PHONE  # staff may still file it

    # the daily sweep leaves it alone within the tenant's SLA, and blanks it after
    with time_machine.travel(datetime(2026, 3, 2, 8, 0, tzinfo=UTC), tick=False):
        inbound_numbers_sweep.apply()
    held.refresh_from_db()
    assert held.from_number == PHONE
    with time_machine.travel(datetime(2026, 3, 1, 8, 0, tzinfo=UTC) + timedelta(hours=49), tick=False):
        inbound_numbers_sweep.apply()
    held.refresh_from_db()
    assert held.from_number == "" and THIRD_PARTY not in held.body and held.from_masked == mask(PHONE)


def test_f3_filing_a_held_reply_drops_its_number(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str, alice: User
) -> None:
    setting = ChannelSetting.objects.create(tenant=tenant_a, channel="sms", enabled=False)
    held = say(client, tenant_a, f"TD {THIRD_PARTY}", "SM1")
    setting.enabled = True
    setting.save()
    client.force_login(alice)
    changelist = reverse("admin:inbound_inboundmessage_changelist")
    client.post(changelist, {"action": "file_unsubscribe_requests", "_selected_action": [held.pk]})
    held.refresh_from_db()
    assert held.request is not None and held.from_number == "" and THIRD_PARTY not in held.body


def test_f3_unroutable_replies_keep_the_raw_number_seven_days(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, shared: PlatformInboundCredential
) -> None:
    with time_machine.travel(datetime(2026, 3, 1, 8, 0, tzinfo=UTC), tick=False):
        post_platform_aliyun(client, [aliyun_message(f"TD {THIRD_PARTY}", 1, dest_code="10699999")])
    unrouted = UnroutedMessage.objects.get()
    assert unrouted.from_number == PHONE  # staff may file it at the right tenant

    with time_machine.travel(datetime(2026, 3, 7, 8, 0, tzinfo=UTC), tick=False):
        inbound_numbers_sweep.apply()
    unrouted.refresh_from_db()
    assert unrouted.from_number == PHONE
    with time_machine.travel(datetime(2026, 3, 8, 9, 0, tzinfo=UTC), tick=False):
        inbound_numbers_sweep.apply()
    unrouted.refresh_from_db()
    assert unrouted.from_number == "" and THIRD_PARTY not in unrouted.body
    # platform-level (no tenant): the platform digest
    assert unrouted.flagged_for_attention and unrouted.from_hash == platform_phone_hash(PHONE)


@pytest.mark.django_db
def test_f3_the_sweep_is_scheduled_daily(monkeypatch: pytest.MonkeyPatch) -> None:
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    from lanzuan.celery import app

    # as beat starts (it writes settings.CELERY_BEAT_SCHEDULE into its rows); a transactional test
    # run before this one may have flushed the rows the old data migrations left
    monkeypatch.setattr("django_celery_beat.schedulers.close_old_connections", lambda: None)
    DatabaseScheduler(app=app)
    task = PeriodicTask.objects.get(task="unsubscribe.inbound.tasks.inbound_numbers_sweep")
    assert task.enabled and timedelta(**{task.interval.period: task.interval.every}) == timedelta(days=1)


# --- F6: unroutable replies on the admin home ------------------------------------------------


def test_f6_superusers_see_unroutable_replies_on_the_admin_home(
    client: Client,
    tenant_a: Tenant,
    tenant_b: Tenant,
    shared: PlatformInboundCredential,
    root: User,
    alice: User,
) -> None:
    post_platform_aliyun(client, [aliyun_message("TD", 1, dest_code="10699999")])
    post_generic_b = generic_payload("TD", message_id="x1", to="10690002")
    from unsubscribe.inbound.services import inbound_credential_set

    inbound_credential_set(tenant=tenant_a, provider="generic", secret=GENERIC_SECRET)
    post_generic(client, tenant_a, post_generic_b)
    assert UnroutedMessage.objects.filter(flagged_for_attention=True).count() == 2

    client.force_login(root)
    page = client.get(reverse("admin:index")).content.decode()
    unrouted_url = reverse("admin:inbound_unroutedmessage_changelist")
    assert 'id="lanzuan-unrouted"' in page and f'href="{unrouted_url}?flagged_for_attention__exact=1"' in page
    assert "<strong" in page.split('id="lanzuan-unrouted"')[1].split("</p>")[0]
    assert ">2</strong>" in page.split('id="lanzuan-unrouted"')[1]
    assert client.get(f"{unrouted_url}?flagged_for_attention__exact=1").status_code == 200

    # a tenant admin gets no link to a list they may not open
    client.force_login(alice)
    page = client.get(reverse("admin:index")).content.decode()
    assert 'id="lanzuan-attention-queue"' in page
    assert "lanzuan-unrouted" not in page and unrouted_url not in page


# --- F7: +86 destinations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "to"),
    [  # 10690003: a route only, not B's reply number
        ("10690003", "+8610690003"),
        ("10690003", "008610690003"),
        ("+8610690003", "10690003"),
        ("+86 1069 0003", "+8610690003"),
        ("8610690003", "10690003"),
    ],
)
def test_f7_a_destination_with_the_country_code_routes(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, shared: PlatformInboundCredential, route: str, to: str
) -> None:
    ReplyRoute.objects.create(tenant=tenant_b, destination=route)
    post_platform_aliyun(client, [aliyun_message("TD", 1, dest_code=to)])
    assert not UnroutedMessage.objects.exists()
    assert InboundMessage.objects.for_tenant(tenant_b).get().action == Action.UNSUBSCRIBE


def test_f7_a_twilio_to_with_the_country_code_finds_the_service_route(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    promo = Service.objects.create(tenant=tenant_a, name="Promo", code="promo")
    ReplyRoute.objects.create(tenant=tenant_a, destination="1069000188", service=promo)
    message = say(client, tenant_a, "TD", "SM1", to="+861069000188")
    assert message.route is not None and message.route.service == promo
    assert message.request is not None
    assert [s.code for s in message.request.services.all()] == ["promo"]


# --- F8: a TD to another tenant's number on a tenant URL ---------------------------------------


def test_f8_a_td_to_another_tenants_number_is_answered_with_this_tenants_help(
    client: Client,
    tenant_a: Tenant,
    tenant_b: Tenant,
    generic_a: InboundCredential,
    shared: PlatformInboundCredential,
) -> None:
    response = post_generic(client, tenant_a, generic_payload("TD", message_id="x1", to="10690002"))

    assert response.json()["action"] == "unrouted"
    unrouted = UnroutedMessage.objects.get()
    assert unrouted.flagged_for_attention and unrouted.answered and unrouted.belongs_to == tenant_b
    (help_,) = Message.objects.for_tenant(tenant_a).filter(event="help")
    assert help_.to_hash == tenant_phone_hash(tenant_a.pk, PHONE) and "TD" in help_.body
    assert not Message.objects.for_tenant(tenant_b).exists()  # never filed or sent under B

    # chit-chat gets no text
    post_generic(client, tenant_a, generic_payload("see you at lunch", message_id="x2", to="10690002"))
    assert Message.objects.for_tenant(tenant_a).filter(event="help").count() == 1


# --- F9: a re-subscribe with nothing to lift; naming what resumed ------------------------------


def test_f9_nothing_to_lift_answers_the_status_not_subscribed_again(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    opted_out(client, tenant_a)
    say(client, tenant_a, "重新订阅", "SM2")
    assert len(sent(tenant_a, "resubscribed")) == 1

    again = say(client, tenant_a, "重新订阅", "SM3")

    assert again.action == Action.STATUS
    assert len(sent(tenant_a, "resubscribed")) == 1 and len(sent(tenant_a, "status")) == 1
    assert SuppressionEvent.objects.for_tenant(tenant_a).filter(action="lifted").count() == 1


def test_f9_the_resubscribed_text_names_the_services_resumed(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    offers = Service.objects.create(tenant=tenant_a, name="流量优惠", code="data-offers")
    ReplyRoute.objects.create(tenant=tenant_a, destination="1069000188", service=offers)
    Subscription.objects.create(
        tenant=tenant_a,
        service=offers,
        phone=PHONE,
        phone_hash=tenant_phone_hash(tenant_a.pk, PHONE),
        phone_masked=mask(PHONE),
    )
    say(client, tenant_a, "TD", "SM1", to="1069000188")

    say(client, tenant_a, "重新订阅", "SM2", to="1069000188")

    (text,) = sent(tenant_a, "resubscribed")
    assert "您已重新订阅：流量优惠。" in text.body and "营销信息" not in text.body

    say(client, tenant_a, "TD", "SM3", to="10690001")
    say(client, tenant_a, "重新订阅", "SM4", to="10690001")
    assert "您已重新订阅：全部营销信息。" in sent(tenant_a, "resubscribed")[-1].body


# --- F12: wording of the built-in texts ----------------------------------------------------------


def test_f12_the_help_text_does_not_run_the_keywords_into_the_verb(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    ChannelSetting.objects.create(tenant=tenant_a, channel="sms", extra_keywords="QX, 取消营销")
    say(client, tenant_a, "HELP", "SM1")
    (help_,) = sent(tenant_a, "help")
    assert "取消营销退订" not in help_.body
    assert "请回复TD/退订/QX/取消营销，" in help_.body


def test_f12_no_chinese_text_runs_the_keywords_into_the_next_word() -> None:
    # "回复TD/退订/QX/取消营销退订营销信息": a keyword list is followed by punctuation or the end
    for (event, language), text in DEFAULT_TEXTS.items():
        if language == "zh-hans" and "{keywords}" in text.body:
            after = text.body.split("{keywords}", 1)[1][:1]
            assert after in ("", "，", "。", "；"), (event, text.body)


def test_f12_the_confirmation_reads_as_finished(client: Client) -> None:
    completed = DEFAULT_TEXTS[("unsubscribe_completed", "zh-hans")].body
    assert "仍会发送：" not in completed
    # sent beside the terminations (issue 19 item 9): it says they are under way, never done
    assert "正在终止" in completed and "已终止" not in completed


# --- F15: a yes to a question about one service stops that service -----------------------------


def test_f15_a_yes_on_the_general_number_to_a_one_service_question_stops_that_service(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    club = Service.objects.create(tenant=tenant_a, name="Blue Diamond", code="blue-diamond")
    ReplyRoute.objects.create(tenant=tenant_a, destination="10690001888", service=club)
    ReplyRoute.objects.create(tenant=tenant_a, destination="10690001")
    asked = say(client, tenant_a, "不要", "SM1", to="10690001888")
    assert asked.action == Action.CLARIFY

    answer = say(client, tenant_a, "是", "SM2", to="10690001")

    assert answer.action == Action.UNSUBSCRIBE
    request = answer.request
    assert request is not None
    assert not request.scope_all and [s.code for s in request.services.all()] == ["blue-diamond"]
    scopes = set(Suppression.objects.for_tenant(tenant_a).values_list("scope", flat=True))
    assert scopes == {"blue-diamond"}


def test_f15_a_td_of_its_own_on_the_general_number_still_stops_everything(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, public_url: str
) -> None:
    club = Service.objects.create(tenant=tenant_a, name="Blue Diamond", code="blue-diamond")
    ReplyRoute.objects.create(tenant=tenant_a, destination="10690001888", service=club)
    say(client, tenant_a, "不要", "SM1", to="10690001888")
    answer = say(client, tenant_a, "TD", "SM2", to="10690001")
    assert answer.request is not None
    assert answer.request.scope_all


# --- F3, end to end: no table keeps the raw number after help, status and late replies ---------


def test_f3_after_replies_of_every_kind_no_table_holds_the_raw_number(
    client: Client, tenant_a: Tenant, outbox: Path, pipeline: Pipeline
) -> None:
    from unsubscribe.inbound.services import inbound_credential_set

    from .test_pipeline import _text_columns, state_of

    inbound_credential_set(tenant=tenant_a, provider="generic", secret=GENERIC_SECRET)

    def reply(text: str, message_id: str) -> None:
        assert post_generic(client, tenant_a, generic_payload(text, message_id=message_id)).status_code == 200

    with pipeline():
        reply("HELP", "r1")
        reply("退订成功了吗", "r2")
        reply(f"TD {THIRD_PARTY}", "r3")
    request = InboundMessage.objects.for_tenant(tenant_a).get(provider_message_id="r3").request
    assert request is not None
    assert state_of(request) == "completed"
    # after the opt-out completed: a late yes, a thank-you, a status question, help
    with pipeline():
        for n, text in enumerate(["yes", "好的", "退订成功了吗", "HELP"], start=4):
            reply(text, f"r{n}")
    assert not Message.objects.for_tenant(tenant_a).filter(status=Message.Status.QUEUED).exists()

    found = []
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table, column in _text_columns():
            for raw in ("13800138000", THIRD_PARTY):
                cursor.execute(
                    f"SELECT COUNT(*) FROM {qn(table)} WHERE CAST({qn(column)} AS TEXT) LIKE %s",  # noqa: S608
                    [f"%{raw}%"],
                )
                if cursor.fetchone()[0]:
                    found.append(f"{table}.{column} ({raw[:3]}…)")
    assert found == [], f"a raw number is still stored in {found}"
    assert InboundMessage.objects.for_tenant(tenant_a).count() == 7
