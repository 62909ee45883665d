"""Issue 8: which ways to unsubscribe a tenant offers, and telling people about all of them."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from unsubscribe.models import Channel, ChannelSetting

pytestmark = pytest.mark.django_db

PEOPLE_CHANNELS = ["sms", "web", "app", "hotline", "email", "hub"]


@pytest.fixture
def configured(tenant_a):
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
def test_toggling_a_channel_changes_the_page_and_the_api(configured, api_key_a, client, channel):
    page_url = reverse("optout-tenant-home", args=[configured.slug])
    assert f'data-testid="way-{channel}"' in client.get(page_url).content.decode()
    listed = {row["channel"]: row for row in api(api_key_a).get("/api/v1/channels").json()}
    assert listed[channel]["enabled"] and listed[channel]["instruction"]

    ChannelSetting.objects.update_or_create(tenant=configured, channel=channel, defaults={"enabled": False})

    assert f'data-testid="way-{channel}"' not in client.get(page_url).content.decode()
    listed = {row["channel"]: row for row in api(api_key_a).get("/api/v1/channels").json()}
    assert not listed[channel]["enabled"] and listed[channel]["instruction"] == ""


def test_channels_api_speaks_the_persons_language(configured, api_key_a):
    zh = {r["channel"]: r for r in api(api_key_a).get("/api/v1/channels", {"language": "zh-hans"}).json()}
    en = {r["channel"]: r for r in api(api_key_a).get("/api/v1/channels", {"language": "en"}).json()}
    assert "10690001" in zh["sms"]["instruction"] and "回复" in zh["sms"]["instruction"]
    assert "Reply" in en["sms"]["instruction"] and "QX" in en["sms"]["keywords"]
    assert en["app"]["instruction"] == "Me → Settings → Notifications"
    assert "400-800-1234" in zh["hotline"]["instruction"] and zh["hotline"]["hotline_menu_key"] == "3"
    assert en["web"]["url"].endswith(f"/t/{configured.slug}/unsubscribe/")
    assert api(api_key_a).get("/api/v1/channels", {"language": "fr"}).status_code == 400


def test_channels_api_is_per_tenant(configured, tenant_b, api_key_b):
    ChannelSetting.objects.create(tenant=tenant_b, channel="sms", reply_numbers="10699999")
    rows = {r["channel"]: r for r in api(api_key_b).get("/api/v1/channels").json()}
    assert rows["sms"]["numbers"] == ["10699999"]
    assert {r["channel"] for r in rows.values()} == set(Channel.values)


def test_a_switched_off_api_channel_answers_403_naming_it(tenant_a, api_key_a):
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
