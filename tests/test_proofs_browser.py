"""The proof pack's index.html and /verify/ in headless Chromium (issue 15).

The proof pack of a completed request opens from the ZIP as a local file and shows every step
(its screenshot, docs/proof-pack.png, is refreshed with LANZUAN_SCREENSHOT_DIR=docs); /verify/ works at phone size in Chinese and English.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from tenants.models import Tenant
from unsubscribe import links
from unsubscribe.proofs import signed_receipt as receipts
from unsubscribe.proofs.services import proof_pack_export

from .test_proofs import completed_request

if TYPE_CHECKING:
    from collections.abc import Callable

    from celery import Celery
    from playwright.sync_api import Browser, FilePayload, Page
    from pytest_django import Settings
    from pytest_django.live_server_helper import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("fresh_limits")]

# A test writes only under its own tmp_path; `LANZUAN_SCREENSHOT_DIR=docs make test …` refreshes
# docs/proof-pack.png on purpose.
SCREENSHOT_DIR = os.environ.get("LANZUAN_SCREENSHOT_DIR", "")


@pytest.fixture
def demo_tenant(db: None) -> Tenant:
    return Tenant.objects.create(slug="bluesea", name="蓝海移动 BlueSea Mobile", erasure_delay_hours=0)


@pytest.mark.django_db(transaction=True)
def test_the_proof_pack_opens_in_chromium_and_shows_every_step(
    browser: Browser, demo_tenant: Tenant, eager_celery: Celery, outbox: Path, tmp_path: Path
) -> None:
    # given the proof pack of a completed request, unpacked
    request = completed_request(demo_tenant, None)
    with zipfile.ZipFile(
        io.BytesIO(proof_pack_export(request=request, actor="user:regulator-test", via="admin").content)
    ) as archive:
        archive.extractall(tmp_path)
    steps = json.loads((tmp_path / "proof.json").read_text())["sections"]["steps"]

    # when a regulator opens index.html
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="zh-CN")
    try:
        page = context.new_page()
        page.goto((tmp_path / "index.html").as_uri())

        # then every step is there, with its time and receipt, and every section
        expect(page.get_by_test_id("proof-title")).to_contain_text(request.reference)
        rows = page.get_by_test_id("steps").locator("tbody tr")
        expect(rows).to_have_count(len(steps))
        for index in range(len(steps)):
            expect(rows.nth(index)).to_contain_text("20")  # a finished time
        for section in (
            "request",
            "verification",
            "texts_received",
            "messages_sent",
            "consents",
            "deadlines",
        ):
            expect(page.get_by_test_id(f"section-{section}")).to_be_visible()
        expect(page.get_by_test_id("section-signed_receipt")).to_contain_text(request.reference)
        expect(page.get_by_test_id("chain").locator("tbody tr").last).to_contain_text("export.proof_pack")
        assert "13800138000" not in page.content()
        page.screenshot(path=str(Path(SCREENSHOT_DIR or tmp_path) / "proof-pack.png"), full_page=True)
    finally:
        context.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("locale", "check", "genuine", "not_genuine"),
    [
        ("zh-CN", "核验", "真实", "签名之后被改动过"),
        ("en-US", "Check", "Genuine", "changed after it was signed"),
    ],
)
def test_verify_at_phone_size(
    live_server: LiveServer,
    open_page: Callable[[str], Page],
    demo_tenant: Tenant,
    eager_celery: Celery,
    outbox: Path,
    settings: Settings,
    locale: str,
    check: str,
    genuine: str,
    not_genuine: str,
) -> None:
    # given a person's receipt, as copied from the status page, and an altered copy
    receipt = receipts.signed_receipt(completed_request(demo_tenant, None))
    altered = {**receipt, "number": "139****0000"}
    page = open_page(locale)
    folder = Path(settings.VAR_DIR) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    # when the genuine one is pasted
    page.goto(f"{live_server.url}/verify/")
    page.locator("#id_receipt").fill(receipts.compact(receipt))
    page.get_by_role("button", name=check, exact=True).click()

    # then the page says so and what it says, without sideways scrolling on a phone
    expect(page.get_by_test_id("verify-genuine")).to_contain_text(genuine)
    expect(page.get_by_test_id("verify-reference")).to_have_text(receipt["reference"])
    expect(page.get_by_test_id("verify-number")).to_have_text("138****8000")
    expect(page.get_by_test_id("verify-step")).to_have_count(len(receipt["steps"]))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(folder / f"verify-{locale}-genuine.png"), full_page=True)

    # when an altered one is uploaded as a file
    page.goto(f"{live_server.url}/verify/")
    upload: FilePayload = {
        "name": "receipt.json",
        "mimeType": "application/json",
        "buffer": receipts.receipt_file(altered),
    }
    page.locator("#id_file").set_input_files(files=[upload])
    page.get_by_role("button", name=check, exact=True).click()

    # then it is refused, in the page's language
    expect(page.get_by_test_id("verify-error")).to_contain_text(not_genuine)
    assert page.get_by_test_id("verify-genuine").count() == 0
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(folder / f"verify-{locale}-altered.png"), full_page=True)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("locale", "download", "copy"),
    [("zh-CN", "下载签名回执", "复制文本"), ("en-US", "Download signed receipt", "Copy the text")],
)
def test_the_status_page_hands_out_the_signed_receipt_at_phone_size(
    live_server: LiveServer,
    open_page: Callable[[str], Page],
    demo_tenant: Tenant,
    eager_celery: Celery,
    outbox: Path,
    settings: Settings,
    locale: str,
    download: str,
    copy: str,
) -> None:
    # given the status link of the confirmation SMS
    request = completed_request(demo_tenant, None)
    page = open_page(locale)
    page.goto(live_server.url + links.status_url(request, absolute=False))

    # then the signed receipt is offered as a file and as text, without sideways scrolling
    expect(page.get_by_test_id("signed-receipt")).to_be_visible()
    expect(page.get_by_role("button", name=copy)).to_be_visible()
    assert page.get_by_test_id("receipt-compact").input_value().startswith("LZR1.")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    folder = Path(settings.VAR_DIR) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"status-receipt-{locale}.png"), full_page=True)

    # when the person downloads it, it is the receipt of their request, genuine
    with page.expect_download() as waiting:
        page.get_by_role("link", name=download).click()
    saved = waiting.value.path()
    assert (
        receipts.receipt_check(Path(saved).read_text(encoding="utf-8")).document["reference"]
        == request.reference
    )
    assert receipts.receipt_check(Path(saved).read_text(encoding="utf-8")).genuine
