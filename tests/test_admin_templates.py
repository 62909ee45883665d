"""Message templates in the admin: confirmations refuse marketing (issue 11 item 7), the
add form shows the built-in text and the SMS length as staff type (item 18)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from notifications.catalogue import CONFIRMATION_EVENTS
from notifications.defaults import DEFAULT_TEXTS
from notifications.models import Template
from notifications.rendering import text_errors
from notifications.services import template_save

if TYPE_CHECKING:
    from typing import Any

    from django.contrib.auth.models import User
    from django.test import Client

    from tenants.models import Tenant

ADD = "admin:notifications_template_add"


def template_form(tenant: Tenant, **changes: Any) -> dict[str, object]:
    data = {
        "tenant": tenant.pk,
        "event": "unsubscribe_completed",
        "channel": "sms",
        "language": "zh-hans",
        "subject": "",
        "body": "【{tenant_name}】您已退订，参考号 {reference}，查询：{status_url}",
    }
    data.update(changes)
    return data


# --- item 7: no marketing in confirmations and clarifications -----------------------------

PROMOTIONAL = [
    ("zh-hans", "unsubscribe_completed", "【{tenant_name}】您已退订。新人专享优惠，点击领取"),
    ("zh-hans", "unsubscribe_completed", "【{tenant_name}】已退订，全场5折，参考号 {reference}"),
    ("zh-hans", "unsubscribe_received", "【{tenant_name}】已收到退订，送您10元券"),
    ("zh-hans", "clarify", "【{tenant_name}】回复TD确认退订，限时特价仅¥9.9"),
    ("zh-hans", "unsubscribe_completed", "【{tenant_name}】已退订 {reference}，更多好物见 shop.example.cn/a"),
    ("en", "unsubscribe_completed", "{tenant_name}: unsubscribed. Enjoy 20% off your next order!"),
    ("en", "unsubscribe_completed", "{tenant_name}: done, ref {reference}. Big SALE this week"),
    ("en", "clarify", "{tenant_name}: reply STOP to confirm. Get a free gift with code SAVE10"),
    ("en", "unsubscribe_received", "{tenant_name}: got it. Deals from $5 at {status_url}"),
    ("en", "unsubscribe_completed", "{tenant_name}: stopped. More at t.cn/A6xYz"),
    ("en", "unsubscribe_completed", "{tenant_name}: stopped. Use coupon WELCOME for a discount"),
]


@pytest.mark.parametrize(("language", "event", "body"), PROMOTIONAL)
def test_confirmation_with_marketing_is_refused_in_the_admin_form(
    client: Client, alice: User, tenant_a: Tenant, language: str, event: str, body: str
) -> None:
    client.force_login(alice)

    response = client.post(
        reverse(ADD),
        template_form(tenant_a, event=event, language=language, body=body),
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert response.status_code == 200
    errors = str(response.context["adminform"].form.errors["body"])
    assert "no marketing" in errors
    assert not Template.objects.unscoped(reason="test").exists()


def test_the_marketing_error_names_what_to_remove(client: Client, alice: User, tenant_a: Tenant) -> None:
    client.force_login(alice)
    body = "{tenant_name}: done. 50% off everything at www.shop.example today"
    response = client.post(
        reverse(ADD), template_form(tenant_a, language="en", body=body), HTTP_ACCEPT_LANGUAGE="en"
    )
    errors = str(response.context["adminform"].form.errors["body"])
    assert "www.shop.example" in errors and "50% off" in errors


def test_the_marketing_error_is_in_the_admins_language(client: Client, alice: User, tenant_a: Tenant) -> None:
    client.force_login(alice)
    response = client.post(
        reverse(ADD),
        template_form(tenant_a, body="【{tenant_name}】已退订，优惠券已到账"),
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert response.status_code == 200
    assert "优惠" in str(response.context["adminform"].form.errors["body"])


def test_a_clean_confirmation_is_saved_and_a_change_adding_marketing_is_refused(
    client: Client, alice: User, tenant_a: Tenant
) -> None:
    client.force_login(alice)
    # given a clean confirmation, with the status link as a variable
    response = client.post(reverse(ADD), template_form(tenant_a, language="en"), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302, response.context["adminform"].form.errors
    template = Template.objects.unscoped(reason="test").get()
    assert template.history.get().history_user == alice  # saved through the service, in history

    # when a change adds marketing
    response = client.post(
        reverse("admin:notifications_template_change", args=[template.pk]),
        template_form(tenant_a, language="en", body="{tenant_name}: unsubscribed. Shop our sale now!"),
        HTTP_ACCEPT_LANGUAGE="en",
    )

    # then it is refused and the old text kept
    assert response.status_code == 200
    assert "no marketing" in str(response.context["adminform"].form.errors["body"])
    template.refresh_from_db()
    assert "sale" not in template.body


def test_the_save_service_refuses_marketing_so_no_path_bypasses_it(tenant_a: Tenant) -> None:
    with pytest.raises(ValidationError) as raised:
        template_save(
            tenant=tenant_a,
            event="clarify",
            channel="sms",
            language="zh-hans",
            body="【{tenant_name}】回复TD确认，领取优惠券",
        )
    assert "body" in raised.value.message_dict
    # a shell or import writing the model directly is refused the same way
    with pytest.raises(ValidationError):
        Template.objects.create(
            tenant=tenant_a,
            event="unsubscribe_completed",
            language="en",
            body="{tenant_name}: done. Free shipping!",
        )
    assert not Template.objects.unscoped(reason="test").exists()
    # texts that are not an answer to an opt-out are not bound by the rule
    template_save(
        tenant=tenant_a,
        event="help",
        channel="sms",
        language="en",
        body="{tenant_name}: reply STOP to stop offers, or visit {unsubscribe_url}",
    )


@pytest.mark.parametrize(
    "key", sorted(k for k in DEFAULT_TEXTS if k[0] in CONFIRMATION_EVENTS), ids=lambda k: f"{k[0]}-{k[1]}"
)
def test_the_built_in_texts_pass_and_their_promotional_twins_do_not(key: tuple[str, str]) -> None:
    event, _language = key
    text = DEFAULT_TEXTS[key]
    assert text_errors(text.body, event) == []
    assert text_errors(text.subject, event) == []
    assert text_errors(text.body + " 限时优惠8折", event)
    assert text_errors(text.body + " 20% off with coupon", event)


@pytest.mark.parametrize(
    ("plain", "promotional"),
    [
        (
            "【{tenant_name}】您已退订营销信息，其他服务照常。参考号 {reference}，查询进度：{status_url}",
            "【{tenant_name}】您已退订营销信息，会员价专享。参考号 {reference}，查询进度：{status_url}",
        ),
        ("【{tenant_name}】回复TD免费退订", "【{tenant_name}】回复TD退订，免费领红包"),
        (
            "{tenant_name}: You are unsubscribed. Call our toll-free line with questions. Ref {reference}.",
            "{tenant_name}: You are unsubscribed. Call us for a free upgrade. Ref {reference}.",
        ),
    ],
)
def test_plain_confirmations_pass_where_promotional_ones_are_refused(plain: str, promotional: str) -> None:
    assert text_errors(plain, "unsubscribe_completed") == []
    assert text_errors(promotional, "unsubscribe_completed")


# --- item 18: built-in text and SMS length on the add form --------------------------------


def test_the_add_form_shows_and_prefills_the_built_in_text(
    client: Client, alice: User, tenant_a: Tenant
) -> None:
    client.force_login(alice)

    response = client.get(
        reverse(ADD), {"event": "unsubscribe_completed", "language": "en"}, HTTP_ACCEPT_LANGUAGE="en"
    )

    assert response.status_code == 200
    default = DEFAULT_TEXTS[("unsubscribe_completed", "en")]
    form = response.context["adminform"].form
    assert form.initial["body"] == default.body  # prefilled, ready to edit
    page = response.content.decode()
    assert 'id="lanzuan-template-built-in"' in page
    assert "Shown once the template is saved" not in page
    assert "Start from the built-in text" in page


def test_the_live_preview_returns_the_built_in_text_for_the_chosen_event(
    client: Client, alice: User, tenant_a: Tenant
) -> None:
    client.force_login(alice)
    response = client.post(
        reverse("admin:notifications_template_preview"),
        {"tenant": tenant_a.pk, "event": "clarify", "channel": "sms", "language": "zh-hans", "body": ""},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    payload = response.json()
    assert payload["built_in"]["body"] == DEFAULT_TEXTS[("clarify", "zh-hans")].body
    assert DEFAULT_TEXTS[("clarify", "zh-hans")].body in payload["built_in_html"]


def test_the_sms_length_is_counted_as_staff_type(client: Client, alice: User, tenant_a: Tenant) -> None:
    client.force_login(alice)
    url = reverse("admin:notifications_template_preview")

    chinese = client.post(
        url,
        {
            "tenant": tenant_a.pk,
            "event": "clarify",
            "channel": "sms",
            "language": "zh-hans",
            "body": "退" * 71,
        },
        HTTP_ACCEPT_LANGUAGE="en",
    ).json()
    latin = client.post(
        url,
        {"event": "clarify", "channel": "sms", "language": "en", "body": "x" * 160},
        HTTP_ACCEPT_LANGUAGE="en",
    ).json()
    # a text with an error (unknown variable) is still counted
    broken = client.post(
        url, {"event": "clarify", "channel": "sms", "language": "en", "body": "{nope} " + "y" * 10}
    ).json()

    assert chinese["length"] == {
        "characters": 71,
        "encoding": "UCS-2",
        "units": 71,
        "segments": 2,
        "single_limit": 70,
        "part_limit": 67,
    }
    assert "2 SMS segments" in chinese["length_html"]
    assert latin["length"]["encoding"] == "GSM-7" and latin["length"]["segments"] == 1
    assert broken["length"]["characters"] == 17


def test_the_form_shows_the_count_under_the_body_and_the_list_shows_segments(
    client: Client, alice: User, tenant_a: Tenant
) -> None:
    template = template_save(
        tenant=tenant_a,
        event="clarify",
        channel="sms",
        language="zh-hans",
        body="【{tenant_name}】" + "请" * 80,
    )
    client.force_login(alice)

    add = client.get(reverse(ADD), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    change = client.get(
        reverse("admin:notifications_template_change", args=[template.pk]), HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    listing = client.get(reverse("admin:notifications_template_changelist"), HTTP_ACCEPT_LANGUAGE="en")

    assert 'id="lanzuan-template-length"' in add
    assert 'id="lanzuan-template-length"' in change and "87 characters" in change
    assert "2 SMS segments" in listing.content.decode()
