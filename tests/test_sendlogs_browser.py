"""The status page of a request with messages after its opt-out, in headless Chromium at phone size
(390×844), in zh-Hans and English: the count of messages the sender's send log shows after the
opt-out, and the "I still get messages" button that records the person's report. Screenshots under
settings.VAR_DIR / "screenshots"."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from django.db import transaction
from django.utils import timezone

from lanzuan import phones
from unsubscribe import links
from unsubscribe.models import StillReceivingReport
from unsubscribe.requests.services import unsubscribe_request_create
from unsubscribe.sendlogs.services import SendRecord, send_logs_ingest

from .test_optout_browser import E164, NUMBER, bluesea  # noqa: F401  (a fixture)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from playwright.sync_api import Page
    from pytest_django.live_server_helper import LiveServer

    from tenants.models import Tenant

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_limits"),
]


@pytest.mark.parametrize(
    ("locale", "count_text", "button", "thanks"),
    [
        ("zh-CN", "退订后仍收到 2 条消息，已通知服务商。", "我仍收到消息", "我们已记录您仍收到消息"),
        (
            "en-US",
            "2 messages after your opt-out; the provider has been told.",
            "I still get messages",
            "We have recorded",
        ),
    ],
)
def test_the_status_page_shows_the_violations_and_takes_the_report(
    live_server: LiveServer,
    open_page: Callable[[str], Page],  # noqa: F811
    bluesea: Tenant,  # noqa: F811
    shots: Path,  # noqa: F811
    locale: str,
    count_text: str,
    button: str,
    thanks: str,
) -> None:
    # given an opt-out an hour ago, and the sender's log of two messages since (and one before)
    with transaction.atomic():
        request = unsubscribe_request_create(
            tenant=bluesea,
            phone=NUMBER,
            channel="hotline",
            verification_method="agent_assertion",
            verification_evidence={"agent_id": "A007"},
        ).request
    opted_out = request.received_at
    digest = phones.tenant_phone_hash(bluesea.pk, E164)
    send_logs_ingest(
        tenant=bluesea,
        records=[
            SendRecord(
                phone_hash=digest, sent_at=opted_out + timedelta(minutes=m), service_code="data-offers"
            )
            for m in (-30, 10, 20)
        ],
    )
    assert timezone.now() > opted_out
    page = open_page(locale)

    # when the person opens the status link and reports
    page.goto(live_server.url + links.status_url(request, absolute=False))
    count = page.get_by_test_id("violation-count")
    count.wait_for()
    assert count_text in count.inner_text()
    page.screenshot(path=str(shots / f"sendlogs-status-{locale}.png"), full_page=True)
    page.get_by_role("button", name=button).click()

    # then the page thanks them, says it was reported, and the report is on the request
    page.wait_for_selector('[data-testid="still-receiving-reported"]')
    assert thanks in page.content()
    page.screenshot(path=str(shots / f"sendlogs-reported-{locale}.png"), full_page=True)
    report = StillReceivingReport.objects.for_tenant(bluesea).get()
    assert (report.request_id, report.channel) == (request.pk, "web")
    # the page fits a phone: nothing wider than the viewport
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
