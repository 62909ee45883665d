"""Issue 11 on the public pages, through the Django test client.

Item 10: the hub shows each provider's own terms before the person confirms, and its
code SMS is the platform's (its sender, its name), with the abuse limits kept.
Item 12: post/redirect/get in the four flows: every POST answers 302, and a form
with errors is shown again by the GET that follows.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from lanzuan import phones
from lanzuan.signing import verify
from notifications.models import Message
from tenants.models import Tenant
from unsubscribe import links
from unsubscribe.models import ChannelSetting, Service, Subscription, UnsubscribeRequest
from unsubscribe.optout.models import PhoneVerification

from .httpserver import http_endpoint

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from celery import Celery
    from django.test.client import _MonkeyPatchedWSGIResponse as Response
    from pytest_django import Settings

NUMBER = "13800138000"
E164 = "+8613800138000"
ZH: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}
EN: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}
HUB, HUB_CODE, HUB_CHOOSE = reverse("optout-hub"), reverse("optout-hub-code"), reverse("optout-hub-choose")


@pytest.fixture(autouse=True)
def fresh_limits() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def platform_sender(settings: Settings, eager_celery: Celery, outbox: Path) -> None:
    settings.LANZUAN_PLATFORM_SMS_URL = ""
    settings.LANZUAN_FILE_GATEWAY = True
    settings.LANZUAN_PLATFORM_NAME = "蓝钻退订平台"
    settings.LANZUAN_PLATFORM_NAME_EN = "Lanzuan"


def subscribe(tenant: Tenant, code: str, phone: str = E164) -> Subscription:
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


def sms_to(outbox: Path, to: str = E164) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in outbox.read_text().splitlines()] if outbox.exists() else []
    return [line for line in lines if line["to"] == to]


def code_in(body: str) -> str:
    match = re.search(r"\b(\d{6})\b", body)
    assert match is not None
    return match.group(1)


def landed(client: Client, response: Response, headers: dict[str, Any] | None = None) -> Response:
    assert response.status_code == 302, response.status_code
    return client.get(response["Location"], **(headers or {}))


def hub_verified(client: Client, outbox: Path, headers: dict[str, Any] = EN) -> None:
    assert client.post(HUB, {"phone": NUMBER}, **headers)["Location"] == HUB_CODE
    code = code_in(sms_to(outbox)[-1]["body"])
    assert client.post(HUB_CODE, {"code": code}, **headers)["Location"] == HUB_CHOOSE


def block(html: str, testid: str) -> str:
    """The inner HTML of the element with this data-testid (up to its provider block's end)."""
    start = html.index(f'data-testid="{testid}"')
    end = html.find('data-testid="hub-provider-', start + 1)
    return html[start : end if end != -1 else len(html)]


# --- item 10: the hub shows each provider's own terms ------------------------------------------------


def test_hub_shows_each_providers_own_terms_before_the_confirmation(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, outbox: Path
) -> None:
    # given two providers with different policies
    Tenant.objects.filter(pk=tenant_a.pk).update(
        allow_resubscribe=False, erasure_mode=Tenant.ErasureMode.ANONYMISE, erasure_delay_hours=48
    )
    Tenant.objects.filter(pk=tenant_b.pk).update(
        allow_resubscribe=True,
        erasure_mode=Tenant.ErasureMode.DELETE,
        erasure_delay_hours=0,
        terms_en="Platform B keeps nothing.",
        terms_zh="平台 B 不保留任何数据。",
    )
    subscribe(tenant_a, "offers")
    subscribe(tenant_b, "picks")
    hub_verified(client, outbox)

    # when the person looks at the confirm step, in English
    html = client.get(HUB_CHOOSE, **EN).content.decode()

    # then each provider's block says what stops, whether it is final and what is erased
    a, b = block(html, "hub-terms-tenant-a"), block(html, "hub-terms-tenant-b")
    assert "All marketing from 运营商 A, including: Offers." in a
    assert "No. This opt-out is final and cannot be undone." in a
    assert "anonymised 48 hours after the confirmation is sent" in a
    assert "Yes. You can subscribe again later if you wish." in b
    assert "deleted right after the confirmation is sent" in b and "Platform B keeps nothing." in b
    # before the confirmation box
    assert html.index('data-testid="hub-terms-tenant-b"') < html.index('id="confirm"')
    # and in Chinese on a Chinese page
    zh = client.get(HUB_CHOOSE, **ZH).content.decode()
    assert "不可以。本次退订不可撤销。" in block(zh, "hub-terms-tenant-a")
    assert "可以。您以后可以随时重新订阅。" in block(zh, "hub-terms-tenant-b")
    assert "平台 B 不保留任何数据。" in block(zh, "hub-terms-tenant-b")


def test_hub_code_sms_is_signed_by_the_platform_not_a_provider(
    client: Client, settings: Settings, tenant_a: Tenant, tenant_b: Tenant, outbox: Path
) -> None:
    # given the number is known to two providers, the first of which has its own sign
    subscribe(tenant_a, "offers")
    subscribe(tenant_b, "picks")
    settings.LANZUAN_PLATFORM_NAME = "号码退订中心"

    # when the person asks for a hub code on a Chinese page
    client.post(HUB, {"phone": NUMBER}, **ZH)

    # then the SMS comes from the platform, with the platform's sign, in Chinese
    (sms,) = sms_to(outbox)
    assert sms["tenant"] == "platform"
    assert sms["body"].startswith("【号码退订中心】")
    assert tenant_a.name not in sms["body"] and tenant_b.name not in sms["body"]
    assert "验证码" in sms["body"]
    # and no provider's message (or gateway) was used
    assert not Message.objects.unscoped(reason="test").exists()
    # the code works
    response = client.post(HUB_CODE, {"code": code_in(sms["body"])}, **ZH)
    assert response["Location"] == HUB_CHOOSE


def test_hub_code_goes_through_the_platform_http_gateway(
    settings: Settings, tenant_a: Tenant, outbox: Path
) -> None:
    subscribe(tenant_a, "offers")
    with http_endpoint() as endpoint:
        settings.LANZUAN_PLATFORM_SMS_URL = endpoint.url
        settings.LANZUAN_PLATFORM_SMS_SECRET = "platform-secret-0123456789"
        Client().post(HUB, {"phone": NUMBER}, **EN)

    (received,) = endpoint.received
    payload = received.json()
    assert payload["to"] == E164 and payload["tenant"] == "platform"
    assert payload["body"].startswith("[Lanzuan] ")
    headers = {k.lower(): v for k, v in received.headers.items()}
    assert verify(
        "platform-secret-0123456789",
        headers["x-lanzuan-timestamp"],
        received.body,
        headers["x-lanzuan-signature"],
    )
    assert not sms_to(outbox)  # nothing through the file gateway


def test_hub_without_a_platform_sender_answers_alike_for_every_number(
    settings: Settings, tenant_a: Tenant, outbox: Path
) -> None:
    settings.LANZUAN_FILE_GATEWAY = False
    subscribe(tenant_a, "offers")
    known, unknown = Client(), Client()

    known_page = landed(known, known.post(HUB, {"phone": NUMBER}, **EN), EN)
    unknown_page = landed(unknown, unknown.post(HUB, {"phone": "13912345678"}, **EN), EN)

    assert known_page.status_code == unknown_page.status_code == 503
    assert "We cannot send more codes right now" in known_page.content.decode()
    assert not sms_to(outbox) and not PhoneVerification.objects.unscoped(reason="test").exists()


def test_hub_abuse_limits_still_apply_with_the_platform_sender(
    settings: Settings, tenant_a: Tenant, outbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unsubscribe.optout import limits

    now = [1_900_000_000.0]
    monkeypatch.setattr(limits, "_now", lambda: now[0])
    subscribe(tenant_a, "offers")
    for _ in range(3):
        assert Client().post(HUB, {"phone": NUMBER})["Location"] == HUB_CODE
        now[0] += 61
    browser = Client()
    refused = landed(browser, browser.post(HUB, {"phone": NUMBER}, **EN), EN)

    assert refused.status_code == 429
    assert "Too many codes were sent to this number" in refused.content.decode()
    assert len(sms_to(outbox)) == 3


# --- item 12: post/redirect/get in all four flows -------------------------------------------------------


def test_tenant_page_confirm_error_redirects_and_the_get_shows_it(
    client: Client, tenant_a: Tenant, outbox: Path
) -> None:
    Service.objects.create(tenant=tenant_a, name="Club", code="club")
    client.post(reverse("unsubscribe-start", args=[tenant_a.slug]), {"phone": NUMBER}, **EN)
    from notifications.services import message_deliver

    for message in Message.objects.unscoped(reason="test").filter(event="otp"):
        message_deliver(message.pk)
    code = code_in(sms_to(outbox)[-1]["body"])
    client.post(reverse("optout-code", args=[tenant_a.slug]), {"code": code}, **EN)
    choose = reverse("optout-choose", args=[tenant_a.slug])

    # when the confirm step is submitted without the tick
    post = client.post(choose, {"scope": "some", "services": ["club"]}, **EN)

    # then the POST answers with a redirect to the same page …
    assert post.status_code == 302 and post["Location"] == choose
    # … whose GET shows the error and what was chosen, with a 4xx status
    page = client.get(choose, **EN)
    body = page.content.decode()
    assert page.status_code == 400 and "Tick the box to confirm." in body
    assert 'value="club" data-scope-some checked' in body and 'value="some" checked' in body
    # once: a reload (or Back) shows the fresh form, not the error again
    again = client.get(choose, **EN)
    assert again.status_code == 200 and "Tick the box to confirm." not in again.content.decode()
    # the number never went into the session
    assert NUMBER not in json.dumps(dict(client.session.items()))
    # and confirming works
    done = client.post(choose, {"scope": "all", "confirm": "on"}, **EN)
    assert done["Location"] == reverse("optout-receipt", args=[tenant_a.slug])


def test_number_and_code_errors_redirect_and_keep_the_number_out_of_the_session(
    client: Client, tenant_a: Tenant, outbox: Path
) -> None:
    start = reverse("unsubscribe-start", args=[tenant_a.slug])
    post = client.post(start, {"country": "852", "phone": "7777"}, **EN)
    assert post.status_code == 302 and post["Location"] == start
    assert "7777" not in json.dumps(client.session.get(f"optout:prg:{start}"))
    page = client.get(start, **EN)
    assert page.status_code == 400 and "not a valid mobile number" in page.content.decode()
    assert 'value="852" selected' in page.content.decode()

    client.post(start, {"phone": NUMBER}, **EN)
    code_url = reverse("optout-code", args=[tenant_a.slug])
    post = client.post(code_url, {"code": "12"}, **EN)
    assert post.status_code == 302 and post["Location"] == code_url
    assert client.get(code_url, **EN).status_code == 400


def test_status_lookup_redirects_on_errors_and_on_success(client: Client, tenant_a: Tenant) -> None:
    from unsubscribe.requests.services import unsubscribe_request_create

    filed = unsubscribe_request_create(
        tenant=tenant_a, phone=E164, channel="web", verification_method="otp"
    ).request
    url = reverse("unsubscribe-status", args=[tenant_a.slug])

    bad = client.post(url, {"reference": "nope", "phone": NUMBER}, **EN)
    assert bad.status_code == 302 and bad["Location"] == url
    page = client.get(url, **EN)
    assert page.status_code == 400 and "Enter the 8-character reference" in page.content.decode()
    assert 'value="nope"' in page.content.decode() and NUMBER not in page.content.decode()

    good = client.post(url, {"reference": filed.reference, "phone": NUMBER}, **EN)
    assert good.status_code == 302 and "?token=" in good["Location"]
    assert filed.reference in client.get(good["Location"], **EN).content.decode()


def test_hub_confirm_error_redirects_and_the_get_shows_it(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, outbox: Path
) -> None:
    subscribe(tenant_a, "offers")
    subscribe(tenant_b, "picks")
    hub_verified(client, outbox)

    post = client.post(HUB_CHOOSE, {"providers": [str(tenant_b.pk)]}, **EN)

    assert post.status_code == 302 and post["Location"] == HUB_CHOOSE
    page = client.get(HUB_CHOOSE, **EN)
    body = page.content.decode()
    assert page.status_code == 400 and "Tick the box to confirm." in body
    # the ticks are as the person left them
    assert f'value="{tenant_b.pk}" aria-describedby="provider-terms-{tenant_b.pk}" checked' in body
    assert f'value="{tenant_a.pk}" aria-describedby="provider-terms-{tenant_a.pk}" >' in body
    assert not UnsubscribeRequest.objects.unscoped(reason="test").exists()


def test_email_confirm_page_always_redirects(client: Client, tenant_a: Tenant) -> None:
    service = Service.objects.create(tenant=tenant_a, name="Deals", code="deals")
    subscription = subscribe(tenant_a, "deals")
    assert subscription.service == service
    link = links.email_unsubscribe_path(subscription)
    ChannelSetting.objects.create(tenant=tenant_a, channel="email", enabled=False)

    refused = client.post(link + "confirm/", **EN)

    assert refused.status_code == 302 and refused["Location"] == link
    assert 'data-testid="email-disabled"' in client.get(link, **EN).content.decode()
    # and a tampered link too
    tampered = link[:-3] + ("A" if link[-3] != "A" else "B") + link[-2:]
    response = client.post(tampered + "confirm/")
    assert response.status_code == 302 and client.get(response["Location"]).status_code == 400
