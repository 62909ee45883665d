"""The voice menu (IVR): Twilio Voice and the generic signed JSON protocol, driven end to end
through the Django test client with real signatures (Twilio's own RequestValidator,
lanzuan.signing). Every TwiML answer is checked by tests/twiml_helpers.validate_twiml."""

from __future__ import annotations

import json
import threading
import time
import xml.etree.ElementTree as ET
from datetime import timedelta
from io import StringIO
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from twilio.request_validator import RequestValidator

from lanzuan import signing
from tenants.models import Tenant
from unsubscribe.channels import ways_to_unsubscribe
from unsubscribe.models import (
    ChannelSetting,
    RequestChannel,
    Service,
    UnsubscribeRequest,
    VerificationMethod,
)
from unsubscribe.pipeline import datasources
from unsubscribe.suppressions.selectors import suppression_status
from unsubscribe.voice.models import Outcome, VoiceCall, VoiceCredential, VoicePrompt
from unsubscribe.voice.prompts import spell_reference
from unsubscribe.voice.services import voice_call_step, voice_credential_set

from .conftest import PASSWORD
from .pipeline_helpers import thread_like_the_test
from .twiml_helpers import InvalidTwiML, spoken, validate_twiml

if TYPE_CHECKING:
    from pathlib import Path

    from celery import Celery
    from django.contrib.auth.models import User
    from django.test import Client
    from django.test.client import _MonkeyPatchedWSGIResponse as Response
    from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

PUBLIC = "https://lz.example"
PHONE = "+8613800138000"
TWILIO_TOKEN = "twilio-voice-auth-token-for-tests"
GENERIC_SECRET = "generic-voice-hmac-secret-for-tests"


@pytest.fixture(autouse=True)
def english(client: Client) -> None:
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


@pytest.fixture
def public_url(settings: Settings) -> str:
    settings.PUBLIC_BASE_URL = PUBLIC
    return PUBLIC


@pytest.fixture
def ivr_on(tenant_a: Tenant) -> ChannelSetting:
    return ChannelSetting.objects.create(
        tenant=tenant_a, channel=RequestChannel.HOTLINE, hotline_number="400-800-1234", ivr_enabled=True
    )


@pytest.fixture
def services_a(tenant_a: Tenant) -> list[Service]:
    return [
        Service.objects.create(tenant=tenant_a, code="offers", name="会员优惠"),
        Service.objects.create(tenant=tenant_a, code="alerts", name="流量提醒"),
    ]


@pytest.fixture
def twilio_voice_a(tenant_a: Tenant, public_url: str) -> VoiceCredential:
    return voice_credential_set(tenant=tenant_a, provider="twilio", secret=TWILIO_TOKEN)


@pytest.fixture
def generic_voice_a(tenant_a: Tenant) -> VoiceCredential:
    return voice_credential_set(tenant=tenant_a, provider="generic", secret=GENERIC_SECRET)


def twilio_hook(tenant: Tenant) -> str:
    return reverse("voice:twilio-hook", kwargs={"tenant_slug": tenant.slug})


class TwilioCall:
    """One call as Twilio Voice makes it: the first webhook, then each <Gather>'s action."""

    def __init__(
        self, client: Client, tenant: Tenant, sid: str = "CA" + "1" * 32, caller: str = PHONE
    ) -> None:
        self.client, self.tenant, self.sid, self.caller = client, tenant, sid, caller
        self.url = twilio_hook(tenant)
        self.last: ET.Element | None = None

    def params(self, digits: str | None) -> dict[str, str]:
        params = {
            "CallSid": self.sid,
            "AccountSid": "AC" + "0" * 32,
            "From": self.caller,
            "To": "+14155550100",
            "CallStatus": "in-progress",
            "Direction": "inbound",
        }
        if digits is not None:
            params["Digits"] = digits
        return params

    def post(
        self, url: str, params: dict[str, str], *, token: str = TWILIO_TOKEN, signature: str | None = None
    ) -> Response:
        if signature is None:
            signature = RequestValidator(token).compute_signature(PUBLIC + url, params)
        return self.client.post(url, params, HTTP_X_TWILIO_SIGNATURE=signature)

    def _answer(self, response: Response) -> ET.Element:
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/xml")
        self.last = validate_twiml(response.content)
        return self.last

    def start(self) -> ET.Element:
        return self._answer(self.post(self.url, self.params(None)))

    def action(self) -> str:
        """Where the last <Gather> posts the keys: our own public URL."""
        assert self.last is not None
        gather = self.last.find("Gather")
        assert gather is not None, "the call has ended"
        action = gather.attrib["action"]
        assert action.startswith(PUBLIC + self.url)
        parts = urlsplit(action)
        return f"{parts.path}?{parts.query}"

    def press(self, digits: str) -> ET.Element:
        """A key press; "" is Twilio's post on silence (actionOnEmptyResult)."""
        return self._answer(self.post(self.action(), self.params(digits)))


def call_row(sid: str = "CA" + "1" * 32) -> VoiceCall:
    return VoiceCall.objects.unscoped(reason="test").get(call_id=sid)


# --- the validator itself ------------------------------------------------------------------


@pytest.mark.parametrize(
    "twiml",
    [
        "<Response><Play>https://x/a.mp3</Play></Response>",
        '<Response><Say colour="red">hi</Say></Response>',
        '<Response><Gather numDigits="0"><Say>hi</Say></Gather></Response>',
        "<Response><Gather><Hangup/></Gather></Response>",
        "<Response><Hangup/><Say>never heard</Say></Response>",
        "<Other/>",
    ],
)
def test_twiml_validator_refuses_undocumented_verbs_and_attributes(twiml: str) -> None:
    with pytest.raises(InvalidTwiML):
        validate_twiml(twiml)


# --- Twilio: the flow ----------------------------------------------------------------------


def test_twilio_menu_choose_confirm_files_and_suppresses_before_the_final_twiml(
    client: Client,
    tenant_a: Tenant,
    ivr_on: ChannelSetting,
    services_a: list[Service],
    twilio_voice_a: VoiceCredential,
) -> None:
    call = TwilioCall(client, tenant_a)

    # given the call starts: the menu in the tenant's language, one key expected
    menu = call.start()
    gather = menu.find("Gather")
    assert gather is not None and gather.attrib["numDigits"] == "1" and gather.attrib["input"] == "dtmf"
    says = list(gather.iter("Say"))
    assert says[0].attrib["language"] == "zh-CN"
    assert says[0].text is not None and says[1].text is not None
    assert "退订运营商 A的全部营销信息，请按1" in says[0].text
    assert "请按2" in says[0].text and "重听，请按9" in says[0].text
    assert says[1].attrib["language"] == "en-US" and "For English, press 8" in says[1].text

    # when the caller chooses a service: the services are read out by name, numbered
    services = call.press("2")
    assert "退订会员优惠，请按1；退订流量提醒，请按2" in spoken(services)

    # and picks the first one: the terms in short form before the final key press
    confirm = call.press("1")
    assert "您将退订运营商 A的会员优惠" in spoken(confirm)
    assert "用于营销的个人信息将被删除" in spoken(confirm)
    assert "确认退订，请按1" in spoken(confirm)
    assert "不可撤销" not in spoken(confirm)  # the tenant allows re-subscribing
    assert UnsubscribeRequest.objects.unscoped(reason="test").count() == 0

    # and confirms
    final = call.press("1")

    # then the final TwiML reads the reference of a request that is already filed and suppressed
    assert final.find("Gather") is None
    assert [child.tag for child in final][-1] == "Hangup"
    request = UnsubscribeRequest.objects.for_tenant(tenant_a).get()
    assert spell_reference(request.reference, "zh-hans") in spoken(final)
    assert request.reference not in spoken(final)  # read character by character, never as a word
    assert request.channel == RequestChannel.HOTLINE
    assert request.verification_method == VerificationMethod.CALLER_ID
    assert request.verification_evidence["call_id"] == call.sid
    assert request.verification_evidence["digits"] == ["2", "1", "1"]
    assert [s.code for s in request.services.all()] == ["offers"]
    assert suppression_status(tenant=tenant_a, phone=PHONE, service_code="offers").suppressed
    assert not suppression_status(tenant=tenant_a, phone=PHONE, service_code="alerts").suppressed
    row = call_row()
    assert row.outcome == Outcome.FILED and row.request == request
    assert row.caller == "" and row.caller_masked == "138****8000"  # the request holds the number now


def test_twilio_all_marketing_in_english_says_an_irreversible_opt_out_is_irreversible(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, twilio_voice_a: VoiceCredential
) -> None:
    tenant_a.allow_resubscribe = False
    tenant_a.terms_en = (
        "All marketing messages stop at once. Your marketing profile is deleted within 7 days. "
        + ("More details follow. " * 20)
    )
    tenant_a.save()
    call = TwilioCall(client, tenant_a)
    call.start()

    english = call.press("8")  # the other language
    say = english.find("Gather/Say")
    assert say is not None and say.attrib["language"] == "en-US"
    assert "Press 1 to stop all marketing from 运营商 A; press 2 to choose a service" in spoken(english)

    confirm = call.press("1")
    text = spoken(confirm)
    assert "You are stopping all marketing from 运营商 A." in text
    assert "Your marketing profile is deleted within 7 days." in text  # the tenant's terms, short form
    assert "More details follow. " * 5 not in text
    assert "this cannot be undone" in text

    final = call.press("1")
    request = UnsubscribeRequest.objects.unscoped(reason="test").get()
    assert request.scope_all and request.language == "en"
    assert spell_reference(request.reference, "en") in spoken(final)
    assert suppression_status(tenant=tenant_a, phone=PHONE).suppressed


def test_twilio_bad_signatures_get_403_and_nothing_happens(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, twilio_voice_a: VoiceCredential
) -> None:
    call = TwilioCall(client, tenant_a)
    url, params = call.url, call.params(None)

    assert call.post(url, params, signature="").status_code == 403
    assert call.post(url, params, token="someone-elses-token").status_code == 403
    # a signature over other parameters (a key press forged onto a real signature)
    signed = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC + url, params)
    assert call.post(url + "?turn=0", {**params, "Digits": "1"}, signature=signed).status_code == 403
    assert VoiceCall.objects.unscoped(reason="test").count() == 0
    assert UnsubscribeRequest.objects.unscoped(reason="test").count() == 0


def test_twilio_unknown_tenant_404_and_unconfigured_403(
    client: Client,
    tenant_a: Tenant,
    tenant_b: Tenant,
    ivr_on: ChannelSetting,
    twilio_voice_a: VoiceCredential,
) -> None:
    response = TwilioCall(client, tenant_a).post("/hooks/voice/nobody/twilio/", {"CallSid": "CA1"})
    assert response.status_code == 404
    assert TwilioCall(client, tenant_b).post(twilio_hook(tenant_b), {"CallSid": "CA1"}).status_code == 403
    VoiceCredential.objects.for_tenant(tenant_a).update(enabled=False)
    assert TwilioCall(client, tenant_a).post(twilio_hook(tenant_a), {"CallSid": "CA1"}).status_code == 403


@pytest.mark.parametrize(
    "caller", ["", "anonymous", "Restricted", "+266696687", "+86282452253", "client:alice"]
)
def test_withheld_caller_id_hears_the_other_ways_and_files_nothing(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, twilio_voice_a: VoiceCredential, caller: str
) -> None:
    answer = TwilioCall(client, tenant_a, caller=caller).start()

    assert answer.find("Gather") is None and [c.tag for c in answer][-1] == "Hangup"
    assert "无法识别您的来电号码" in spoken(answer) and "回复TD" in spoken(answer)
    assert "We cannot see your number" in spoken(answer) and "Reply STOP" in spoken(answer)
    assert UnsubscribeRequest.objects.unscoped(reason="test").count() == 0
    row = call_row()
    assert row.outcome == Outcome.WITHHELD and row.caller == "" and row.caller_hash == ""


def test_voice_menu_switched_off_files_nothing(
    client: Client, tenant_a: Tenant, twilio_voice_a: VoiceCredential
) -> None:
    # given the hotline channel exists but the tenant has not switched the voice menu on
    answer = TwilioCall(client, tenant_a).start()

    assert answer.find("Gather") is None
    assert "自助语音退订暂未开通" in spoken(answer)
    assert UnsubscribeRequest.objects.unscoped(reason="test").count() == 0
    assert call_row().outcome == Outcome.UNAVAILABLE and call_row().caller == ""


def test_a_repeated_callsid_step_is_idempotent(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, twilio_voice_a: VoiceCredential
) -> None:
    call = TwilioCall(client, tenant_a)
    first = call.start()
    again = call.start()  # Twilio retries the first webhook
    assert ET.tostring(again) == ET.tostring(first)

    # a key press posted twice (a retry) counts once
    url = call.action()
    call.press("1")
    assert call.last is not None
    confirm = ET.tostring(call.last)
    retried = call._answer(call.post(url, call.params("1")))
    assert ET.tostring(retried) == confirm
    assert call_row().turn == 1 and len(call_row().digits) == 1

    # the confirming key press posted twice files one request and reads the same reference
    url = call.action()
    final = call.press("1")
    retried = call._answer(call.post(url, call.params("1")))
    assert ET.tostring(retried) == ET.tostring(final)
    assert UnsubscribeRequest.objects.unscoped(reason="test").count() == 1
    assert call_row().digits[-1]["digits"] == "1" and len(call_row().digits) == 2


@pytest.mark.django_db(transaction=True)
def test_the_same_step_arriving_twice_at_once_files_one_request(tenant_a: Tenant) -> None:
    # given a call at its confirmation (real transactions, two connections below)
    ChannelSetting.objects.create(tenant=tenant_a, channel=RequestChannel.HOTLINE, ivr_enabled=True)
    voice_call_step(tenant=tenant_a, provider="generic", call_id="twin", caller=PHONE)
    confirm = voice_call_step(
        tenant=tenant_a, provider="generic", call_id="twin", caller="", digits="1", turn=0
    )
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def press() -> None:
        try:
            barrier.wait(timeout=5)
            prompt = voice_call_step(
                tenant=tenant_a, provider="generic", call_id="twin", caller="", digits="1", turn=confirm.turn
            )
            results.append(prompt.reference)
        except Exception as exc:  # surfaced by the assertion below
            results.append(exc)
        finally:
            connection.close()

    threads = [thread_like_the_test(press) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # then both answers read the same reference, and one request was filed
    assert len(results) == 2 and results[0] == results[1] and results[0], results
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1
    assert len(VoiceCall.objects.for_tenant(tenant_a).get().digits) == 2


def test_timeouts_and_wrong_keys_repeat_the_prompt_twice_then_hang_up_without_filing(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, twilio_voice_a: VoiceCredential
) -> None:
    call = TwilioCall(client, tenant_a)
    call.start()
    call.press("1")  # at the confirmation

    silence = call.press("")
    assert "我们没有收到您的按键" in spoken(silence) and "确认退订，请按1" in spoken(silence)
    assert silence.find("Gather") is not None

    wrong = call.press("7")
    assert "您的按键无效" in spoken(wrong) and "确认退订，请按1" in spoken(wrong)
    assert wrong.find("Gather") is not None

    end = call.press("")
    assert end.find("Gather") is None and [c.tag for c in end][-1] == "Hangup"
    assert "您的退订没有提交" in spoken(end)
    assert UnsubscribeRequest.objects.unscoped(reason="test").count() == 0
    row = call_row()
    assert row.outcome == Outcome.GAVE_UP and row.caller == ""
    assert [d["digits"] for d in row.digits] == ["1", "", "7", ""]


def test_a_valid_key_between_mistakes_starts_the_count_again(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, twilio_voice_a: VoiceCredential
) -> None:
    call = TwilioCall(client, tenant_a)
    call.start()
    call.press("5")
    call.press("")
    call.press("9")  # hear it again: a valid key
    call.press("5")
    still = call.press("5")
    assert still.find("Gather") is not None


def test_a_call_that_drops_after_the_final_key_press_still_files_and_gets_the_confirmation_sms(
    client: Client,
    tenant_a: Tenant,
    ivr_on: ChannelSetting,
    services_a: list[Service],
    twilio_voice_a: VoiceCredential,
    outbox: Path,
    eager_celery: Celery,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    call = TwilioCall(client, tenant_a)
    call.start()
    call.press("1")
    with django_capture_on_commit_callbacks(execute=True):
        call.press("1")
    # the caller hangs up before hearing the reference: Twilio posts nothing more

    request = UnsubscribeRequest.objects.unscoped(reason="test").get()
    request.refresh_from_db()
    assert request.state == UnsubscribeRequest.State.COMPLETED
    sent = [json.loads(line) for line in outbox.read_text().splitlines()]
    assert [(m["to"], m["channel"]) for m in sent] == [(PHONE, "sms")]
    assert request.reference in sent[0]["body"]
    assert call_row().caller == ""


def test_erasure_clears_the_raw_number_of_a_dropped_call_from_the_same_number(
    client: Client,
    tenant_a: Tenant,
    ivr_on: ChannelSetting,
    twilio_voice_a: VoiceCredential,
    eager_celery: Celery,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    # given an earlier call from the number dropped in the menu (it still holds the number)
    TwilioCall(client, tenant_a, sid="CA-dropped").start()
    assert call_row("CA-dropped").caller == PHONE
    assert "voice.calls" in {source.key for source in datasources.sources("erase")}

    # when another call files and the request completes
    call = TwilioCall(client, tenant_a)
    call.start()
    call.press("1")
    with django_capture_on_commit_callbacks(execute=True):
        call.press("1")

    # then no call row keeps the raw number
    assert (
        UnsubscribeRequest.objects.unscoped(reason="test").get().state == UnsubscribeRequest.State.COMPLETED
    )
    assert call_row("CA-dropped").caller == ""
    assert call_row("CA-dropped").caller_masked == "138****8000"


def test_a_service_deleted_mid_call_is_not_widened_to_all_marketing(
    client: Client,
    tenant_a: Tenant,
    ivr_on: ChannelSetting,
    services_a: list[Service],
    twilio_voice_a: VoiceCredential,
) -> None:
    call = TwilioCall(client, tenant_a)
    call.start()
    call.press("2")
    call.press("1")  # 会员优惠
    Service.objects.for_tenant(tenant_a).filter(code="offers").delete()

    back = call.press("1")

    # N2: told the service is no longer offered, and back in the main menu; nothing filed
    text = spoken(back)
    assert back.find("Gather") is not None
    assert "您选择的业务已不再提供" in text and "退订运营商 A的全部营销信息，请按1" in text
    assert "offers" not in text  # never read out by its internal code
    assert UnsubscribeRequest.objects.unscoped(reason="test").count() == 0
    assert not suppression_status(tenant=tenant_a, phone=PHONE).suppressed
    assert call_row().outcome == Outcome.IN_PROGRESS and call_row().service_code == ""


def test_calls_left_in_the_menu_are_marked_abandoned_and_lose_the_number(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, twilio_voice_a: VoiceCredential
) -> None:
    with time_machine.travel(timezone.now() - timedelta(hours=3), tick=False):
        TwilioCall(client, tenant_a, sid="CA-old").start()
    TwilioCall(client, tenant_a, sid="CA-new").start()

    old = call_row("CA-old")
    assert old.outcome == Outcome.ABANDONED and old.caller == ""
    assert call_row("CA-new").outcome == Outcome.IN_PROGRESS


def test_the_sweep_ends_abandoned_calls_of_every_tenant_without_another_call(
    client: Client,
    tenant_a: Tenant,
    ivr_on: ChannelSetting,
    twilio_voice_a: VoiceCredential,
    settings: Settings,
) -> None:
    from unsubscribe.voice.tasks import end_stale_voice_calls

    # B2: the caller hangs up mid-menu and the tenant gets no further call
    TwilioCall(client, tenant_a, sid="CA-live").start()
    with time_machine.travel(timezone.now() - timedelta(hours=2), tick=False):
        TwilioCall(client, tenant_a, sid="CA-gone").start()
    assert call_row("CA-gone").caller == PHONE

    assert end_stale_voice_calls() == 1
    gone, live = call_row("CA-gone"), call_row("CA-live")
    assert gone.outcome == Outcome.ABANDONED and gone.caller == "" and gone.caller_masked == "138****8000"
    assert live.outcome == Outcome.IN_PROGRESS and live.caller == PHONE

    settings.VOICE_CALL_STALE_AFTER = timedelta(seconds=0)
    assert end_stale_voice_calls() == 1
    assert call_row("CA-live").caller == ""


def test_the_stale_call_sweep_is_scheduled_by_beat(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    from lanzuan.celery import app

    # as beat starts (it writes settings.CELERY_BEAT_SCHEDULE into its rows), whatever rows an
    # earlier transactional test flushed
    monkeypatch.setattr("django_celery_beat.schedulers.close_old_connections", lambda: None)
    DatabaseScheduler(app=app)
    task = PeriodicTask.objects.get(task="unsubscribe.voice.tasks.end_stale_voice_calls")
    assert task.enabled
    assert timedelta(**{task.interval.period: task.interval.every}) == timedelta(minutes=15)


def test_twilio_status_callback_ends_the_call_and_drops_the_number(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, twilio_voice_a: VoiceCredential
) -> None:
    call = TwilioCall(client, tenant_a)
    call.start()
    assert call_row().caller == PHONE
    url = reverse("voice:twilio-status-hook", kwargs={"tenant_slug": tenant_a.slug})
    params = {"CallSid": call.sid, "CallStatus": "completed", "From": PHONE}

    assert call.post(url, params, token="wrong").status_code == 403
    assert call_row().caller == PHONE
    assert call.post(url, params).status_code == 204

    row = call_row()
    assert row.outcome == Outcome.ABANDONED and row.caller == "" and row.ended_at is not None
    out = StringIO()
    call_command("configure_inbound", tenant_a.slug, "twilio-voice", "--enable", stdout=out)
    assert f"{PUBLIC}{url}" in out.getvalue()


def test_a_landline_caller_files_but_is_promised_no_sms_and_gets_none(
    client: Client,
    tenant_a: Tenant,
    ivr_on: ChannelSetting,
    twilio_voice_a: VoiceCredential,
    outbox: Path,
    eager_celery: Celery,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    # R3: a Beijing landline (FIXED_LINE)
    call = TwilioCall(client, tenant_a, caller="01012345678")
    call.start()
    call.press("1")
    with django_capture_on_commit_callbacks(execute=True):
        final = call.press("1")

    assert "确认短信稍后发到" not in spoken(final) and "不会发送确认短信" in spoken(final)
    request = UnsubscribeRequest.objects.unscoped(reason="test").get()
    request.refresh_from_db()
    assert request.state == UnsubscribeRequest.State.COMPLETED
    assert not outbox.exists() or outbox.read_text().strip() == ""
    confirm = request.steps.get(kind="confirm")
    assert "no SMS-capable number" in confirm.receipt


def test_a_mobile_caller_is_still_promised_the_confirmation_sms(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, twilio_voice_a: VoiceCredential
) -> None:
    call = TwilioCall(client, tenant_a)
    call.start()
    call.press("1")
    assert "确认短信稍后发到您的手机" in spoken(call.press("1"))


def test_english_prompts_read_the_english_names(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, twilio_voice_a: VoiceCredential
) -> None:
    # R2
    tenant_a.name_en = "Carrier A"
    tenant_a.save()
    Service.objects.create(tenant=tenant_a, code="offers", name="会员优惠", name_en="Member offers")
    Service.objects.create(tenant=tenant_a, code="alerts", name="流量提醒")  # no English name: the name
    call = TwilioCall(client, tenant_a)
    assert "退订运营商 A的全部营销信息" in spoken(call.start())  # Chinese keeps the name
    english = spoken(call.press("8"))
    assert "stop all marketing from Carrier A" in english and "运营商" not in english
    services = spoken(call.press("2"))
    assert "For Member offers, press 1." in services and "For 流量提醒, press 2." in services
    assert "You are stopping Member offers from Carrier A." in spoken(call.press("1"))


def test_seed_demo_gives_the_demo_tenants_english_names(db: None) -> None:
    call_command("seed_demo", stdout=StringIO())
    mobile = Tenant.objects.get(slug="demo-mobile")
    assert mobile.name == "蓝海移动 BlueSea Mobile" and mobile.name_en == "BlueSea Mobile"
    assert Service.objects.for_tenant(mobile).get(code="data-offers").name_en == "Data offers"


def test_a_too_long_tenant_prompt_is_refused_in_the_admin(
    client: Client, tenant_a: Tenant, alice: User
) -> None:
    # R4
    client.login(username="alice", password=PASSWORD)
    add = reverse("admin:voice_voiceprompt_add")
    long_text = "请按1退订。" * 200  # 1,200 characters, 3,600 bytes
    bad = client.post(add, {"tenant": tenant_a.pk, "key": "menu", "language": "zh-hans", "text": long_text})
    assert bad.status_code == 200 and "too long for the voice platform" in bad.content.decode()
    near = "请按1退订。" * 170 + "{tenant_name}"  # 2,720 bytes + a 200-character name can pass 3,000
    bad = client.post(add, {"tenant": tenant_a.pk, "key": "menu", "language": "zh-hans", "text": near})
    assert bad.status_code == 200 and "too long for the voice platform" in bad.content.decode()
    assert not VoicePrompt.objects.for_tenant(tenant_a).exists()
    ok = client.post(
        add, {"tenant": tenant_a.pk, "key": "menu", "language": "zh-hans", "text": "请按1退订。" * 100}
    )
    assert ok.status_code == 302


def test_long_rendered_steps_are_split_into_several_says(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, twilio_voice_a: VoiceCredential
) -> None:
    for n in range(7):
        Service.objects.create(tenant=tenant_a, code=f"s{n}", name=f"很长的业务名称{n}" * 24)  # 192 chars
    VoicePrompt.objects.create(
        tenant=tenant_a,
        key="service_item",
        language="zh-hans",
        text="如需退订{service_name}这项业务，请您按{key}。",
    )
    call = TwilioCall(client, tenant_a)
    call.start()
    services = call.press("2")
    says = [say.text or "" for say in services.iter("Say")]
    assert len(says) > 1 and all(len(text.encode()) <= 3000 for text in says)
    assert "请您按7" in "".join(says)


def test_page_two_of_the_service_menu_offers_the_previous_page(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, twilio_voice_a: VoiceCredential
) -> None:
    # N1
    for n in range(9):
        Service.objects.create(tenant=tenant_a, code=f"s{n}", name=f"业务{n}")
    call = TwilioCall(client, tenant_a)
    call.start()
    first = call.press("2")
    assert "上一页" not in spoken(first)
    second = call.press("8")
    assert "上一页，请按星号键" in spoken(second)
    again = call.press("*")
    assert "退订业务0，请按1" in spoken(again) and call_row().attempts == 0


def test_prompts_use_the_tenants_advertised_sms_keywords(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, twilio_voice_a: VoiceCredential
) -> None:
    # N3
    ChannelSetting.objects.create(tenant=tenant_a, channel=RequestChannel.SMS, extra_keywords="QX, 取消营销")
    answer = spoken(TwilioCall(client, tenant_a, caller="anonymous").start())
    assert "请回复TD、退订、QX或取消营销到" in answer
    assert "Reply STOP, TD or QX to any marketing text" in answer


@pytest.mark.parametrize("turn", ["1e400", "-1e400", "0.9", "1.5"])
def test_generic_turn_out_of_range_or_fractional_is_a_400(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, generic_voice_a: VoiceCredential, turn: str
) -> None:
    # B1: sent as raw JSON numbers
    post_generic(client, tenant_a, {"call_id": "GF1", "from": PHONE})
    body = ('{"call_id": "GF1", "turn": ' + turn + ', "digits": "2"}').encode()
    signed = signing.signed_headers(GENERIC_SECRET, body)
    extra: dict[str, Any] = {
        "HTTP_" + name.upper().replace("-", "_"): value for name, value in signed.items()
    }
    response = client.post(
        reverse("voice:generic-hook", kwargs={"tenant_slug": tenant_a.slug}),
        body,
        content_type="application/json",
        **extra,
    )
    assert response.status_code == 400 and response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "malformed" and "whole number" in response.json()["message"]
    assert call_row("GF1").step == "menu" and call_row("GF1").turn == 0


def test_a_whole_float_turn_is_accepted(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, generic_voice_a: VoiceCredential
) -> None:
    post_generic(client, tenant_a, {"call_id": "GF2", "from": PHONE})
    assert post_generic(client, tenant_a, {"call_id": "GF2", "turn": 0.0, "digits": "2"}).status_code == 200
    assert call_row("GF2").step == "services"


@pytest.mark.parametrize("name", ["voice:twilio-hook", "voice:generic-hook", "voice:twilio-status-hook"])
def test_get_on_a_voice_hook_is_a_json_405(client: Client, tenant_a: Tenant, name: str) -> None:
    # N4
    response = client.get(reverse(name, kwargs={"tenant_slug": tenant_a.slug}))
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert response.json()["error"] == "method_not_allowed"


def test_configure_inbound_speaks_english_whatever_the_language(tenant_a: Tenant, public_url: str) -> None:
    from django.utils import translation

    out = StringIO()
    with translation.override("zh-hans"):
        call_command(
            "configure_inbound", tenant_a.slug, "generic-voice", "--secret", GENERIC_SECRET, stdout=out
        )
    assert f"generic-voice for {tenant_a.slug}: enabled." in out.getvalue()
    assert "通用" not in out.getvalue()


def test_the_confirm_step_states_irreversibility_once(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, twilio_voice_a: VoiceCredential
) -> None:
    tenant_a.allow_resubscribe = False
    tenant_a.terms_zh = "退订不可撤销：我们将停止所有营销短信。"
    tenant_a.save()
    call = TwilioCall(client, tenant_a)
    call.start()
    text = spoken(call.press("1"))
    assert "退订不可撤销" in text and "请注意，退订后不可撤销" not in text


def test_many_services_are_read_in_pages(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, twilio_voice_a: VoiceCredential
) -> None:
    for n in range(9):
        Service.objects.create(tenant=tenant_a, code=f"s{n}", name=f"业务{n}")
    call = TwilioCall(client, tenant_a)
    call.start()
    first = call.press("2")
    assert "退订业务6，请按7" in spoken(first) and "更多业务，请按8" in spoken(first)
    second = call.press("8")
    assert "退订业务7，请按1" in spoken(second) and "更多业务" not in spoken(second)
    call.press("2")
    call.press("1")
    assert [s.code for s in UnsubscribeRequest.objects.unscoped(reason="test").get().services.all()] == ["s8"]


# --- generic signed JSON -------------------------------------------------------------------


def post_generic(
    client: Client,
    tenant: Tenant,
    payload: Any,
    *,
    secret: str = GENERIC_SECRET,
    headers: dict[str, str] | None = None,
) -> Response:
    body = json.dumps(payload).encode()
    signed = signing.signed_headers(secret, body) if headers is None else headers
    extra: dict[str, Any] = {
        "HTTP_" + name.upper().replace("-", "_"): value for name, value in signed.items()
    }
    return client.post(
        reverse("voice:generic-hook", kwargs={"tenant_slug": tenant.slug}),
        body,
        content_type="application/json",
        **extra,
    )


def test_generic_protocol_happy_path(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, generic_voice_a: VoiceCredential
) -> None:
    start = post_generic(
        client, tenant_a, {"call_id": "aliyun-42", "from": "13800138000", "to": "4008001234"}
    )
    assert start.status_code == 200
    step = start.json()
    assert step["hangup"] is False and step["turn"] == 0
    assert step["prompts"][0]["language"] == "zh-CN" and "请按1" in step["prompts"][0]["text"]
    assert step["expect"] == {"digits": ["1", "2", "9", "8"], "max_digits": 1, "timeout_seconds": 6}

    confirm = post_generic(
        client, tenant_a, {"call_id": "aliyun-42", "turn": step["turn"], "digits": "1"}
    ).json()
    assert "确认退订，请按1" in confirm["prompts"][0]["text"] and confirm["turn"] == 1

    final = post_generic(
        client, tenant_a, {"call_id": "aliyun-42", "turn": confirm["turn"], "digits": "1"}
    ).json()
    request = UnsubscribeRequest.objects.unscoped(reason="test").get()
    assert final["hangup"] is True and final["expect"] is None
    assert final["outcome"] == "filed" and final["reference"] == request.reference
    assert spell_reference(request.reference, "zh-hans") in final["prompts"][0]["text"]
    assert request.verification_method == VerificationMethod.CALLER_ID
    assert request.verification_evidence["call_id"] == "aliyun-42"
    assert suppression_status(tenant=tenant_a, phone=PHONE).suppressed

    # a resent step gets the same answer
    again = post_generic(client, tenant_a, {"call_id": "aliyun-42", "turn": confirm["turn"], "digits": "1"})
    assert again.json() == final and UnsubscribeRequest.objects.unscoped(reason="test").count() == 1


def test_generic_protocol_refuses_bad_signatures_and_malformed_steps(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, generic_voice_a: VoiceCredential
) -> None:
    payload = {"call_id": "c-1", "from": PHONE}
    assert post_generic(client, tenant_a, payload, secret="wrong-secret").status_code == 403
    assert post_generic(client, tenant_a, payload, headers={}).status_code == 401
    stale = signing.signed_headers(GENERIC_SECRET, json.dumps(payload).encode(), now=time.time() - 3600)
    assert post_generic(client, tenant_a, payload, headers=stale).status_code == 403
    assert VoiceCall.objects.unscoped(reason="test").count() == 0

    missing_from = post_generic(client, tenant_a, {"call_id": "c-1"})
    assert missing_from.status_code == 400 and missing_from.json()["error"] == "malformed"
    assert post_generic(client, tenant_a, {"call_id": "c-1", "turn": "x", "digits": "1"}).status_code == 400
    assert post_generic(client, tenant_a, ["not", "an", "object"]).status_code == 400
    assert UnsubscribeRequest.objects.unscoped(reason="test").count() == 0


def test_generic_protocol_withheld_number_files_nothing(
    client: Client, tenant_a: Tenant, ivr_on: ChannelSetting, generic_voice_a: VoiceCredential
) -> None:
    answer = post_generic(client, tenant_a, {"call_id": "c-2", "from": "anonymous"}).json()
    assert answer["hangup"] is True and answer["outcome"] == "withheld"
    assert [p["language"] for p in answer["prompts"]] == ["zh-CN", "en-US"]
    assert UnsubscribeRequest.objects.unscoped(reason="test").count() == 0


# --- prompts, admin, configuration ---------------------------------------------------------


def test_tenant_prompt_replaces_the_built_in_text_and_is_checked_and_previewed_in_the_admin(
    client: Client,
    tenant_a: Tenant,
    tenant_b: Tenant,
    alice: User,
    charlie: User,
    ivr_on: ChannelSetting,
    twilio_voice_a: VoiceCredential,
) -> None:
    client.login(username="alice", password=PASSWORD)
    add = reverse("admin:voice_voiceprompt_add")
    bad = client.post(
        add, {"tenant": tenant_a.pk, "key": "menu", "language": "zh-hans", "text": "按1 {reference}"}
    )
    assert bad.status_code == 200 and "Unknown variables {reference}" in bad.content.decode()

    text = "{tenant_name}退订热线：全部退订按1，选择业务按2，重听按9。"
    saved = client.post(add, {"tenant": tenant_a.pk, "key": "menu", "language": "zh-hans", "text": text})
    assert saved.status_code == 302
    prompt = VoicePrompt.objects.for_tenant(tenant_a).get()

    change = client.get(reverse("admin:voice_voiceprompt_change", args=[prompt.pk])).content.decode()
    assert "运营商 A退订热线：全部退订按1" in change  # the preview
    script = client.get(reverse("admin:voice_voiceprompt_script")).content.decode()
    assert "运营商 A退订热线：全部退订按1" in script
    assert "You are stopping all marketing from 运营商 A." in script

    answer = TwilioCall(client, tenant_a).start()
    assert "运营商 A退订热线：全部退订按1" in spoken(answer)

    # another tenant's administrator neither sees the prompt nor previews tenant A's call
    client.logout()
    client.login(username="charlie", password=PASSWORD)
    assert client.get(reverse("admin:voice_voiceprompt_change", args=[prompt.pk])).status_code == 404
    other = client.get(reverse("admin:voice_voiceprompt_script") + f"?tenant={tenant_a.pk}").content.decode()
    assert "运营商 A" not in other and "Platform B" in other


def test_staff_see_calls_masked_with_keys_and_outcome_and_only_their_tenants(
    client: Client,
    tenant_a: Tenant,
    tenant_b: Tenant,
    alice: User,
    charlie: User,
    ivr_on: ChannelSetting,
    twilio_voice_a: VoiceCredential,
) -> None:
    call = TwilioCall(client, tenant_a)
    call.start()
    call.press("1")
    call.press("1")

    client.login(username="alice", password=PASSWORD)
    page = client.get(reverse("admin:voice_voicecall_changelist")).content.decode()
    assert "138****8000" in page and "13800138000" not in page
    assert "1 1" in page and "Request filed" in page
    found = client.get(reverse("admin:voice_voicecall_changelist") + "?q=13800138000").content.decode()
    assert "138****8000" in found
    detail = client.get(reverse("admin:voice_voicecall_change", args=[call_row().pk])).content.decode()
    assert "13800138000" not in detail

    client.logout()
    client.login(username="charlie", password=PASSWORD)
    assert "138****8000" not in client.get(reverse("admin:voice_voicecall_changelist")).content.decode()
    assert client.get(reverse("admin:voice_voicecall_change", args=[call_row().pk])).status_code == 404


def test_admin_switches_the_voice_menu_on_in_the_hotline_channel(
    client: Client, tenant_a: Tenant, alice: User
) -> None:
    client.login(username="alice", password=PASSWORD)
    response = client.post(
        reverse("admin:unsubscribe_channelsetting_add"),
        {
            "tenant": tenant_a.pk,
            "channel": "hotline",
            "enabled": "on",
            "hotline_number": "4008001234",
            "ivr_enabled": "on",
        },
    )
    assert response.status_code == 302
    assert ChannelSetting.objects.for_tenant(tenant_a).get(channel="hotline").ivr_enabled
    way = next(w for w in ways_to_unsubscribe(tenant=tenant_a, language="en") if w.channel == "hotline")
    assert "voice prompts" in way.instruction


def test_configure_inbound_sets_voice_credentials(tenant_a: Tenant, public_url: str) -> None:
    out = StringIO()
    call_command("configure_inbound", tenant_a.slug, "twilio-voice", "--auth-token", TWILIO_TOKEN, stdout=out)
    credential = VoiceCredential.objects.for_tenant(tenant_a).get(provider="twilio")
    assert credential.secret == TWILIO_TOKEN and credential.enabled
    assert f"{PUBLIC}/hooks/voice/{tenant_a.slug}/twilio/" in out.getvalue()
    assert TWILIO_TOKEN not in out.getvalue()
    assert "voice menu is off" in out.getvalue()

    out = StringIO()
    call_command("configure_inbound", tenant_a.slug, "generic-voice", "--generate", stdout=out)
    secret = out.getvalue().strip().splitlines()[-1]
    assert VoiceCredential.objects.for_tenant(tenant_a).get(provider="generic").secret == secret

    call_command("configure_inbound", tenant_a.slug, "twilio-voice", "--disable", stdout=StringIO())
    assert not VoiceCredential.objects.for_tenant(tenant_a).get(provider="twilio").enabled
    with pytest.raises(CommandError, match="Twilio issues the Auth Token"):
        call_command("configure_inbound", tenant_a.slug, "twilio-voice", "--generate")
    with pytest.raises(CommandError, match="--token is not for twilio-voice"):
        call_command("configure_inbound", tenant_a.slug, "twilio-voice", "--token", "x")


def test_voice_gateway_in_the_admin_keeps_the_secret_write_only(
    client: Client, tenant_a: Tenant, alice: User, bob: User, public_url: str
) -> None:
    client.login(username="alice", password=PASSWORD)
    response = client.post(
        reverse("admin:voice_voicecredential_add"),
        {
            "tenant": tenant_a.pk,
            "provider": "twilio",
            "secret": TWILIO_TOKEN,
            "enabled": "on",
            "voice_zh": "Polly.Zhiyu",
            "voice_en": "Polly.Joanna",
        },
    )
    assert response.status_code == 302
    credential = VoiceCredential.objects.for_tenant(tenant_a).get()
    assert credential.secret == TWILIO_TOKEN
    page = client.get(reverse("admin:voice_voicecredential_change", args=[credential.pk])).content.decode()
    assert TWILIO_TOKEN not in page and f"{PUBLIC}/hooks/voice/{tenant_a.slug}/twilio/" in page
    assert TWILIO_TOKEN not in str(credential.history.first().__dict__)

    # the voices chosen are the ones Twilio is told to use
    ChannelSetting.objects.create(tenant=tenant_a, channel=RequestChannel.HOTLINE, ivr_enabled=True)
    menu = TwilioCall(client, tenant_a).start()
    assert [say.attrib["voice"] for say in menu.iter("Say")] == ["Polly.Zhiyu", "Polly.Joanna"]

    client.logout()
    client.login(username="bob", password=PASSWORD)  # a viewer
    page = client.get(reverse("admin:voice_voicecredential_change", args=[credential.pk])).content.decode()
    assert 'name="secret"' not in page and TWILIO_TOKEN not in page
