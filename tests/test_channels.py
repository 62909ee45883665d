"""Issue 8: which ways to unsubscribe a tenant offers, and telling people about all of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from unsubscribe.models import ChannelSetting, RequestChannel

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.test import Client

    from tenants.models import Tenant

pytestmark = pytest.mark.django_db

PEOPLE_CHANNELS = ["sms", "web", "app", "hotline", "email", "hub"]


@pytest.fixture
def configured(tenant_a: Tenant) -> Tenant:
    ChannelSetting.objects.create(
        tenant=tenant_a, channel="sms", reply_numbers="10690001", extra_keywords="QX"
    )
    ChannelSetting.objects.create(
        tenant=tenant_a,
        channel="app",
        app_path_zh="我的 → 设置 → 消息推送",
        app_path_en="Me → Settings → Notifications",
    )
    ChannelSetting.objects.create(
        tenant=tenant_a,
        channel="hotline",
        hotline_number="400-800-1234",
        hotline_hours="9:00–21:00",
        hotline_menu_key="3",
    )
    return tenant_a


def api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.mark.parametrize("channel", PEOPLE_CHANNELS)
def test_toggling_a_channel_changes_the_page_and_the_api(
    configured: Tenant, api_key_a: str, client: Client, channel: str
) -> None:
    page_url = reverse("optout-tenant-home", args=[configured.slug])
    assert f'data-testid="way-{channel}"' in client.get(page_url).content.decode()
    listed = {row["channel"]: row for row in api(api_key_a).get("/api/v1/channels").json()}
    assert listed[channel]["enabled"] and listed[channel]["instruction"]

    ChannelSetting.objects.unscoped(reason="test").update_or_create(
        tenant=configured, channel=channel, defaults={"enabled": False}
    )

    assert f'data-testid="way-{channel}"' not in client.get(page_url).content.decode()
    listed = {row["channel"]: row for row in api(api_key_a).get("/api/v1/channels").json()}
    assert not listed[channel]["enabled"] and listed[channel]["instruction"] == ""


def test_channels_api_speaks_the_persons_language(configured: Tenant, api_key_a: str) -> None:
    zh = {r["channel"]: r for r in api(api_key_a).get("/api/v1/channels", {"language": "zh-hans"}).json()}
    en = {r["channel"]: r for r in api(api_key_a).get("/api/v1/channels", {"language": "en"}).json()}
    assert "10690001" in zh["sms"]["instruction"] and "回复" in zh["sms"]["instruction"]
    assert "Reply" in en["sms"]["instruction"] and "QX" in en["sms"]["keywords"]
    assert en["app"]["instruction"] == "Me → Settings → Notifications"
    assert "400-800-1234" in zh["hotline"]["instruction"] and zh["hotline"]["hotline_menu_key"] == "3"
    assert en["web"]["url"].endswith(f"/t/{configured.slug}/unsubscribe/")
    assert api(api_key_a).get("/api/v1/channels", {"language": "fr"}).status_code == 400


def test_channels_api_is_per_tenant(configured: Tenant, tenant_b: Tenant, api_key_b: str) -> None:
    ChannelSetting.objects.create(tenant=tenant_b, channel="sms", reply_numbers="10699999")
    rows = {r["channel"]: r for r in api(api_key_b).get("/api/v1/channels").json()}
    assert rows["sms"]["numbers"] == ["10699999"]
    assert {r["channel"] for r in rows.values()} == set(RequestChannel.values)


def test_a_switched_off_api_channel_answers_403_naming_it(tenant_a: Tenant, api_key_a: str) -> None:
    ChannelSetting.objects.create(tenant=tenant_a, channel="hotline", enabled=False)
    response = api(api_key_a).post(
        "/api/v1/unsubscribe-requests",
        {
            "phone": "13800138000",
            "channel": "hotline",
            "verification": {"method": "agent_assertion", "agent_id": "A1"},
        },
        format="json",
    )
    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/problem+json")
    assert "Hotline" in response.json()["detail"] or "热线" in response.json()["detail"]


# --- each channel's own entry point, switched on and off ------------------------------


def _sms(client: Client, tenant: Tenant, api_key: str) -> bool:
    import json
    import time as _time

    from lanzuan.signing import signed_headers
    from unsubscribe.inbound.models import InboundMessage
    from unsubscribe.inbound.services import inbound_credential_set

    inbound_credential_set(tenant=tenant, provider="generic", secret="generic-secret-for-channel-tests")
    body = json.dumps(
        {
            "from": "+8613800138000",
            "to": "10690001",
            "text": "TD",
            "message_id": f"m-{_time.monotonic_ns()}",
            "timestamp": int(_time.time()),
        }
    ).encode()
    headers: dict[str, Any] = {
        f"HTTP_{k.upper().replace('-', '_')}": v
        for k, v in signed_headers("generic-secret-for-channel-tests", body).items()
    }
    response = client.post(
        f"/hooks/sms/{tenant.slug}/generic/", body, content_type="application/json", **headers
    )
    assert response.status_code == 200  # the gateway is always answered: nothing is lost
    message = InboundMessage.objects.unscoped(reason="test").latest("pk")
    return message.request is not None and not message.flagged_for_attention


def _web(client: Client, tenant: Tenant, api_key: str) -> bool:
    page = client.get(reverse("unsubscribe-start", args=[tenant.slug])).content.decode()
    return 'type="tel"' in page


def _api(channel: str) -> Callable[[Client, Tenant, str], bool]:
    def call(client: Client, tenant: Tenant, api_key: str) -> bool:
        body: dict[str, Any] = {"phone": "13800138000", "channel": channel}
        if channel == "hotline":
            body["verification"] = {"method": "agent_assertion", "agent_id": "A1"}
        response = api(api_key).post("/api/v1/unsubscribe-requests", body, format="json")
        if response.status_code == 403:
            assert response.json()["code"] == "channel_disabled"
            return False
        assert response.status_code in (200, 201), response.content
        return True

    return call


def _email(client: Client, tenant: Tenant, api_key: str) -> bool:
    from lanzuan.phones import mask, tenant_phone_hash
    from unsubscribe.links import email_unsubscribe_path
    from unsubscribe.models import Service, Subscription

    service = Service.objects.unscoped(reason="test").get_or_create(
        tenant=tenant, code="news", defaults={"name": "News"}
    )[0]
    subscription = Subscription.objects.unscoped(reason="test").get_or_create(
        tenant=tenant,
        service=service,
        phone_hash=tenant_phone_hash(tenant.pk, "+8613800138000"),
        defaults={"phone": "+8613800138000", "phone_masked": mask("+8613800138000")},
    )[0]
    response = client.post(email_unsubscribe_path(subscription), {"List-Unsubscribe": "One-Click"})
    return response.status_code == 200


ENTRY_POINTS = {
    "sms": _sms,
    "web": _web,
    "app": _api("app"),
    "hotline": _api("hotline"),
    "partner": _api("partner"),
    "email": _email,
}


@pytest.mark.parametrize("channel", list(ENTRY_POINTS))
def test_each_channels_entry_point_follows_its_switch(
    channel: str, tenant_a: Tenant, api_key_a: str, client: Client
) -> None:
    from unsubscribe.models import UnsubscribeRequest

    use = ENTRY_POINTS[channel]
    ChannelSetting.objects.create(tenant=tenant_a, channel=channel, enabled=False)
    assert use(client, tenant_a, api_key_a) is False
    assert not UnsubscribeRequest.objects.unscoped(reason="test").filter(channel=channel).exists()

    # saved as the admin saves it (a web process remembers settings until a save says otherwise)
    setting = ChannelSetting.objects.unscoped(reason="test").get(tenant=tenant_a, channel=channel)
    setting.enabled = True
    setting.save()
    assert use(client, tenant_a, api_key_a) is True
    if channel != "web":  # the page only files after a one-time code (tests/test_optout.py)
        assert UnsubscribeRequest.objects.unscoped(reason="test").filter(channel=channel).exists()
