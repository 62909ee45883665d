"""The one-click unsubscribe link of marketing emails (RFC 8058) through the Django
test client and the partner API: GET only confirms, the page's button and the
mailbox provider's one-click POST file one request, bad and foreign tokens are
refused with a page, erased and already-stopped numbers, the email channel off."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from lanzuan import phones
from unsubscribe import links
from unsubscribe.models import (
    ChannelSetting,
    RequestChannel,
    Service,
    Subscription,
    UnsubscribeRequest,
    VerificationMethod,
)
from unsubscribe.optout import email_links
from unsubscribe.requests.services import unsubscribe_request_create
from unsubscribe.suppressions.selectors import suppression_status
from unsubscribe.suppressions.services import resubscribe

if TYPE_CHECKING:
    from collections.abc import Iterator

    from django.test.client import _MonkeyPatchedWSGIResponse as Response
    from pytest_django import Settings

    from tenants.models import Tenant

E164 = "+8613800138000"
ZH: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}
EN: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    cache.clear()  # API rate-limit counters
    yield
    cache.clear()


@pytest.fixture
def deals(tenant_a: Tenant) -> Service:
    return Service.objects.create(tenant=tenant_a, name="Daily deals", code="daily-deals")


@pytest.fixture
def club(tenant_a: Tenant) -> Service:
    return Service.objects.create(tenant=tenant_a, name="Members club", code="club")


def subscribe(service: Service, e164: str = E164) -> Subscription:
    return Subscription.objects.create(
        tenant=service.tenant,
        service=service,
        phone=e164,
        phone_hash=phones.tenant_phone_hash(service.tenant_id, e164),
        phone_masked=phones.mask(e164),
    )


@pytest.fixture
def subscription(deals: Service) -> Subscription:
    return subscribe(deals)


def link(subscription: Subscription) -> str:
    return links.email_unsubscribe_path(subscription)


def confirm_link(subscription: Subscription) -> str:
    return link(subscription) + "confirm/"


def suppressed(tenant: Tenant, service_code: str | None = None) -> bool:
    return suppression_status(tenant=tenant, phone=E164, service_code=service_code).suppressed


def switch_email_off(tenant: Tenant) -> None:
    ChannelSetting.objects.create(tenant=tenant, channel=RequestChannel.EMAIL, enabled=False)


def csrf_post(client: Client, url: str, **extra: Any) -> Response:
    """What a browser does: the page sets the CSRF cookie, the form sends the token back."""
    page = client.get(url, **extra)
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert match is not None
    return client.post(url + "confirm/", {"csrfmiddlewaretoken": match.group(1)}, **extra)


# --- the link and the headers ------------------------------------------------------------------------


def test_url_and_headers_carry_a_token_not_the_number(
    settings: Settings, subscription: Subscription, tenant_a: Tenant
) -> None:
    # given
    settings.PUBLIC_BASE_URL = "https://optout.example.com"

    # when
    url = links.email_unsubscribe_url(subscription)
    headers = links.email_unsubscribe_headers(subscription)

    # then
    assert url.startswith("https://optout.example.com/t/tenant-a/email/unsubscribe/")
    assert url.endswith("/")
    assert "13800138000" not in url and subscription.phone_hash not in url
    assert phones.platform_phone_hash(E164) not in url
    assert headers == {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


# --- GET: the confirmation page -------------------------------------------------------------------


def test_get_shows_the_confirmation_and_changes_nothing(
    client: Client, subscription: Subscription, tenant_a: Tenant
) -> None:
    response = client.get(link(subscription), **EN)

    assert response.status_code == 200
    body = response.content.decode()
    assert "Stop Daily deals from 运营商 A?" in body
    assert "138****8000" in body and E164 not in body
    assert 'data-testid="email-confirm-form"' in body and 'method="post"' in body
    assert "csrfmiddlewaretoken" in body
    assert not UnsubscribeRequest.objects.for_tenant(tenant_a).exists()
    assert not suppressed(tenant_a, "daily-deals")
    assert "no-cache" in response["Cache-Control"]


def test_page_in_chinese_and_english(client: Client, subscription: Subscription) -> None:
    zh = client.get(link(subscription), **ZH).content.decode()
    assert '<html lang="zh-Hans">' in zh
    assert "确认退订" in zh and "确认前请了解" in zh
    assert 'data-testid="lang-en"' in zh  # switchable like the other pages

    en = client.get(link(subscription), **EN).content.decode()
    assert '<html lang="en">' in en
    assert "Confirm unsubscribe" in en and "Before you confirm" in en


def test_the_language_switch_keeps_the_person_on_the_link(client: Client, subscription: Subscription) -> None:
    response = client.post(reverse("set_language"), {"language": "en", "next": link(subscription)})
    assert response.status_code == 302 and response["Location"] == link(subscription)

    assert "Confirm unsubscribe" in client.get(link(subscription)).content.decode()


# --- POST from the page -----------------------------------------------------------------------------


def test_page_post_files_the_request_and_shows_the_receipt(
    subscription: Subscription, club: Service, tenant_a: Tenant
) -> None:
    # given
    browser = Client(enforce_csrf_checks=True)
    subscribe(club)

    # when
    response = csrf_post(browser, link(subscription), **EN)

    # then a redirect back to the link, which now shows the receipt
    assert response.status_code == 302 and response["Location"] == link(subscription)
    found = UnsubscribeRequest.objects.for_tenant(tenant_a).get()
    assert found.channel == RequestChannel.EMAIL
    assert found.verification_method == VerificationMethod.SIGNED_TOKEN
    assert found.verification_evidence == {"subscription_id": subscription.pk}
    assert found.filed_by == "the person, by the email link (page)"
    assert found.language == "en"
    assert [s.code for s in found.services.all()] == ["daily-deals"] and not found.scope_all
    assert suppressed(tenant_a, "daily-deals")
    assert not suppressed(tenant_a, "club") and not suppressed(tenant_a)

    receipt = browser.get(link(subscription), **EN)
    body = receipt.content.decode()
    assert receipt.status_code == 200
    assert f'<p class="reference" data-testid="receipt-reference">{found.reference}</p>' in body
    assert "138****8000" in body and "Daily deals" in body
    assert reverse("unsubscribe-status", args=[tenant_a.slug]) + "?token=" in body

    # a second press (back button, double click) returns the same request
    assert csrf_post(browser, link(subscription), **EN).status_code == 302
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1


def test_page_post_without_csrf_token_is_refused(subscription: Subscription, tenant_a: Tenant) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.get(link(subscription))  # has the cookie, but the form field is missing

    response = browser.post(confirm_link(subscription), {})

    assert response.status_code == 403
    assert not UnsubscribeRequest.objects.for_tenant(tenant_a).exists()
    assert not suppressed(tenant_a, "daily-deals")


def test_confirm_url_does_not_act_on_get(
    client: Client, subscription: Subscription, tenant_a: Tenant
) -> None:
    assert client.get(confirm_link(subscription)).status_code == 405
    assert not UnsubscribeRequest.objects.for_tenant(tenant_a).exists()


# --- RFC 8058 one-click ------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
def test_one_click_post_without_cookies_or_csrf_unsubscribes(
    encoding: str, subscription: Subscription, tenant_a: Tenant
) -> None:
    # given: a mailbox provider, no cookies, no CSRF token
    provider = Client(enforce_csrf_checks=True)
    url = link(subscription)

    # when
    if encoding == "multipart":
        response = provider.post(url, ONE_CLICK)
    else:
        response = provider.post(
            url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
        )

    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    found = UnsubscribeRequest.objects.for_tenant(tenant_a).get()
    assert found.reference in response.content.decode()
    assert found.filed_by == "the person, by the email link (one-click)"
    assert suppressed(tenant_a, "daily-deals")
    assert "sessionid" not in response.cookies and "csrftoken" not in response.cookies


def test_repeated_one_click_files_one_request(subscription: Subscription, tenant_a: Tenant) -> None:
    provider = Client(enforce_csrf_checks=True)

    answers = [provider.post(link(subscription), ONE_CLICK) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1
    # and the person opening the link afterwards sees that receipt, not a new question
    page = Client().get(link(subscription)).content.decode()
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).get().reference in page
    assert "email-confirm-form" not in page


def test_page_and_one_click_racing_file_one_request(
    monkeypatch: pytest.MonkeyPatch, subscription: Subscription, tenant_a: Tenant
) -> None:
    # given: the one-click filed between the page's check and its filing
    Client(enforce_csrf_checks=True).post(link(subscription), ONE_CLICK)
    first = UnsubscribeRequest.objects.for_tenant(tenant_a).get()
    stale = email_links.EmailLinkStatus(
        request=None,
        suppression=suppression_status(tenant=tenant_a, phone="+8613900000000"),
        enabled=True,
    )
    monkeypatch.setattr(email_links, "email_link_status", lambda subscription: stale)

    # when: the page files with other evidence under the same key
    done = email_links.email_unsubscribe(subscription=subscription, via="page")

    # then
    assert done.request == first and not done.created
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1


@pytest.mark.parametrize("body", [{}, {"List-Unsubscribe": "Yes"}, {"confirm": "on"}])
def test_post_without_the_one_click_field_does_nothing(
    body: dict[str, str], subscription: Subscription, tenant_a: Tenant
) -> None:
    response = Client(enforce_csrf_checks=True).post(link(subscription), body)

    assert response.status_code == 400
    assert not UnsubscribeRequest.objects.for_tenant(tenant_a).exists()
    assert not suppressed(tenant_a, "daily-deals")


def test_one_click_again_after_resubscribing_stops_again(
    subscription: Subscription, tenant_a: Tenant
) -> None:
    provider = Client(enforce_csrf_checks=True)
    provider.post(link(subscription), ONE_CLICK)
    resubscribe(tenant=tenant_a, phone=E164, channel=RequestChannel.WEB, services=["daily-deals"])
    assert not suppressed(tenant_a, "daily-deals")

    # the old link shows the question again, and a new click suppresses again
    assert "email-confirm-form" in Client().get(link(subscription)).content.decode()
    assert provider.post(link(subscription), ONE_CLICK).status_code == 200
    assert suppressed(tenant_a, "daily-deals")
    # the first request is still open (no pipeline ran here): it absorbs the click and
    # suppresses the number again, rather than filing a second request and a second SMS
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1


# --- bad tokens ---------------------------------------------------------------------------------------


def tampered(subscription: Subscription) -> str:
    token = links.email_unsubscribe_token(subscription)
    payload, _, signature = token.rpartition(":")
    return reverse(
        "optout-email-unsubscribe",
        args=[
            subscription.tenant.slug,
            payload + ":" + ("A" if signature[0] != "A" else "B") + signature[1:],
        ],
    )


def test_tampered_token_shows_a_clear_page(
    client: Client, subscription: Subscription, tenant_a: Tenant
) -> None:
    for url in (tampered(subscription), reverse("optout-email-unsubscribe", args=[tenant_a.slug, "garbage"])):
        response = client.get(url, **EN)
        assert response.status_code == 400
        body = response.content.decode()
        assert "This link is not valid" in body
        assert 'data-testid="ways"' in body  # the other ways out

        assert Client(enforce_csrf_checks=True).post(url, ONE_CLICK).status_code == 400
        confirm = client.post(url + "confirm/")  # post/redirect/get: the link's page says why
        assert confirm.status_code == 302 and client.get(confirm["Location"]).status_code == 400
    assert not UnsubscribeRequest.objects.unscoped(reason="test").exists()


def test_a_token_of_tenant_a_does_nothing_under_tenant_b(
    client: Client, subscription: Subscription, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    token = links.email_unsubscribe_token(subscription)
    url = reverse("optout-email-unsubscribe", args=[tenant_b.slug, token])

    assert client.get(url).status_code == 400
    assert Client(enforce_csrf_checks=True).post(url, ONE_CLICK).status_code == 400
    confirm = client.post(url + "confirm/")
    assert confirm.status_code == 302 and client.get(confirm["Location"]).status_code == 400
    assert not UnsubscribeRequest.objects.unscoped(reason="test").exists()


def test_a_deleted_subscription_or_unknown_tenant(
    client: Client, subscription: Subscription, tenant_a: Tenant
) -> None:
    url = link(subscription)
    subscription.delete()
    assert client.get(url).status_code == 400
    assert client.get(url.replace("/t/tenant-a/", "/t/no-such-tenant/")).status_code == 404


# --- already unsubscribed ---------------------------------------------------------------------------------


def test_an_erased_subscription_reads_as_already_unsubscribed(
    client: Client, subscription: Subscription, tenant_a: Tenant
) -> None:
    # given: an opt-out by SMS, completed: the number was erased from the subscription
    unsubscribe_request_create(
        tenant=tenant_a,
        phone=E164,
        channel=RequestChannel.SMS,
        verification_method=VerificationMethod.SMS_ORIGIN,
    )
    Subscription.objects.for_tenant(tenant_a).update(phone="")
    subscription.refresh_from_db()

    page = client.get(link(subscription), **EN)
    assert page.status_code == 200
    assert "You are already unsubscribed" in page.content.decode()
    assert 'data-testid="email-already"' in page.content.decode()

    one_click = Client(enforce_csrf_checks=True).post(link(subscription), ONE_CLICK, **EN)
    assert one_click.status_code == 200 and "already unsubscribed" in one_click.content.decode()
    assert client.post(confirm_link(subscription)).status_code == 302
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1  # only the SMS one


def test_an_erased_number_that_is_not_suppressed_cannot_be_acted_on(
    client: Client, subscription: Subscription, tenant_a: Tenant
) -> None:
    Subscription.objects.for_tenant(tenant_a).update(phone="")
    subscription.refresh_from_db()

    assert client.get(link(subscription)).status_code == 410
    assert Client(enforce_csrf_checks=True).post(link(subscription), ONE_CLICK).status_code == 410
    assert not UnsubscribeRequest.objects.for_tenant(tenant_a).exists()


# --- the email channel switched off -------------------------------------------------------------------


def test_email_channel_off_no_headers_and_the_page_shows_other_ways(
    client: Client, subscription: Subscription, tenant_a: Tenant
) -> None:
    # given
    switch_email_off(tenant_a)

    # then senders get no headers
    assert links.email_unsubscribe_headers(subscription) == {}

    # and the page refuses with the other ways
    page = client.get(link(subscription), **EN)
    body = page.content.decode()
    assert page.status_code == 200
    assert 'data-testid="email-disabled"' in body and "does not offer unsubscribing by" in body
    assert 'data-testid="way-sms"' in body and 'data-testid="way-email"' not in body
    assert "email-confirm-form" not in body

    one_click = Client(enforce_csrf_checks=True).post(link(subscription), ONE_CLICK, **EN)
    assert one_click.status_code == 403 and "By SMS" in one_click.content.decode()
    confirm = client.post(confirm_link(subscription), **EN)
    assert confirm["Location"] == link(subscription)
    assert 'data-testid="email-disabled"' in client.get(confirm["Location"], **EN).content.decode()
    assert not suppressed(tenant_a, "daily-deals")


# --- partner API ----------------------------------------------------------------------------------------


def api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def endpoint(subscription: Subscription) -> str:
    return f"/api/v1/subscriptions/{subscription.pk}/email-unsubscribe-link"


def test_partner_gets_the_link_and_headers(
    settings: Settings, api_key_a: str, subscription: Subscription
) -> None:
    settings.PUBLIC_BASE_URL = "https://optout.example.com"

    response = api(api_key_a).get(endpoint(subscription))

    assert response.status_code == 200
    data = response.json()
    assert data["url"] == links.email_unsubscribe_url(subscription)
    assert data["headers"] == {
        "List-Unsubscribe": f"<{data['url']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert data["enabled"] is True and data["subscription"] == subscription.pk
    # the link works
    path = data["url"].removeprefix("https://optout.example.com")
    assert Client(enforce_csrf_checks=True).post(path, ONE_CLICK).status_code == 200


def test_partner_gets_no_headers_with_the_channel_off(
    api_key_a: str, subscription: Subscription, tenant_a: Tenant
) -> None:
    switch_email_off(tenant_a)

    data = api(api_key_a).get(endpoint(subscription)).json()

    assert data["headers"] == {} and data["enabled"] is False


def test_partner_cannot_see_another_tenants_subscription(api_key_b: str, subscription: Subscription) -> None:
    response = api(api_key_b).get(endpoint(subscription))

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "not_found"
    assert "url" not in response.json()


def test_partner_endpoint_needs_a_key(subscription: Subscription) -> None:
    assert APIClient().get(endpoint(subscription)).status_code == 401


def test_the_same_subscription_always_gets_the_same_link(subscription: Subscription, deals: Service) -> None:
    other = subscribe(deals, "+8613912345678")

    assert links.email_unsubscribe_url(subscription) == links.email_unsubscribe_url(subscription)
    assert links.email_unsubscribe_url(subscription) != links.email_unsubscribe_url(other)
