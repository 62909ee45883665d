"""Filing a request in the admin offers only channels the tenant has switched on
(issue 11 item 18)."""

from __future__ import annotations

from django.urls import reverse

from unsubscribe.models import ChannelSetting, UnsubscribeRequest

ADD = "admin:unsubscribe_unsubscriberequest_add"


def channel_choices(response) -> list[str]:
    return [value for value, _label in response.context["form"].fields["channel"].choices]


def test_the_default_channel_is_one_that_is_switched_on(client, alice, tenant_a):
    # given the tenant has switched the hotline (the first filing channel) off
    ChannelSetting.objects.create(tenant=tenant_a, channel="hotline", enabled=False)
    client.force_login(alice)

    # when staff open the filing form
    response = client.get(reverse(ADD), HTTP_ACCEPT_LANGUAGE="en")

    # then the hotline is not offered and an enabled channel is chosen
    assert response.status_code == 200
    assert "hotline" not in channel_choices(response)
    assert response.context["form"]["channel"].value() == "app"
    assert 'value="hotline"' not in response.content.decode()


def test_a_switched_off_channel_posted_anyway_is_a_form_error(client, alice, tenant_a):
    ChannelSetting.objects.create(tenant=tenant_a, channel="hotline", enabled=False)
    client.force_login(alice)

    response = client.post(
        reverse(ADD),
        {"tenant": tenant_a.pk, "phone": "138 0013 8000", "channel": "hotline"},
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert response.status_code == 200
    assert response.context["form"].errors["channel"]
    assert not UnsubscribeRequest.objects.unscoped(reason="test").exists()


def test_another_tenants_switch_does_not_change_my_form(client, alice, charlie, tenant_a, tenant_b):
    ChannelSetting.objects.create(tenant=tenant_b, channel="hotline", enabled=False)
    client.force_login(alice)
    response = client.get(reverse(ADD))
    assert channel_choices(response) == ["hotline", "app", "partner", "email"]
    assert response.context["form"]["channel"].value() == "hotline"


def test_a_superuser_filing_for_a_tenant_with_the_channel_off_gets_a_form_error(
    client, root, tenant_a, tenant_b
):
    ChannelSetting.objects.create(tenant=tenant_a, channel="app", enabled=False)
    client.force_login(root)

    response = client.post(
        reverse(ADD),
        {"tenant": tenant_a.pk, "phone": "138 0013 8000", "channel": "app"},
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert response.status_code == 200
    assert "switched" in str(response.context["form"].errors["channel"])
    assert not UnsubscribeRequest.objects.unscoped(reason="test").exists()
