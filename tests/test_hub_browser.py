"""Issue 17's person's side in headless Chromium, 390×844 like a phone, in zh-Hans and English:
after one code the hub lists two tenants' services and three past requests; a suggestion's one-tap
stop files a request; the full opt-out is one tap from the hub and from the tenant's page; the
platform-wide do-not-market entry is set from the hub. Screenshots go to VAR_DIR/screenshots."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from lanzuan import phones
from tenants.models import Tenant
from unsubscribe.models import PlatformDoNotMarket, Service, Subscription, Suppression, UnsubscribeRequest
from unsubscribe.optout.models import Alternative
from unsubscribe.requests.services import unsubscribe_request_create
from unsubscribe.sendlogs.services import SendRecord, send_logs_ingest
from unsubscribe.suppressions.selectors import suppression_status

if TYPE_CHECKING:
    from collections.abc import Callable

    from celery import Celery
    from pytest_django.live_server_helper import LiveServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_limits", "platform_sender"),
]

NUMBER = "13800138000"
E164 = "+8613800138000"
LANGUAGES = [
    pytest.param("zh-CN", {"send": "发送验证码", "verify": "验证"}, id="zh-Hans"),
    pytest.param("en-US", {"send": "Send code", "verify": "Verify"}, id="en"),
]


def last_code(outbox: Path) -> str:
    lines = [json.loads(line) for line in outbox.read_text().splitlines()] if outbox.exists() else []
    bodies = [line["body"] for line in lines if line["to"] == E164]
    assert bodies, "no message to the number in the outbox"
    code = re.search(r"\b(\d{6})\b", bodies[-1])
    assert code is not None
    return code.group(1)


def subscribe(tenant: Tenant, code: str, name: str) -> Service:
    service = Service.objects.create(tenant=tenant, code=code, name=name)
    Subscription.objects.create(
        tenant=tenant,
        service=service,
        phone=E164,
        phone_hash=phones.tenant_phone_hash(tenant.pk, E164),
        phone_masked=phones.mask(E164),
    )
    return service


def sent(tenant: Tenant, code: str, count: int) -> None:
    digest = phones.tenant_phone_hash(tenant.pk, E164)
    start = timezone.now() - timedelta(days=2)
    send_logs_ingest(
        tenant=tenant,
        records=[
            SendRecord(phone_hash=digest, sent_at=start + timedelta(minutes=i), service_code=code)
            for i in range(count)
        ],
    )


@pytest.fixture
def two_providers(tenant_a: Tenant, tenant_b: Tenant) -> list[str]:
    """A with two services, B with one (reported by send logs too), three earlier requests
    (their opt-outs lifted since, so both providers market again); returns the references."""
    subscribe(tenant_a, "offers", "Data offers")
    subscribe(tenant_a, "club", "Blue Diamond club")
    subscribe(tenant_b, "picks", "Daily picks")
    references = [
        unsubscribe_request_create(
            tenant=tenant, phone=E164, channel="app", verification_method="partner_assertion", services=scope
        ).request.reference
        for tenant, scope in ((tenant_a, ["club"]), (tenant_b, None), (tenant_b, ["picks"]))
    ]
    Suppression.objects.unscoped(reason="test").delete()
    sent(tenant_a, "offers", 7)
    sent(tenant_b, "picks", 3)
    Alternative.objects.create(tenant=tenant_a, kind="pause30")
    Alternative.objects.create(tenant=tenant_a, kind="fewer")
    return references


def through_the_code(page: Page, base: str, path: str, outbox: Path, words: dict[str, str]) -> None:
    page.goto(f"{base}{path}")
    page.locator("#phone").fill(NUMBER)
    page.get_by_role("button", name=words["send"], exact=True).click()
    page.locator("#code").fill(last_code(outbox))
    page.get_by_role("button", name=words["verify"], exact=True).click()


@pytest.mark.parametrize(("locale", "words"), LANGUAGES)
def test_hub_after_one_code_lists_both_providers_three_requests_and_stops_with_one_tap(
    live_server: LiveServer,
    open_page: Callable[[str], Page],
    tenant_a: Tenant,
    tenant_b: Tenant,
    two_providers: list[str],
    outbox: Path,
    eager_celery: Celery,
    shots: Path,
    locale: str,
    words: dict[str, str],
) -> None:
    lang = "zh" if locale.startswith("zh") else "en"
    page = open_page(locale)
    through_the_code(page, live_server.url, "/hub/", outbox, words)

    # the hub lists both providers with their services, and the three past requests
    expect(page.get_by_test_id(f"hub-card-{tenant_a.slug}")).to_contain_text("Data offers")
    expect(page.get_by_test_id(f"hub-card-{tenant_a.slug}")).to_contain_text("Blue Diamond club")
    expect(page.get_by_test_id(f"hub-card-{tenant_b.slug}")).to_contain_text("Daily picks")
    for reference in two_providers:
        expect(page.get_by_test_id(f"hub-request-{reference}")).to_be_visible()
    expect(page.get_by_test_id("hub-request-status")).to_have_count(3)
    offers = page.get_by_test_id(f"{tenant_a.slug}-suggestion-offers")
    expect(offers.get_by_test_id("messages")).to_contain_text("7")
    # the full opt-out is on the page, one tap, ahead of everything else
    expect(page.get_by_test_id("hub-stop-all")).to_be_visible()
    shot_name = f"issue17-hub-{lang}-1-after-code"
    page.screenshot(path=str(shots / f"{shot_name}.png"), full_page=True)

    # a suggestion's one-tap stop files a request for that service alone
    offers.get_by_test_id("stop-service").click()
    expect(page.locator(".notice.success")).to_be_visible()
    filed = UnsubscribeRequest.objects.for_tenant(tenant_a).filter(channel="hub").get()
    assert [s.code for s in filed.services.all()] == ["offers"]
    expect(page.locator(".notice.success")).to_contain_text(filed.reference)
    expect(
        page.get_by_test_id(f"{tenant_a.slug}-suggestion-offers").get_by_test_id("stopped")
    ).to_be_visible()
    assert suppression_status(tenant=tenant_a, phone=E164, service_code="offers").suppressed
    assert not suppression_status(tenant=tenant_a, phone=E164).suppressed
    page.screenshot(path=str(shots / f"issue17-hub-{lang}-2-service-stopped.png"), full_page=True)

    # do-not-market, one tap from the same page
    page.get_by_test_id("hub-dnm-set").click()
    expect(page.get_by_test_id("hub-dnm-on")).to_be_visible()
    expect(page.get_by_test_id("hub-dnm-fresh")).to_be_visible()  # lifting takes a new code
    assert PlatformDoNotMarket.objects.filter(phone_hash=phones.platform_phone_hash(E164)).exists()
    page.screenshot(path=str(shots / f"issue17-hub-{lang}-3-do-not-market.png"), full_page=True)

    # and everything else stops with one tap
    page.get_by_test_id("hub-stop-all").click()
    expect(page.get_by_test_id("receipt-reference")).to_have_count(2)
    for tenant in (tenant_a, tenant_b):
        assert suppression_status(tenant=tenant, phone=E164).suppressed
    page.screenshot(path=str(shots / f"issue17-hub-{lang}-4-receipts.png"), full_page=True)


@pytest.mark.parametrize(("locale", "words"), LANGUAGES)
def test_tenant_page_shows_suggestions_and_the_full_opt_out_is_one_tap(
    live_server: LiveServer,
    open_page: Callable[[str], Page],
    tenant_a: Tenant,
    tenant_b: Tenant,
    two_providers: list[str],
    outbox: Path,
    eager_celery: Celery,
    shots: Path,
    locale: str,
    words: dict[str, str],
) -> None:
    lang = "zh" if locale.startswith("zh") else "en"
    page = open_page(locale)
    through_the_code(page, live_server.url, f"/t/{tenant_a.slug}/unsubscribe/", outbox, words)

    offers = page.get_by_test_id("suggestion-offers")
    expect(offers.get_by_test_id("messages")).to_contain_text("7")
    expect(offers.get_by_test_id("alternative-pause30")).to_be_visible()
    # the alternatives sit beside the stop, after it; the full opt-out is above them all
    stop_box = offers.get_by_test_id("stop-service").bounding_box()
    pause_box = offers.get_by_test_id("alternative-pause30").bounding_box()
    all_box = page.get_by_test_id("stop-all").bounding_box()
    assert stop_box and pause_box and all_box
    assert all_box["y"] < stop_box["y"] and (pause_box["y"], pause_box["x"]) >= (stop_box["y"], stop_box["x"])
    page.screenshot(path=str(shots / f"issue17-tenant-{lang}-1-suggestions.png"), full_page=True)

    page.get_by_test_id("stop-all").click()

    expect(page.get_by_test_id("receipt-reference")).to_be_visible()
    filed = UnsubscribeRequest.objects.for_tenant(tenant_a).filter(channel="web").get()
    assert filed.scope_all
    assert suppression_status(tenant=tenant_a, phone=E164).suppressed
    assert not suppression_status(tenant=tenant_b, phone=E164).suppressed
    page.screenshot(path=str(shots / f"issue17-tenant-{lang}-2-receipt.png"), full_page=True)
