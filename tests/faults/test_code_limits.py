"""Issue 19 item 13: one-time-code limits are counted across the whole platform.

The per-number window and the prefix cap are shared by every tenant page and the hub
(before, each kept its own counter, so SMS pumping got the cap once per tenant plus
once for the hub), and IPv6 clients are counted by their /64. Through the real pages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from notifications.models import Message
from unsubscribe.optout import limits

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from celery import Celery
    from pytest_django import Settings

    from tenants.models import Tenant

    from .ledger import Ledger

EN: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}
HUB, HUB_CODE = reverse("optout-hub"), reverse("optout-hub-code")


@pytest.fixture(autouse=True)
def fresh_limits(settings: Settings, eager_celery: Celery, outbox: Path) -> Iterator[None]:
    settings.LANZUAN_PLATFORM_SMS_URL = ""
    settings.LANZUAN_PLATFORM_SMS_FILE = True
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1_900_000_000.0]
    monkeypatch.setattr(limits, "_now", lambda: now[0])
    return now


def tenant_sent(client: Client, tenant: Tenant, number: str) -> bool:
    start = reverse("unsubscribe-start", args=[tenant.slug])
    response = client.post(start, {"country": "86", "phone": number}, **EN)
    assert response.status_code == 302, response.status_code
    return response["Location"] == reverse("optout-code", args=[tenant.slug])


def hub_sent(client: Client, number: str) -> bool:
    response = client.post(HUB, {"phone": number}, **EN)
    assert response.status_code == 302, response.status_code
    return response["Location"] == HUB_CODE


def test_the_prefix_cap_is_shared_by_every_tenant_page_and_the_hub(
    settings: Settings, tenant_a: Tenant, tenant_b: Tenant, fault_ledger: Ledger
) -> None:
    settings.LANZUAN_OTP_PREFIX_DAILY_CAP = 3
    # given three codes to adjacent numbers, one on each tenant's page and one on the hub
    assert tenant_sent(Client(), tenant_a, "13800130001")
    assert tenant_sent(Client(), tenant_b, "13800130002")
    assert hub_sent(Client(), "13800130003")

    # then the prefix is spent everywhere, with the page's message
    fault_ledger.count(faults=4)  # the pumping asks below, each refused
    assert not tenant_sent(Client(), tenant_a, "13800130004")
    assert not tenant_sent(Client(), tenant_b, "13800130005")
    assert not hub_sent(Client(), "13800130006")
    browser = Client()
    browser.post(
        reverse("unsubscribe-start", args=[tenant_b.slug]), {"country": "86", "phone": "13800130007"}, **EN
    )
    refused = browser.get(reverse("unsubscribe-start", args=[tenant_b.slug]), **EN)
    assert refused.status_code == 429
    assert "We cannot send more codes right now" in refused.content.decode()
    assert (
        Message.objects.unscoped(reason="test").filter(event="otp").count() == 2
    )  # the hub's number is unknown
    # another prefix is unaffected
    assert tenant_sent(Client(), tenant_a, "13912345678")


def test_the_per_number_window_is_shared_by_every_tenant_page_and_the_hub(
    settings: Settings, tenant_a: Tenant, tenant_b: Tenant, clock: list[float], fault_ledger: Ledger
) -> None:
    # given the three codes a number may get in ten minutes, spread over two tenants and the hub
    assert tenant_sent(Client(), tenant_a, "13800138000")
    assert tenant_sent(Client(), tenant_b, "13800138000")
    assert hub_sent(Client(), "13800138000")
    clock[0] += 61  # past every resend cool-down

    # then no page sends that number a fourth
    fault_ledger.count(faults=2)  # the asks below, each refused
    assert not tenant_sent(Client(), tenant_a, "13800138000")
    assert not hub_sent(Client(), "13800138000")
    assert tenant_sent(Client(), tenant_a, "13912345678")
    clock[0] += 10 * 60
    assert tenant_sent(Client(), tenant_b, "13800138000")


def test_ipv6_clients_are_counted_by_their_64(settings: Settings, tenant_a: Tenant) -> None:
    settings.LANZUAN_OTP_IP_DAILY_CAP = 2
    # given two codes from two addresses in one /64
    assert tenant_sent(Client(REMOTE_ADDR="2001:db8:1:2::1"), tenant_a, "13800138000")
    assert tenant_sent(Client(REMOTE_ADDR="2001:db8:1:2:ffff::9"), tenant_a, "13912345678")

    # then a third address of that /64 is refused, on the hub too; another /64 is not
    assert not tenant_sent(Client(REMOTE_ADDR="2001:db8:1:2:abcd:1234:5678:9abc"), tenant_a, "15000001111")
    assert not hub_sent(Client(REMOTE_ADDR="2001:db8:1:2::77"), "15000002222")
    assert tenant_sent(Client(REMOTE_ADDR="2001:db8:1:3::1"), tenant_a, "15000001111")
    # IPv4 is still counted by address
    assert tenant_sent(Client(REMOTE_ADDR="10.0.0.1"), tenant_a, "18600001111")
    assert tenant_sent(Client(REMOTE_ADDR="10.0.0.2"), tenant_a, "18600002222")
