"""The opt-out pages in headless Chromium (Playwright), 390×844 like a phone.

Notifications are made synchronous with Celery's eager mode (the `eager_celery`
fixture sets task_always_eager on the app): the code is sent, and after the
receipt the whole pipeline runs, inside the live server's request, once the
transaction commits. Codes are read from the outbox file. Each step is saved as a
screenshot under settings.VAR_DIR / "screenshots".
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from tenants.models import Tenant
from unsubscribe.models import ChannelSetting, Service, UnsubscribeRequest
from unsubscribe.optout.models import PhoneVerification
from unsubscribe.suppressions.selectors import suppression_status

if TYPE_CHECKING:
    from collections.abc import Callable

    from celery import Celery
    from playwright.sync_api import Request
    from pytest_django.live_server_helper import LiveServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_limits", "platform_sender"),
]

NUMBER = "13800138000"
E164 = "+8613800138000"


@pytest.fixture
def bluesea(db: None) -> Tenant:
    tenant = Tenant.objects.create(
        slug="bluesea",
        name="蓝海移动 BlueSea Mobile",
        kind=Tenant.Kind.OPERATOR,
        brand_colour="#0B5FFF",
        erasure_delay_hours=0,
        terms_zh="退订后，我们将立即停止向您的号码发送所选营销信息，并在确认后删除用于营销的个人信息"
        "（姓名、兴趣、城市）。退订记录仅以加密摘要形式保留。您可随时重新订阅。",
        terms_en="Once you unsubscribe we stop the chosen marketing to your number at once and, after "
        "confirming, delete the personal data used for marketing (name, interests, city). "
        "We keep only a keyed hash of your number. You may re-subscribe at any time.",
    )
    Service.objects.create(tenant=tenant, name="流量优惠 Data offers", code="data-offers")
    Service.objects.create(tenant=tenant, name="蓝钻会员 Blue Diamond club", code="blue-diamond")
    ChannelSetting.objects.create(tenant=tenant, channel="sms", reply_numbers="10690001")
    ChannelSetting.objects.create(
        tenant=tenant,
        channel="hotline",
        hotline_number="10086",
        hotline_hours="9:00–21:00",
        hotline_menu_key="3",
    )
    ChannelSetting.objects.create(
        tenant=tenant,
        channel="app",
        app_path_zh="我的 → 设置 → 消息推送",
        app_path_en="Me → Settings → Push messages",
    )
    return tenant


def last_code(outbox: Path, to: str = E164) -> str:
    lines = [json.loads(line) for line in outbox.read_text().splitlines()] if outbox.exists() else []
    bodies = [line["body"] for line in lines if line["to"] == to]
    assert bodies, f"no message to {to} in the outbox"
    code = re.search(r"\b(\d{6})\b", bodies[-1])
    assert code is not None, bodies[-1]
    return code.group(1)


def shot(page: Page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_whole_flow_in_chinese_for_all_marketing(
    live_server: LiveServer,
    open_page: Callable[[str], Page],
    bluesea: Tenant,
    outbox: Path,
    eager_celery: Celery,
    shots: Path,
) -> None:
    page = open_page("zh-CN")
    page.goto(f"{live_server.url}/t/bluesea/unsubscribe/")
    expect(page.locator("h1")).to_have_text("退订蓝海移动 BlueSea Mobile")
    expect(page.get_by_test_id("way-sms")).to_contain_text("回复 TD / 退订 到 10690001")
    shot(page, shots, "optout-zh-1-number")

    page.get_by_label("手机号码").fill("138 0013 8000")
    page.get_by_role("button", name="发送验证码", exact=True).click()
    expect(page.get_by_test_id("code-sent")).to_contain_text("138****8000")
    assert NUMBER not in page.url
    shot(page, shots, "optout-zh-2-code")

    page.get_by_label("验证码", exact=True).fill(last_code(outbox))
    page.get_by_role("button", name="验证", exact=True).click()
    expect(page.locator("h1")).to_have_text("您要退订什么？")
    expect(page.get_by_test_id("terms")).to_contain_text("退订后")
    shot(page, shots, "optout-zh-3-choose")

    page.get_by_label("蓝海移动 BlueSea Mobile的全部营销信息").check()
    page.locator("#confirm").check()
    page.get_by_role("button", name="确认退订").click()
    reference = page.get_by_test_id("receipt-reference").inner_text()
    assert re.fullmatch(r"[2-9A-Z]{4}-[2-9A-Z]{4}", reference)
    expect(page.get_by_test_id("receipt-number")).to_have_text("138****8000")
    shot(page, shots, "optout-zh-4-receipt")

    # the number reads as suppressed, and the status page shows each finished step
    assert suppression_status(tenant=bluesea, phone=E164).suppressed
    page.get_by_test_id("status-link").click()
    expect(page.get_by_test_id("status-reference")).to_have_text(reference)
    # Lanzuan's own records are built-in steps (one per data source), shown by public labels only
    expect(page.get_by_test_id("step-terminate")).to_have_count(1)
    expect(page.get_by_test_id("step-confirm")).to_contain_text("已发送确认短信")
    expect(page.get_by_test_id("step-erase").first).to_be_visible()
    expect(page.get_by_test_id("timeline")).not_to_contain_text("Lanzuan")
    expect(page.get_by_test_id("status-state")).to_contain_text("已完成")
    shot(page, shots, "optout-zh-5-status")
    request = UnsubscribeRequest.objects.for_tenant(bluesea).get(reference=reference)
    assert request.state == "completed" and request.phone == ""
    assert PhoneVerification.objects.unscoped(reason="test").get().phone == ""


def test_whole_flow_in_english_for_one_service_by_keyboard(
    live_server: LiveServer,
    open_page: Callable[[str], Page],
    bluesea: Tenant,
    outbox: Path,
    eager_celery: Celery,
    shots: Path,
) -> None:
    page = open_page("en-US")
    page.goto(f"{live_server.url}/t/bluesea/unsubscribe/")
    expect(page.locator("h1")).to_have_text("Unsubscribe from 蓝海移动 BlueSea Mobile")
    shot(page, shots, "optout-en-1-number")

    # keyboard only: Tab from the country list to the number, Enter submits
    page.locator("#country").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "phone"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"  # visible focus
    page.keyboard.type(NUMBER)
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("code-sent")).to_contain_text("138****8000")
    shot(page, shots, "optout-en-2-code")

    assert page.evaluate("document.activeElement.id") == "code"  # autofocus
    page.keyboard.type(last_code(outbox))
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("What do you want to stop?")
    page.locator("#service-blue-diamond").focus()
    page.keyboard.press("Space")
    expect(page.locator("#scope-some")).to_be_checked()
    page.locator("#confirm").focus()
    page.keyboard.press("Space")
    shot(page, shots, "optout-en-3-choose")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")

    expect(page.locator("h1")).to_have_text("You are unsubscribed")
    expect(page.get_by_test_id("receipt-scope")).to_have_text("蓝钻会员 Blue Diamond club")
    shot(page, shots, "optout-en-4-receipt")
    assert suppression_status(tenant=bluesea, phone=E164, service_code="blue-diamond").suppressed
    assert not suppression_status(tenant=bluesea, phone=E164).suppressed  # not everything
    page.get_by_test_id("status-link").click()
    expect(page.get_by_test_id("step-suppressed")).to_contain_text(
        "Marketing stopped: 蓝钻会员 Blue Diamond club"
    )
    shot(page, shots, "optout-en-5-status")


def test_errors_wrong_and_expired_code_malformed_number_and_language_switch(
    live_server: LiveServer,
    open_page: Callable[[str], Page],
    bluesea: Tenant,
    outbox: Path,
    eager_celery: Celery,
    shots: Path,
) -> None:
    page = open_page("zh-CN")
    page.goto(f"{live_server.url}/t/bluesea/unsubscribe/")

    # a malformed number: an error next to the field, in Chinese, announced
    page.get_by_label("手机号码").fill("12345")
    page.get_by_role("button", name="发送验证码", exact=True).click()
    error = page.locator("#phone-error")
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_contain_text("这不是有效的手机号码")
    expect(page.get_by_label("手机号码")).to_have_attribute("aria-invalid", "true")
    shot(page, shots, "optout-zh-error-number")

    # a wrong code
    page.get_by_label("手机号码").fill(NUMBER)
    page.get_by_role("button", name="发送验证码", exact=True).click()
    right = last_code(outbox)
    page.get_by_label("验证码", exact=True).fill("000000" if right != "000000" else "111111")
    page.get_by_role("button", name="验证", exact=True).click()
    expect(page.locator("#code-error")).to_contain_text("验证码不正确，您还可以尝试 4 次。")
    shot(page, shots, "optout-zh-error-code")

    # an expired code
    PhoneVerification.objects.unscoped(reason="test").update(expires_at=timezone.now() - timedelta(seconds=1))
    page.get_by_label("验证码", exact=True).fill(right)
    page.get_by_role("button", name="验证", exact=True).click()
    expect(page.locator("#code-error")).to_contain_text("验证码已过期")
    shot(page, shots, "optout-zh-error-expired")

    # the language switch: the same page in English
    page.get_by_test_id("lang-en").click()
    expect(page.locator("h1")).to_have_text("Enter the code")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    # a new code inside the cool-down is refused with a message, not an error page
    page.get_by_role("button", name="Send a new code").click()
    expect(page.locator("#resend-error")).to_contain_text("Please wait")
    shot(page, shots, "optout-en-error-resend")


def test_tenant_page_lists_the_ways_to_unsubscribe(
    live_server: LiveServer, open_page: Callable[[str], Page], bluesea: Tenant, shots: Path
) -> None:
    page = open_page("en-US")
    page.goto(f"{live_server.url}/t/bluesea/")
    expect(page.get_by_test_id("way-hotline")).to_contain_text("Call 10086, press 3 (open 9:00–21:00).")
    expect(page.get_by_test_id("way-app")).to_contain_text("Me → Settings → Push messages")
    shot(page, shots, "optout-en-ways")
    page.get_by_test_id("lang-zh").click()
    expect(page.get_by_test_id("way-hotline")).to_contain_text("拨打 10086，按 3（服务时间 9:00–21:00）。")
    shot(page, shots, "optout-zh-ways")


def test_hub_stops_two_providers_at_once(
    live_server: LiveServer,
    open_page: Callable[[str], Page],
    bluesea: Tenant,
    tenant_b: Tenant,
    outbox: Path,
    eager_celery: Celery,
    shots: Path,
) -> None:
    from lanzuan import phones
    from unsubscribe.models import Subscription

    for tenant in (bluesea, tenant_b):
        service = Service.objects.unscoped(reason="test").filter(
            tenant=tenant
        ).first() or Service.objects.create(tenant=tenant, name="Member promotions", code="promotions")
        Subscription.objects.create(
            tenant=tenant,
            service=service,
            phone=E164,
            phone_hash=phones.tenant_phone_hash(tenant.pk, E164),
            phone_masked="138****8000",
        )
    page = open_page("zh-CN")
    page.goto(f"{live_server.url}/hub/")
    shot(page, shots, "optout-hub-zh-1-number")
    page.get_by_label("手机号码").fill(NUMBER)
    page.get_by_role("button", name="发送验证码", exact=True).click()
    page.get_by_label("验证码", exact=True).fill(last_code(outbox))
    page.get_by_role("button", name="验证", exact=True).click()
    expect(page.get_by_label("Platform B")).to_be_checked()
    page.locator("#confirm").check()
    shot(page, shots, "optout-hub-zh-3-choose")
    page.get_by_role("button", name="全部退订").click()
    expect(page.get_by_test_id("receipt-reference")).to_have_count(2)
    shot(page, shots, "optout-hub-zh-4-receipts")
    for tenant in (bluesea, tenant_b):
        assert suppression_status(tenant=tenant, phone=E164).suppressed


# --- issue 11 item 12: Back after a form error never asks to resubmit a form -----------------------


class Navigations:
    """Every top-level document request of a page, in order, as (method, path)."""

    def __init__(self, page: Page, base: str) -> None:
        self.base = base
        self.seen: list[tuple[str, str]] = []
        page.on("request", self._record)

    def _record(self, request: Request) -> None:
        if request.is_navigation_request() and request.frame.parent_frame is None:
            self.seen.append((request.method, request.url.removeprefix(self.base)))

    def mark(self) -> int:
        return len(self.seen)

    def since(self, mark: int) -> list[tuple[str, str]]:
        return self.seen[mark:]


def back_loads_by_get(page: Page, nav: Navigations, elsewhere: str, expected_path: str) -> None:
    """Leave the error page, then press Back: the page comes back by GET (Chromium would
    otherwise show "Confirm Form Resubmission" / ERR_CACHE_MISS for a POST result)."""
    page.goto(elsewhere)
    mark = nav.mark()
    response = page.go_back()
    assert response is not None, "Back did not load a page"
    assert response.request.method == "GET"
    assert response.status < 500
    assert not page.url.startswith("chrome-error://")
    assert all(method == "GET" for method, _path in nav.since(mark)), nav.since(mark)
    assert page.url.removeprefix(nav.base).split("?")[0] == expected_path
    # and a reload does not post either
    mark = nav.mark()
    page.reload()
    assert all(method == "GET" for method, _path in nav.since(mark)), nav.since(mark)


def test_back_after_a_confirm_error_on_the_tenant_page_loads_by_get(
    live_server: LiveServer,
    open_page: Callable[[str], Page],
    bluesea: Tenant,
    outbox: Path,
    eager_celery: Celery,
    tmp_path: Path,
) -> None:
    page = open_page("en-US")
    nav = Navigations(page, live_server.url)
    page.goto(f"{live_server.url}/t/bluesea/unsubscribe/")
    page.get_by_label("Mobile number").fill(NUMBER)
    page.get_by_role("button", name="Send code", exact=True).click()
    page.get_by_label("Code", exact=True).fill(last_code(outbox))
    page.get_by_role("button", name="Verify", exact=True).click()
    expect(page.locator("h1")).to_have_text("What do you want to stop?")

    # when the confirmation is submitted without the tick
    mark = nav.mark()
    page.get_by_role("button", name="Confirm unsubscribe").click()

    # then the POST was redirected and the error page is a GET
    expect(page.locator("#confirm-error")).to_contain_text("Tick the box to confirm.")
    assert nav.since(mark) == [
        ("POST", "/t/bluesea/unsubscribe/choose/"),
        ("GET", "/t/bluesea/unsubscribe/choose/"),
    ]
    page.screenshot(path=str(tmp_path / "choose-error.png"), full_page=True)
    back_loads_by_get(page, nav, f"{live_server.url}/t/bluesea/", "/t/bluesea/unsubscribe/choose/")
    expect(page.locator("h1")).to_have_text("What do you want to stop?")
    page.screenshot(path=str(tmp_path / "choose-after-back.png"), full_page=True)


def test_back_after_an_error_on_the_status_lookup_loads_by_get(
    live_server: LiveServer, open_page: Callable[[str], Page], bluesea: Tenant, tmp_path: Path
) -> None:
    page = open_page("zh-CN")
    nav = Navigations(page, live_server.url)
    page.goto(f"{live_server.url}/t/bluesea/status/")
    page.get_by_label("参考号").fill("nope")
    page.locator("#id_phone").fill(NUMBER)
    page.locator("[data-testid=status-form] button[type=submit]").click()

    expect(page.locator("#reference-error")).to_be_visible()
    expect(page.locator("#id_reference")).to_have_value("nope")
    # the number is not kept by the server, but the browser put it back
    expect(page.locator("#id_phone")).to_have_value(NUMBER)
    page.screenshot(path=str(tmp_path / "status-error.png"), full_page=True)
    back_loads_by_get(page, nav, f"{live_server.url}/t/bluesea/", "/t/bluesea/status/")


def test_back_after_a_confirm_error_on_the_hub_loads_by_get(
    live_server: LiveServer,
    open_page: Callable[[str], Page],
    bluesea: Tenant,
    tenant_b: Tenant,
    outbox: Path,
    eager_celery: Celery,
    tmp_path: Path,
) -> None:
    from lanzuan import phones
    from unsubscribe.models import Subscription

    Tenant.objects.filter(pk=bluesea.pk).update(allow_resubscribe=False)
    for tenant in (bluesea, tenant_b):
        service = Service.objects.unscoped(reason="test").filter(
            tenant=tenant
        ).first() or Service.objects.create(tenant=tenant, name="Member promotions", code="promotions")
        Subscription.objects.create(
            tenant=tenant,
            service=service,
            phone=E164,
            phone_hash=phones.tenant_phone_hash(tenant.pk, E164),
            phone_masked="x",
        )
    page = open_page("en-US")
    nav = Navigations(page, live_server.url)
    page.goto(f"{live_server.url}/hub/")
    page.get_by_label("Mobile number").fill(NUMBER)
    page.get_by_role("button", name="Send code", exact=True).click()
    sms = json.loads(outbox.read_text().splitlines()[-1])
    assert sms["tenant"] == "platform" and sms["body"].startswith("[Lanzuan] ")
    page.get_by_label("Code", exact=True).fill(last_code(outbox))
    page.get_by_role("button", name="Verify", exact=True).click()

    # each provider's own terms are on the confirm step
    expect(page.get_by_test_id("hub-terms-bluesea")).to_contain_text("No. This opt-out is final")
    expect(page.get_by_test_id("hub-terms-tenant-b")).to_contain_text("Yes. You can subscribe again")
    page.get_by_label("Platform B").uncheck()
    page.get_by_role("button", name="Unsubscribe from all ticked").click()

    expect(page.locator("#confirm-error")).to_contain_text("Tick the box to confirm.")
    expect(page.get_by_label("Platform B")).not_to_be_checked()  # as the person left it
    page.screenshot(path=str(tmp_path / "hub-error.png"), full_page=True)
    back_loads_by_get(page, nav, f"{live_server.url}/hub/", "/hub/choose/")


def test_back_after_a_refused_email_confirmation_loads_by_get(
    live_server: LiveServer, open_page: Callable[[str], Page], bluesea: Tenant, tmp_path: Path
) -> None:
    from lanzuan import phones
    from unsubscribe import links
    from unsubscribe.models import Subscription

    service = Service.objects.unscoped(reason="test").filter(tenant=bluesea).first()
    assert service is not None
    subscription = Subscription.objects.create(
        tenant=bluesea,
        service=service,
        phone=E164,
        phone_hash=phones.tenant_phone_hash(bluesea.pk, E164),
        phone_masked="x",
    )
    link = links.email_unsubscribe_path(subscription)
    page = open_page("en-US")
    nav = Navigations(page, live_server.url)
    page.goto(live_server.url + link)
    expect(page.get_by_test_id("email-confirm-form")).to_be_visible()
    # the provider switches email opt-outs off while the page is open
    ChannelSetting.objects.create(tenant=bluesea, channel="email", enabled=False)

    mark = nav.mark()
    page.get_by_role("button", name="Confirm unsubscribe").click()

    expect(page.get_by_test_id("email-disabled")).to_be_visible()
    assert nav.since(mark) == [("POST", link + "confirm/"), ("GET", link)]
    page.screenshot(path=str(tmp_path / "email-refused.png"), full_page=True)
    back_loads_by_get(page, nav, f"{live_server.url}/t/bluesea/", link)
