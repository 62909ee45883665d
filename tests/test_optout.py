"""The opt-out pages through the Django test client: the flow, abuse limits, CSRF,
what the pages reveal, the status page, issue 8's ways to unsubscribe, and the hub.

Codes are read from the outbox: the test calls notifications.services.message_deliver
for the queued OTP message (on-commit callbacks do not run inside a test transaction).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from lanzuan import phones
from notifications.models import Message
from notifications.services import message_deliver
from unsubscribe import links
from unsubscribe.models import ChannelSetting, Service, SubscriberProfile, Subscription, UnsubscribeRequest
from unsubscribe.optout import limits, services
from unsubscribe.optout.models import PhoneVerification
from unsubscribe.pipeline import datasources
from unsubscribe.suppressions.selectors import suppression_status

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from celery import Celery
    from django.test.client import _MonkeyPatchedWSGIResponse as Response
    from pytest_django import Settings

    from tenants.models import Tenant

NUMBER = "13800138000"
E164 = "+8613800138000"
ZH: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}
EN: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}


@pytest.fixture(autouse=True)
def fresh_limits() -> Iterator[None]:
    """Rate-limit counters live in the cache: every test starts with none."""
    cache.clear()
    yield
    cache.clear()


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(limits, "_now", fake)
    return fake


@pytest.fixture(autouse=True)
def platform_sender(settings: Settings, eager_celery: Celery) -> None:
    """The hub's codes go through the platform's sender: the file gateway here, sent at once."""
    settings.LANZUAN_PLATFORM_SMS_URL = ""
    settings.LANZUAN_FILE_GATEWAY = True
    settings.LANZUAN_PLATFORM_NAME = "蓝钻退订平台"
    settings.LANZUAN_PLATFORM_NAME_EN = "Lanzuan"


@pytest.fixture
def services_a(tenant_a: Tenant) -> list[Service]:
    return [
        Service.objects.create(tenant=tenant_a, name="流量优惠 Data offers", code="data-offers"),
        Service.objects.create(tenant=tenant_a, name="会员俱乐部 Club", code="club"),
    ]


def start_url(tenant: Tenant) -> str:
    return reverse("unsubscribe-start", args=[tenant.slug])


def code_url(tenant: Tenant) -> str:
    return reverse("optout-code", args=[tenant.slug])


def choose_url(tenant: Tenant) -> str:
    return reverse("optout-choose", args=[tenant.slug])


def deliver_otps() -> None:
    for message in Message.objects.unscoped(reason="test").filter(event="otp", status=Message.Status.QUEUED):
        message_deliver(message.pk)


def last_code(outbox: Path, to: str = E164) -> str:
    lines = [json.loads(line) for line in outbox.read_text().splitlines()] if outbox.exists() else []
    bodies = [line["body"] for line in lines if line["to"] == to]
    assert bodies, f"no message to {to}"
    match = re.search(r"\b(\d{6})\b", bodies[-1])
    assert match is not None
    return match.group(1)


def ask_code(
    client: Client, tenant: Tenant, number: str = NUMBER, headers: dict[str, Any] = ZH, country: str = "86"
) -> Response:
    return client.post(start_url(tenant), {"country": country, "phone": number}, **headers)


def landed(client: Client, response: Response, headers: dict[str, Any] | None = None) -> Response:
    """Post/redirect/get: every POST answers 302; this is the GET it leads to, which
    carries the page's status and any form errors."""
    assert response.status_code == 302, response.status_code
    return client.get(response["Location"], **(headers or {}))


def sent(tenant: Tenant, response: Response) -> bool:
    """Step 1 answered: on to the code (sent) or back to the number form with an error (refused)."""
    assert response.status_code == 302, response.status_code
    assert response["Location"] in (code_url(tenant), start_url(tenant)), response["Location"]
    return response["Location"] == code_url(tenant)


def text_of(response: Response) -> str:
    """The page without its per-request CSRF tokens."""
    html = response.content.decode()
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)


# --- the whole flow ---------------------------------------------------------------------------


def test_flow_all_marketing_in_chinese(
    client: Client, tenant_a: Tenant, services_a: list[Service], outbox: Path
) -> None:
    # given a person on tenant A's page
    page = client.get(start_url(tenant_a), **ZH)
    assert page.status_code == 200
    body = page.content.decode()
    assert 'type="tel"' in body and 'autocomplete="tel"' in body
    assert "退订" in body and tenant_a.name in body

    # when they ask for a code, enter it and confirm "all"
    response = ask_code(client, tenant_a)
    assert response.status_code == 302 and response["Location"] == code_url(tenant_a)
    deliver_otps()
    code_page = client.get(code_url(tenant_a), **ZH).content.decode()
    assert 'autocomplete="one-time-code"' in code_page and 'inputmode="numeric"' in code_page
    assert "138****8000" in code_page
    response = client.post(code_url(tenant_a), {"action": "verify", "code": last_code(outbox)}, **ZH)
    assert response["Location"] == choose_url(tenant_a)
    choose = client.get(choose_url(tenant_a), **ZH).content.decode()
    assert 'type="radio"' in choose and 'value="all"' in choose and "required" in choose
    assert "流量优惠 Data offers" in choose
    response = client.post(choose_url(tenant_a), {"scope": "all", "confirm": "on"}, **ZH)
    assert response["Location"] == reverse("optout-receipt", args=[tenant_a.slug])

    # then the receipt shows the reference, the masked number and the status link
    request = UnsubscribeRequest.objects.for_tenant(tenant_a).get()
    receipt = client.get(response["Location"], **ZH).content.decode()
    assert f'data-testid="receipt-reference">{request.reference}<' in receipt
    assert "138****8000" in receipt and NUMBER not in receipt
    # the status link (its signed token carries the time it was made: compared by what it opens)
    status_path = reverse("unsubscribe-status", args=[tenant_a.slug]) + "?token="
    token = receipt.split(status_path, 1)[1].split('"', 1)[0]
    assert links.reference_from_token(token, tenant_a.pk) == request.reference
    assert "您已退订" in receipt
    # and the number is suppressed, filed as a web request verified by a one-time code
    assert suppression_status(tenant=tenant_a, phone=E164).suppressed
    assert (request.channel, request.verification_method, request.scope_all) == ("web", "otp", True)
    assert request.language == "zh-hans"
    assert set(request.verification_evidence) == {"otp_id", "verified_at"}
    assert NUMBER not in json.dumps(request.verification_evidence)
    verification = PhoneVerification.objects.unscoped(reason="test").get(
        pk=request.verification_evidence["otp_id"]
    )
    assert verification.phone == "" and verification.used_at is not None
    # the code was never stored: only its hash, and ****** in the message row
    assert Message.objects.unscoped(reason="test").get(event="otp").body.count("******") == 1


def test_flow_one_service_in_english(
    client: Client, tenant_a: Tenant, services_a: list[Service], outbox: Path
) -> None:
    ask_code(client, tenant_a, headers=EN)
    deliver_otps()
    sms = json.loads(outbox.read_text().splitlines()[-1])
    assert "your code is" in sms["body"]  # the SMS is in the page's language
    client.post(code_url(tenant_a), {"code": last_code(outbox)}, **EN)
    response = client.post(
        choose_url(tenant_a), {"scope": "some", "services": ["club"], "confirm": "on"}, **EN
    )
    receipt = client.get(response["Location"], **EN).content.decode()
    assert "You are unsubscribed" in receipt and "会员俱乐部 Club" in receipt

    request = UnsubscribeRequest.objects.for_tenant(tenant_a).get()
    assert not request.scope_all and [s.code for s in request.services.all()] == ["club"]
    assert request.language == "en"
    assert suppression_status(tenant=tenant_a, phone=E164, service_code="club").suppressed
    assert not suppression_status(tenant=tenant_a, phone=E164, service_code="data-offers").suppressed


def test_choose_needs_confirmation_and_a_service(
    client: Client, tenant_a: Tenant, services_a: list[Service], outbox: Path
) -> None:
    ask_code(client, tenant_a, headers=EN)
    deliver_otps()
    client.post(code_url(tenant_a), {"code": last_code(outbox)}, **EN)

    response = landed(client, client.post(choose_url(tenant_a), {"scope": "some"}, **EN), EN)

    assert response.status_code == 400
    body = response.content.decode()
    assert 'value="some" checked' in body  # what the person chose is kept
    assert 'id="confirm-error" class="field-error" role="alert">Tick the box to confirm.' in body
    assert 'aria-describedby="confirm-error"' in body
    assert "Choose at least one service" in body
    assert not UnsubscribeRequest.objects.unscoped(reason="test").exists()


def test_the_number_never_reaches_a_url_or_the_session(
    client: Client, tenant_a: Tenant, outbox: Path
) -> None:
    response = ask_code(client, tenant_a)
    deliver_otps()
    response = client.post(code_url(tenant_a), {"code": last_code(outbox)}, **ZH)
    response = client.post(choose_url(tenant_a), {"scope": "all", "confirm": "on"}, **ZH)
    assert NUMBER not in response["Location"]
    session = json.dumps(dict(client.session.items()))
    assert NUMBER not in session and "138****" not in session


def test_malformed_number_is_a_form_error_in_the_pages_language(
    client: Client, tenant_a: Tenant, outbox: Path
) -> None:
    zh = landed(client, ask_code(client, tenant_a, number="12345", headers=ZH), ZH)
    en = landed(client, ask_code(client, tenant_a, number="12345", headers=EN), EN)

    assert zh.status_code == en.status_code == 400
    assert 'role="alert">⚠' not in zh.content.decode()  # the icon is CSS, not text
    assert "不是有效的手机号码" in zh.content.decode()
    assert "That is not a valid mobile number" in en.content.decode()
    assert 'aria-describedby="phone-hint phone-error"' in en.content.decode()
    assert not Message.objects.unscoped(reason="test").exists()


def test_other_countries_are_accepted(client: Client, tenant_a: Tenant, outbox: Path) -> None:
    response = ask_code(client, tenant_a, number="5123 4567", country="852", headers=EN)
    assert response.status_code == 302
    response = ask_code(Client(), tenant_a, number="+1 415 555 2671", headers=EN)
    assert response.status_code == 302
    deliver_otps()
    assert {json.loads(line)["to"] for line in outbox.read_text().splitlines()} == {
        "+85251234567",
        "+14155552671",
    }


# --- codes: wrong, expired, too many tries, resend ------------------------------------------


def test_wrong_code_then_the_sixth_try_is_refused_even_if_right(
    client: Client, tenant_a: Tenant, outbox: Path
) -> None:
    ask_code(client, tenant_a, headers=EN)
    deliver_otps()
    right = last_code(outbox)
    wrong = "000000" if right != "000000" else "111111"

    for tries_left in (4, 3, 2, 1):
        response = landed(client, client.post(code_url(tenant_a), {"code": wrong}, **EN), EN)
        assert response.status_code == 400
        assert f"You have {tries_left} tr" in response.content.decode()
    fifth = landed(client, client.post(code_url(tenant_a), {"code": wrong}, **EN), EN)
    assert "Too many wrong tries" in fifth.content.decode()

    sixth = landed(client, client.post(code_url(tenant_a), {"code": right}, **EN), EN)

    assert sixth.status_code == 400
    assert "Too many wrong tries. Ask for a new code." in sixth.content.decode()
    assert PhoneVerification.objects.unscoped(reason="test").get().attempts == 5
    assert PhoneVerification.objects.unscoped(reason="test").get().verified_at is None
    assert client.get(choose_url(tenant_a)).status_code == 302  # not past the code step


def test_expired_code_is_refused(client: Client, tenant_a: Tenant, outbox: Path) -> None:
    ask_code(client, tenant_a, headers=ZH)
    deliver_otps()
    PhoneVerification.objects.unscoped(reason="test").update(expires_at=timezone.now() - timedelta(seconds=1))

    response = landed(client, client.post(code_url(tenant_a), {"code": last_code(outbox)}, **ZH), ZH)

    assert response.status_code == 400
    assert "验证码已过期" in response.content.decode()


def test_a_second_send_inside_60_seconds_is_refused(
    client: Client, tenant_a: Tenant, outbox: Path, clock: Clock
) -> None:
    ask_code(client, tenant_a, headers=EN)
    clock.now += 30

    resend = landed(client, client.post(code_url(tenant_a), {"action": "resend"}, **EN), EN)
    other = Client()  # another browser, same number
    again = landed(other, ask_code(other, tenant_a, headers=EN), EN)

    assert resend.status_code == again.status_code == 429
    assert "Please wait 30 seconds before asking for a new code." in resend.content.decode()
    assert 'id="resend-error" class="field-error" role="alert"' in resend.content.decode()
    assert "Please wait 30 seconds" in again.content.decode()
    assert (
        Message.objects.unscoped(reason="test").count()
        == PhoneVerification.objects.unscoped(reason="test").count()
        == 1
    )

    # after the cool-down a new code replaces the old one
    clock.now += 31
    resend = client.post(code_url(tenant_a), {"action": "resend"}, **EN)
    assert resend.status_code == 302
    assert Message.objects.unscoped(reason="test").count() == 2
    old, new = PhoneVerification.objects.unscoped(reason="test").order_by("pk")
    assert old.phone == "" and new.phone == E164


def test_at_most_three_codes_per_number_in_ten_minutes(tenant_a: Tenant, outbox: Path, clock: Clock) -> None:
    for _ in range(3):
        assert sent(tenant_a, ask_code(Client(), tenant_a, headers=EN))
        clock.now += 61

    browser = Client()
    fourth = landed(browser, ask_code(browser, tenant_a, headers=EN), EN)

    assert fourth.status_code == 429
    assert "Too many codes were sent to this number. Try again in 10 minutes." in fourth.content.decode()
    clock.now += 10 * 60
    assert sent(tenant_a, ask_code(Client(), tenant_a, headers=EN))
    assert Message.objects.unscoped(reason="test").count() == 4


def test_the_prefix_cap_stops_a_pumping_burst_of_adjacent_numbers(
    settings: Settings, tenant_a: Tenant, outbox: Path
) -> None:
    settings.LANZUAN_OTP_PREFIX_DAILY_CAP = 5
    # given a burst of codes to adjacent numbers, none of which is ever verified
    outcomes = [sent(tenant_a, ask_code(Client(), tenant_a, number=f"1380013{n:04d}")) for n in range(12)]

    # then the first five are sent and the rest refused with a clear message
    assert outcomes == [True] * 5 + [False] * 7
    browser = Client()
    refused = landed(browser, ask_code(browser, tenant_a, number="13800139999", headers=EN), EN)
    assert refused.status_code == 429
    assert "We cannot send more codes right now" in refused.content.decode()
    assert Message.objects.unscoped(reason="test").filter(event="otp").count() == 5
    # a number elsewhere is not affected
    assert sent(tenant_a, ask_code(Client(), tenant_a, number="13912345678"))


def test_a_verified_code_gives_its_prefix_count_back(
    settings: Settings, client: Client, tenant_a: Tenant, outbox: Path
) -> None:
    settings.LANZUAN_OTP_PREFIX_DAILY_CAP = 1
    ask_code(client, tenant_a)
    deliver_otps()
    client.post(code_url(tenant_a), {"code": last_code(outbox)})

    assert ask_code(Client(), tenant_a, number="13800138001").status_code == 302


def test_per_ip_and_per_tenant_daily_caps(
    settings: Settings, tenant_a: Tenant, tenant_b: Tenant, outbox: Path
) -> None:
    settings.LANZUAN_OTP_IP_DAILY_CAP = 2
    assert sent(tenant_a, ask_code(Client(), tenant_a, number="13800138000"))
    assert sent(tenant_a, ask_code(Client(), tenant_a, number="13912345678"))
    browser = Client()
    refused = landed(browser, ask_code(browser, tenant_a, number="15000001111", headers=EN), EN)
    assert refused.status_code == 429
    assert "Too many codes were requested from your network today" in refused.content.decode()
    other_ip = Client(REMOTE_ADDR="10.0.0.2")
    assert sent(tenant_a, ask_code(other_ip, tenant_a, number="15000001111"))

    settings.LANZUAN_OTP_IP_DAILY_CAP = 100
    settings.LANZUAN_OTP_TENANT_DAILY_CAP = 3
    assert not sent(tenant_a, ask_code(Client(), tenant_a, number="18600002222"))
    assert sent(tenant_b, ask_code(Client(), tenant_b, number="18600002222"))


def test_client_ip_header_is_used_only_when_configured(
    settings: Settings, tenant_a: Tenant, outbox: Path
) -> None:
    settings.LANZUAN_OTP_IP_DAILY_CAP = 1
    assert sent(tenant_a, ask_code(Client(HTTP_X_REAL_IP="1.1.1.1"), tenant_a, "13800138000"))
    assert not sent(tenant_a, ask_code(Client(HTTP_X_REAL_IP="2.2.2.2"), tenant_a, "13912345678"))
    settings.LANZUAN_CLIENT_IP_HEADER = "HTTP_X_REAL_IP"
    assert sent(tenant_a, ask_code(Client(HTTP_X_REAL_IP="3.3.3.3"), tenant_a, "15000001111"))


def test_codes_are_not_logged(
    client: Client, tenant_a: Tenant, outbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    ask_code(client, tenant_a)
    deliver_otps()
    code = last_code(outbox)
    client.post(code_url(tenant_a), {"code": code})
    assert code not in caplog.text and NUMBER not in caplog.text


# --- CSRF and what a page reveals ----------------------------------------------------------------


def test_csrf_is_enforced_on_every_form(tenant_a: Tenant) -> None:
    client = Client(enforce_csrf_checks=True)
    status_url = reverse("unsubscribe-status", args=[tenant_a.slug])
    for url in (
        start_url(tenant_a),
        code_url(tenant_a),
        choose_url(tenant_a),
        status_url,
        reverse("optout-hub"),
    ):
        assert client.post(url, {"phone": NUMBER}).status_code == 403, url
    assert not PhoneVerification.objects.unscoped(reason="test").exists()
    # and with the token from the page it works
    page = client.get(start_url(tenant_a))
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert match is not None
    token = match.group(1)
    assert (
        client.post(start_url(tenant_a), {"phone": NUMBER, "csrfmiddlewaretoken": token}).status_code == 302
    )


def _ask_and_look(tenant: Tenant, number: str = NUMBER) -> tuple[Response, Response]:
    client = Client()
    post = ask_code(client, tenant, number=number)
    page = client.get(post["Location"], **ZH)
    return post, page


def test_the_page_reveals_nothing_about_a_subscription(
    tenant_a: Tenant, services_a: list[Service], outbox: Path
) -> None:
    # given the same number, first unknown to the tenant …
    unknown_post, unknown_page = _ask_and_look(tenant_a)
    cache.clear()
    # … then subscribed, with a profile
    Subscription.objects.create(
        tenant=tenant_a,
        service=services_a[0],
        phone=E164,
        phone_hash=phones.tenant_phone_hash(tenant_a.pk, E164),
        phone_masked="x",
    )
    SubscriberProfile.objects.create(
        tenant=tenant_a,
        phone=E164,
        phone_hash=phones.tenant_phone_hash(tenant_a.pk, E164),
        phone_masked="x",
        display_name="张三",
    )
    known_post, known_page = _ask_and_look(tenant_a)

    # then the answers are the same, and both numbers get a code
    assert (unknown_post.status_code, unknown_post["Location"]) == (
        known_post.status_code,
        known_post["Location"],
    )
    assert text_of(unknown_page) == text_of(known_page)
    assert Message.objects.unscoped(reason="test").filter(event="otp").count() == 2


def test_two_numbers_get_the_same_answer_but_for_the_mask(
    tenant_a: Tenant, services_a: list[Service], outbox: Path
) -> None:
    subscribed = "+8613912345678"
    Subscription.objects.create(
        tenant=tenant_a,
        service=services_a[0],
        phone=subscribed,
        phone_hash=phones.tenant_phone_hash(tenant_a.pk, subscribed),
        phone_masked="139****5678",
    )
    _post1, known = _ask_and_look(tenant_a, "13912345678")
    _post2, unknown = _ask_and_look(tenant_a, "15000001111")
    assert text_of(known).replace("139****5678", "MASK") == text_of(unknown).replace("150****1111", "MASK")


# --- the status page --------------------------------------------------------------------------------


def _filed(
    tenant: Tenant, phone: str = E164, services: Sequence[str | Service] | None = None
) -> UnsubscribeRequest:
    from unsubscribe.requests.services import unsubscribe_request_create

    return unsubscribe_request_create(
        tenant=tenant, phone=phone, channel="web", verification_method="otp", services=services
    ).request


def test_status_by_signed_link_shows_each_step(client: Client, tenant_a: Tenant) -> None:
    request = _filed(tenant_a)

    response = client.get(links.status_url(request, absolute=False), **EN)

    body = response.content.decode()
    assert response.status_code == 200
    assert request.reference in body
    assert 'data-testid="step-suppressed"' in body and "Marketing stopped: all marketing" in body
    assert 'data-testid="step-confirm"' in body and "Queued; it runs within minutes." in body
    assert E164 not in body and "138****8000" in body


def test_status_shows_done_steps_and_why_others_wait(client: Client, tenant_a: Tenant) -> None:
    from unsubscribe.models import Step, Target

    Target.objects.create(
        tenant=tenant_a, name="CRM", public_label_en="the customer system", purpose="terminate", kind="http"
    )
    Target.objects.create(
        tenant=tenant_a, name="Profiles", public_label_en="the profile store", purpose="erase", kind="http"
    )
    tenant_a.erasure_delay_hours = 24
    tenant_a.save()
    request = _filed(tenant_a)
    Step.objects.unscoped(reason="test").filter(request=request, kind="terminate").update(
        status="succeeded", finished_at=timezone.now()
    )
    Step.objects.unscoped(reason="test").filter(request=request, kind="confirm").update(
        status="retrying", attempts=2
    )

    body = client.get(links.status_url(request, absolute=False), **EN).content.decode()

    assert "Services ended: the customer system" in body and "CRM" not in body
    assert "tried again automatically (attempt 2)" in body
    assert "Personal data cleaned: the profile store" in body and "Profiles" not in body
    assert "Waits until the services are ended and the confirmation is sent." in body


def test_status_by_reference_and_number(client: Client, tenant_a: Tenant) -> None:
    request = _filed(tenant_a)
    url = reverse("unsubscribe-status", args=[tenant_a.slug])

    found_post = client.post(
        url, {"reference": request.reference.lower().replace("-", " "), "phone": NUMBER}, **ZH
    )
    found = landed(client, found_post, ZH)
    wrong_number = landed(
        client, client.post(url, {"reference": request.reference, "phone": "13912345678"}, **ZH), ZH
    )
    wrong_ref = landed(client, client.post(url, {"reference": "AAAA-AAAA", "phone": NUMBER}, **ZH), ZH)

    # a match leads to the signed link's page, by GET; the number is in neither URL
    location = found_post["Location"]
    assert location.startswith(url + "?token=") and NUMBER not in location
    assert links.reference_from_token(location.split("token=")[1], tenant_a.pk) == request.reference
    assert found.status_code == 200 and 'data-testid="timeline"' in found.content.decode()
    assert wrong_number.status_code == wrong_ref.status_code == 404
    # the same answer whichever of the two did not match
    assert text_of(wrong_number).replace(request.reference, "R") == text_of(wrong_ref).replace(
        "AAAA-AAAA", "R"
    )


def test_status_of_another_tenants_request_is_not_found(
    client: Client, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    request = _filed(tenant_b)
    url = reverse("unsubscribe-status", args=[tenant_a.slug])
    response = landed(client, client.post(url, {"reference": request.reference, "phone": NUMBER}))
    assert response.status_code == 404
    token_link = links.status_url(request, absolute=False).replace(tenant_b.slug, tenant_a.slug)
    assert 'data-testid="timeline"' not in client.get(token_link).content.decode()


def test_status_lookups_are_limited(settings: Settings, client: Client, tenant_a: Tenant) -> None:
    settings.LANZUAN_STATUS_LOOKUPS_PER_IP_HOUR = 3
    url = reverse("unsubscribe-status", args=[tenant_a.slug])
    for _ in range(3):
        assert (
            landed(client, client.post(url, {"reference": "AAAA-AAAA", "phone": NUMBER})).status_code == 404
        )
    limited = landed(client, client.post(url, {"reference": "AAAA-AAAA", "phone": NUMBER}, **EN), EN)
    assert limited.status_code == 429 and "Too many look-ups" in limited.content.decode()


# --- erasure and expiry ----------------------------------------------------------------------------


def test_erasure_blanks_the_tenants_verifications_of_that_number(
    tenant_a: Tenant, tenant_b: Tenant, outbox: Path
) -> None:
    for tenant in (tenant_a, tenant_b):
        services.verification_start(tenant=tenant, e164=E164, ip="1.2.3.4", language="zh-hans")
    services.verification_start(tenant=tenant_a, e164="+8613912345678", ip="1.2.3.4", language="zh-hans")
    request = _filed(tenant_a)

    erase = datasources.get_source("optout.verifications").erase
    assert erase is not None
    receipt = erase(request)

    # then only tenant A's verification of that number lost its number
    assert receipt == datasources.Receipt.of(("copies_cleared", 1))
    assert (
        PhoneVerification.objects.unscoped(reason="test")
        .get(tenant=tenant_a, phone_hash=request.phone_hash)
        .phone
        == ""
    )
    assert PhoneVerification.objects.unscoped(reason="test").get(tenant=tenant_b).phone == E164
    assert PhoneVerification.objects.unscoped(reason="test").get(tenant=tenant_a, phone="+8613912345678")


def test_the_sweep_blanks_expired_and_stale_codes(tenant_a: Tenant, outbox: Path) -> None:
    now = timezone.now()
    fresh = services.verification_start(tenant=tenant_a, e164=E164, ip="1", language="en").verification
    cache.clear()
    expired = services.verification_start(
        tenant=tenant_a, e164="+8613912345678", ip="1", language="en"
    ).verification
    cache.clear()
    stale = services.verification_start(
        tenant=tenant_a, e164="+8615000001111", ip="1", language="en"
    ).verification
    assert fresh is not None and expired is not None and stale is not None  # none refused
    PhoneVerification.objects.unscoped(reason="test").filter(pk=expired.pk).update(
        expires_at=now - timedelta(seconds=1)
    )
    PhoneVerification.objects.unscoped(reason="test").filter(pk=stale.pk).update(
        verified_at=now - timedelta(hours=1)
    )

    assert services.verifications_sweep() == {"blanked": 2}

    assert PhoneVerification.objects.unscoped(reason="test").get(pk=fresh.pk).phone == E164
    assert PhoneVerification.objects.unscoped(reason="test").get(pk=expired.pk).phone == ""
    assert PhoneVerification.objects.unscoped(reason="test").get(pk=stale.pk).phone == ""


# --- issue 8: the ways to unsubscribe --------------------------------------------------------------


def test_tenant_page_lists_every_enabled_way(client: Client, tenant_a: Tenant) -> None:
    ChannelSetting.objects.create(
        tenant=tenant_a, channel="sms", reply_numbers="10690001, 1069000188", extra_keywords="QX"
    )
    ChannelSetting.objects.create(
        tenant=tenant_a,
        channel="hotline",
        hotline_number="10086",
        hotline_hours="9:00–21:00",
        hotline_menu_key="3",
    )
    ChannelSetting.objects.create(
        tenant=tenant_a,
        channel="app",
        app_path_zh="我的 → 设置 → 消息推送",
        app_path_en="Me → Settings → Push",
    )
    ChannelSetting.objects.create(tenant=tenant_a, channel="email", enabled=False)

    zh = client.get(reverse("optout-tenant-home", args=[tenant_a.slug]), **ZH).content.decode()
    en = client.get(reverse("optout-tenant-home", args=[tenant_a.slug]), **EN).content.decode()

    assert "回复 TD / 退订 / QX 到 10690001, 1069000188" in zh
    assert "拨打 10086，按 3（服务时间 9:00–21:00）" in zh
    assert "我的 → 设置 → 消息推送" in zh
    assert start_url(tenant_a) in zh
    assert 'data-testid="way-email"' not in zh
    assert "Reply STOP / TD / QX to 10690001, 1069000188." in en
    assert "Me → Settings → Push" in en
    assert 'data-testid="way-hub"' in en


def test_web_opt_out_switched_off_lists_the_other_ways(
    client: Client, tenant_a: Tenant, outbox: Path
) -> None:
    ChannelSetting.objects.create(tenant=tenant_a, channel="web", enabled=False)
    ChannelSetting.objects.create(tenant=tenant_a, channel="sms", reply_numbers="10690001")

    page = client.get(start_url(tenant_a), **ZH)
    post = ask_code(client, tenant_a)

    body = page.content.decode()
    assert page.status_code == 200 and 'data-testid="web-disabled"' in body
    assert "不提供网上退订" in body and "回复 TD / 退订 到 10690001" in body
    assert 'data-testid="way-web"' not in body and 'name="phone"' not in body
    assert post.status_code == 302 and post["Location"] == start_url(tenant_a)
    assert not Message.objects.unscoped(reason="test").exists()


def test_start_page_shows_the_ways_block(client: Client, tenant_a: Tenant) -> None:
    body = client.get(start_url(tenant_a), **EN).content.decode()
    assert (
        'data-testid="ways"' in body and 'data-testid="way-web"' in body and 'data-testid="way-sms"' in body
    )


def test_unknown_or_inactive_tenant_is_404(client: Client, tenant_a: Tenant) -> None:
    assert client.get(start_url(tenant_a).replace(tenant_a.slug, "nobody")).status_code == 404
    tenant_a.is_active = False
    tenant_a.save()
    assert client.get(start_url(tenant_a)).status_code == 404


# --- the one-stop hub -----------------------------------------------------------------------------


def _subscribe(tenant: Tenant, code: str, phone: str = E164) -> Subscription:
    service, _ = Service.objects.unscoped(reason="test").get_or_create(
        tenant=tenant, code=code, defaults={"name": code.title()}
    )
    return Subscription.objects.create(
        tenant=tenant,
        service=service,
        phone=phone,
        phone_hash=phones.tenant_phone_hash(tenant.pk, phone),
        phone_masked="x",
    )


def test_hub_stops_every_provider_in_one_submit(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, outbox: Path
) -> None:
    _subscribe(tenant_a, "offers")
    _subscribe(tenant_b, "picks")

    assert client.post(reverse("optout-hub"), {"phone": NUMBER}, **EN)["Location"] == reverse(
        "optout-hub-code"
    )
    sms = json.loads(outbox.read_text().splitlines()[-1])
    # the platform sends it, signed with its own name, not one of the providers
    assert sms["tenant"] == "platform" and sms["to"] == E164
    assert sms["body"].startswith("[Lanzuan] ") and tenant_a.name not in sms["body"]
    assert not Message.objects.unscoped(reason="test").exists()
    response = client.post(reverse("optout-hub-code"), {"code": last_code(outbox)}, **EN)
    assert response["Location"] == reverse("optout-hub-choose")
    choose = client.get(reverse("optout-hub-choose"), **EN).content.decode()
    assert tenant_a.name in choose and tenant_b.name in choose
    response = client.post(
        reverse("optout-hub-choose"),
        {"providers": [str(tenant_a.pk), str(tenant_b.pk)], "confirm": "on"},
        **EN,
    )
    receipt = client.get(response["Location"], **EN).content.decode()

    for tenant in (tenant_a, tenant_b):
        request = UnsubscribeRequest.objects.for_tenant(tenant).get()
        assert (request.channel, request.verification_method, request.scope_all) == ("hub", "otp", True)
        assert request.reference in receipt
        assert suppression_status(tenant=tenant, phone=E164).suppressed
    assert receipt.count('data-testid="receipt-reference"') == 2


def test_hub_with_a_provider_that_refuses_hub_requests(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, outbox: Path
) -> None:
    _subscribe(tenant_a, "offers")
    _subscribe(tenant_b, "picks")
    ChannelSetting.objects.create(tenant=tenant_b, channel="hub", enabled=False)
    ChannelSetting.objects.create(tenant=tenant_b, channel="sms", reply_numbers="10699999")
    client.post(reverse("optout-hub"), {"phone": NUMBER}, **EN)
    client.post(reverse("optout-hub-code"), {"code": last_code(outbox)}, **EN)

    response = client.post(
        reverse("optout-hub-choose"),
        {"providers": [str(tenant_a.pk), str(tenant_b.pk)], "confirm": "on"},
        **EN,
    )
    receipt = client.get(response["Location"], **EN).content.decode()

    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1
    assert not UnsubscribeRequest.objects.for_tenant(tenant_b).exists()
    assert f'data-testid="hub-refused-{tenant_b.slug}"' in receipt and "10699999" in receipt


def test_hub_reveals_nothing_for_a_number_no_provider_knows(tenant_a: Tenant, outbox: Path) -> None:
    _subscribe(tenant_a, "offers")
    known, unknown = Client(), Client()
    known_post = known.post(reverse("optout-hub"), {"phone": NUMBER})
    unknown_post = unknown.post(reverse("optout-hub"), {"phone": "13912345678"})
    assert known_post["Location"] == unknown_post["Location"]
    known_page = known.get(reverse("optout-hub-code"))
    unknown_page = unknown.get(reverse("optout-hub-code"))
    assert text_of(known_page).replace("138****8000", "M") == text_of(unknown_page).replace(
        "139****5678", "M"
    )
    # no code exists for the unknown number: every try fails like a wrong one, then it is locked
    assert len(outbox.read_text().splitlines()) == 1
    hub_code = reverse("optout-hub-code")
    for left in (4, 3, 2, 1):
        page = landed(unknown, unknown.post(hub_code, {"code": "123456"}, **EN), EN)
        assert f"You have {left} tr" in page.content.decode()
    page = landed(unknown, unknown.post(hub_code, {"code": "123456"}, **EN), EN)
    assert "Too many wrong tries" in page.content.decode()
    # and a resend is limited like any other
    assert landed(unknown, unknown.post(hub_code, {"action": "resend"})).status_code == 429


def test_back_to_step_one_with_the_same_number_keeps_the_code(
    client: Client, tenant_a: Tenant, outbox: Path
) -> None:
    ask_code(client, tenant_a, headers=EN)

    again = ask_code(client, tenant_a, headers=EN)

    assert again["Location"] == code_url(tenant_a)
    assert "We already sent a code to this number" in client.get(code_url(tenant_a), **EN).content.decode()
    assert (
        Message.objects.unscoped(reason="test").count()
        == PhoneVerification.objects.unscoped(reason="test").count()
        == 1
    )


def test_a_broken_otp_setup_answers_with_a_message_not_an_error_page(
    client: Client, tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    import notifications.services

    def broken(**kwargs: Any) -> None:
        raise ValueError("the template needs {coupon}")

    monkeypatch.setattr(notifications.services, "notification_send", broken)

    response = landed(client, ask_code(client, tenant_a, headers=EN), EN)

    assert response.status_code == 503
    assert "We cannot send more codes right now" in response.content.decode()
    assert not PhoneVerification.objects.unscoped(reason="test").exists()


def test_a_verification_blanked_before_submit_asks_to_start_again(tenant_a: Tenant) -> None:
    """The sweep or an erasure may blank the number between the code check and the
    submit: the person is asked to start again, never shown a server error."""
    from unsubscribe.optout import services as optout_services
    from unsubscribe.optout.models import PhoneVerification

    verification = PhoneVerification.objects.create(
        tenant=tenant_a,
        phone="",
        phone_hash="x" * 64,
        code_hash="y" * 64,
        expires_at=timezone.now() + timedelta(minutes=5),
        verified_at=timezone.now(),
    )
    with pytest.raises(optout_services.VerificationLapsed):
        optout_services.web_request_file(
            tenant=tenant_a, verification=verification, services=None, language="en"
        )
    with pytest.raises(optout_services.VerificationLapsed):
        optout_services.hub_requests_file(verification=verification, tenants=[tenant_a], language="en")
