"""The Chinese admin reads in Chinese: every page an administrator can open, walked in
zh-Hans, shows no English word outside a short allow-list (brand names, codes shown as
codes, the demo data's own English names).

The walk covers the index, and for every registered model its list, add form, one
object's change form and its history, with data from the demo loader and a request
that went through the pipeline.
"""

from __future__ import annotations

import contextlib
import re
from html.parser import HTMLParser
from typing import TYPE_CHECKING

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.core.management import call_command
from django.urls import NoReverseMatch, reverse

from tenants.models import Tenant
from unsubscribe.models import RequestChannel, VerificationMethod
from unsubscribe.requests.services import unsubscribe_request_create

if TYPE_CHECKING:
    from pathlib import Path

    from celery import Celery
    from django.test import Client
    from pytest_django import Settings

# Words that are names or codes, not sentences: shown as they are in any language.
ALLOWED = {
    # brands, products and protocols
    "lanzuan",
    "bluesea",
    "mobile",
    "youxuan",
    "shop",
    "blue",
    "diamond",
    "club",
    "data",
    "offers",
    "member",
    "promotions",
    "personalised",
    "picks",
    "twilio",
    "aliyun",
    "smtp",
    "http",
    "https",
    "json",
    "csv",
    "api",
    "key",  # "API key" is how the header is spelt: Authorization: Api-Key
    "url",
    "utc",  # a time's offset on the tenant's clock: UTC+08:00, as written in Chinese too
    "sms",
    "sla",
    "otp",
    "ivr",
    "utf",
    "iso",
    "hmac",
    "sha",
    "webhook",
    "webhooks",
    "django",
    "celery",
    "admin",  # the superuser's username
    "root",
    "example",
    "com",
    "www",
    "demo",
    "stop",
    "unsub",
    "unsubscribe",
    "help",
    "start",
    "info",
    "idempotency",
    "sha256",
    "pbkdf",  # the password hash's algorithm, pbkdf2_sha256, shown by Django's user page
    "ldap",  # a protocol, in Django's own zh-Hans help ("单一登入或LDAP")
    "control",  # key names in Django's zh-Hans help: 按住 Control 键或 Mac 上的 Command 键
    "command",
    "mac",
    "app",  # written so in Chinese (App 推送, App 路径): the channel's own name
    "gsm",  # SMS encodings, GSM-7 and UCS-2
    "ucs",
    "post",  # the HTTP method
    "smtps",
    "auth",  # "Auth Token", "AccessKey ID": the names in Twilio's and Aliyun's consoles
    "token",
    "accesskey",
    "sid",
    "twiml",  # Twilio's voice markup; its voices are named alice, Polly.Zhiyu, Polly.Joanna
    "polly",
    "zhiyu",
    "joanna",
    "alice",
    # laws, regulators and standards cited by the deadline rules (unsubscribe/deadlines/regimes.py)
    "fcc",
    "tcpa",
    "cfr",
    "rfc",
    "gmail",
    "yahoo",
    # the built-in deadline rules' codes, which a tenant types to replace one (DeadlineRegime)
    "termination",
    "erasure",
    "revocation",
    "confirmation",
    "mailbox",
    # the demo data's own English names (targets and the subscriptions' consent source)
    "subscriber",
    "profile",
    "subscriptions",
    "signup",
}

_WORD = re.compile(r"[A-Za-z][A-Za-z'’]{2,}")


class _VisibleText(HTMLParser):
    """Text a person reads: element text and the labels of buttons, placeholders and
    titles; not scripts, styles, hidden inputs or the values staff typed."""

    SKIP = {"script", "style", "code", "pre", "textarea", "select", "option"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skip += 1
        values = dict(attrs)
        for attr in ("placeholder", "title", "aria-label"):
            if values.get(attr):
                self.parts.append(values[attr] or "")
        if tag == "input" and values.get("type") in ("submit", "button"):
            self.parts.append(values.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def english_words(html: str) -> set[str]:
    parser = _VisibleText()
    parser.feed(html)
    text = " ".join(parser.parts)
    text = re.sub(r"\S+@\S+|[a-z+]+://\S+|/\S+/", " ", text)  # addresses and paths are not prose
    # Codes shown as codes: request references (K7M2-9QXP, random in the demo data), masked
    # values (a password hash's salt: RYhnZd****), dotted event codes (request.created),
    # template variables ({tenant_name}).
    text = re.sub(r"\b[A-Z0-9]{4}-[A-Z0-9]{4}\b|\S*\*{3,}\S*|\b[a-z_]+(?:\.[a-z_]+)+\b|\{\w+\}", " ", text)
    # SHA-256 digests (a consent wording's, issue 16) are codes too.
    text = re.sub(r"\b[0-9a-f]{64}\b", " ", text)
    return {w for w in _WORD.findall(text) if w.lower().strip("'’") not in ALLOWED}


def admin_urls() -> list[str]:
    urls = [reverse("admin:index"), reverse("admin:unsubscribe_case")]  # with the custom pages
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(reverse("admin:{}_{}_changelist".format(*info)))
        with contextlib.suppress(NoReverseMatch):
            urls.append(reverse("admin:{}_{}_add".format(*info)))
        obj = model._base_manager.all().order_by("-pk").first()
        if obj is not None:
            urls.append(reverse("admin:{}_{}_change".format(*info), args=[quote(obj.pk)]))
            urls.append(reverse("admin:{}_{}_history".format(*info), args=[quote(obj.pk)]))
    return urls


@pytest.fixture
def demo_data(db: None, eager_celery: Celery, outbox: Path, settings: Settings) -> None:
    call_command("seed_demo", verbosity=0)
    tenant = Tenant.objects.get(slug="demo-mobile")
    unsubscribe_request_create(
        tenant=tenant,
        phone="13800138000",
        channel=RequestChannel.WEB,
        verification_method=VerificationMethod.OTP,
        services=["data-offers"],
    )


def test_every_admin_page_reads_in_chinese(client: Client, demo_data: None, settings: Settings) -> None:
    settings.LANGUAGE_CODE = "zh-hans"
    client.login(username="admin", password="lanzuan-demo")
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    found: dict[str, set[str]] = {}
    for url in admin_urls():
        response = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
        if response.status_code == 403 and url.endswith("/add/"):
            continue  # records only the system writes (messages sent, calls) have no add form
        assert response.status_code == 200, (url, response.status_code)
        words = english_words(response.content.decode())
        if words:
            found[url] = words
    report = "\n".join(f"{url}: {' '.join(sorted(words))}" for url, words in sorted(found.items()))
    assert not found, f"English on zh-Hans admin pages:\n{report}"


def test_the_walk_sees_english_when_there_is_some() -> None:
    # The detector itself: prose is caught, names and codes are not.
    assert english_words("<p>Needs attention</p>") == {"Needs", "attention"}
    assert english_words("<p>蓝海移动 BlueSea Mobile · TD · API key</p>") == set()
    assert english_words("<script>var needsAttention = 1</script><p>需要处理</p>") == set()


def test_tenant_admin_sees_chinese_too(client: Client, demo_data: None, settings: Settings) -> None:
    client.login(username="mobile-admin", password="lanzuan-demo")
    response = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200
    assert not english_words(response.content.decode())


def _run_pipeline(request_pk: int) -> None:
    """What workers do, in-process: advance, run the due steps, repeat."""
    from unsubscribe.models import Step
    from unsubscribe.pipeline.services import request_advance, step_run

    for _ in range(10):
        request_advance(request_pk)
        due = Step.objects.unscoped(reason="test").filter(
            request_id=request_pk, status__in=["pending", "retrying"]
        )
        if not due:
            break
        for step in due:
            step_run(step.pk)


def test_tenant_admin_walk_reads_in_chinese(client: Client, demo_data: None) -> None:
    # A tenant's owner sees only some pages; every one of them reads in Chinese too.
    client.login(username="mobile-admin", password="lanzuan-demo")
    found: dict[str, set[str]] = {}
    for url in admin_urls():
        response = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
        if response.status_code in (302, 403, 404):
            continue  # not this tenant's page, or another tenant's object
        assert response.status_code == 200, (url, response.status_code)
        words = english_words(response.content.decode())
        if words:
            found[url] = words
    report = "\n".join(f"{url}: {' '.join(sorted(words))}" for url, words in sorted(found.items()))
    assert not found, f"English on zh-Hans admin pages:\n{report}"


def test_receipts_and_scopes_read_in_the_staff_language(client: Client, demo_data: None) -> None:
    # given a request that went through the pipeline (its receipt stored as language-free
    # lines, rendered in each reader's language)
    from unsubscribe.models import Step, Suppression, UnsubscribeRequest

    request = UnsubscribeRequest.objects.unscoped(reason="test").order_by("-pk").first()
    assert request is not None
    _run_pipeline(request.pk)
    step = (
        Step.objects.unscoped(reason="test")
        .filter(request=request, kind=Step.Kind.TERMINATE, source="subscriptions")
        .first()
    )
    assert step is not None and step.receipt_lines == [["subscriptions_ended", 1]]
    client.login(username="admin", password="lanzuan-demo")
    # when staff read it in Chinese and in English
    zh = client.get(
        reverse("admin:unsubscribe_unsubscriberequest_change", args=[request.pk]),
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    ).content.decode()
    en = client.get(
        reverse("admin:unsubscribe_unsubscriberequest_change", args=[request.pk]), HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    # then each reads it in words of their language; the record itself is unchanged
    assert "已终止 1 项订阅。" in zh and "Ended 1 subscription." in en
    assert "Ended 1 subscription" not in zh and "已终止" not in en
    assert "subscription(s)" not in zh and "subscription(s)" not in en
    assert Step.objects.unscoped(reason="test").get(pk=step.pk).receipt == step.receipt
    # and an all-marketing scope is named, not shown as "*"
    suppression = Suppression.objects.unscoped(reason="test").first()
    assert suppression is not None
    Suppression.objects.unscoped(reason="test").filter(pk=suppression.pk).update(scope="*")
    page = client.get(
        reverse("admin:unsubscribe_suppression_changelist"), HTTP_ACCEPT_LANGUAGE="zh-hans"
    ).content.decode()
    assert "全部营销" in page and "[*]" not in page and ">*<" not in page


def test_receipt_display_knows_the_pipeline_sentences() -> None:
    from django.utils import translation

    from unsubscribe.receipts import receipt_display

    with translation.override("zh-hans"):
        assert receipt_display("could not connect: ConnectionError") == "无法连接（连接被拒绝或重置）"
        assert (
            receipt_display("End services · CRM: timed out after 10 s") == "End services · CRM: 10 秒内无响应"
        )
        assert receipt_display("something new") == "something new"  # unknown wording: as stored
    with translation.override("en"):
        assert receipt_display("ended 1 subscription(s)") == "ended 1 subscription"


def test_history_shows_labels_choice_names_and_the_tenants_local_time(
    client: Client, db: None, eager_celery: Celery, outbox: Path
) -> None:
    import datetime as dt

    import time_machine

    from tenants.models import Tenant

    call_command("seed_demo", verbosity=0)
    tenant = Tenant.objects.get(slug="demo-mobile")
    tenant.time_zone = "America/New_York"
    tenant.save()
    # given a request filed at 12:00 UTC (07:00 in New York, 20:00 in Shanghai)
    with time_machine.travel(dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC), tick=False):
        request = unsubscribe_request_create(
            tenant=tenant,
            phone="13800138000",
            channel=RequestChannel.WEB,
            verification_method=VerificationMethod.OTP,
            services=["data-offers"],
        ).request
        _run_pipeline(request.pk)
    client.login(username="admin", password="lanzuan-demo")
    # when staff open its history in Chinese
    page = client.get(
        reverse("admin:unsubscribe_unsubscriberequest_history", args=[request.pk]),
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    ).content.decode()
    # then times are the tenant's, without microseconds or offsets, and states are named
    assert re.search(r"3月1日 0?7:00", page) and "20:00" not in page and "12:00" not in page
    assert ".123456" not in page and "+00:00" not in page
    assert "received</" not in page and "completed</" not in page
    assert "已完成" in page or "处理中" in page
