"""Personalised suggestions and the alternatives beside the opt-out (issue 17): the hub after one
code (providers from subscriptions and send logs, every past request), a suggestion's one-tap
stop, pauses that lift themselves, preferences sent to the tenant, and the choices counted per
tenant and day with the admin's chart."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import time_machine
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lanzuan import phones
from tenants.models import Tenant
from unsubscribe.models import (
    Service,
    Subscription,
    Suppression,
    SuppressionEvent,
    UnsubscribeRequest,
)
from unsubscribe.optout.models import Alternative, ChoiceDay, MarketingPreference, PhoneVerification
from unsubscribe.optout.tasks import verifications_sweep
from unsubscribe.partner.models import WebhookDelivery
from unsubscribe.partner.webhooks import webhook_endpoint_create
from unsubscribe.sendlogs.services import SendRecord, send_logs_ingest
from unsubscribe.suppressions.selectors import suppression_status
from unsubscribe.tasks import pipeline_sweep

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from celery import Celery
    from django.contrib.auth.models import User
    from pytest_django import Settings

    from tests.pipeline_helpers import Pipeline

NUMBER = "13800138000"
E164 = "+8613800138000"
EN: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}
ZH: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}


@pytest.fixture(autouse=True)
def fresh_limits() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def hub_settings(settings: Settings, eager_celery: Celery) -> None:
    settings.LANZUAN_PLATFORM_SMS_URL = ""
    settings.LANZUAN_FILE_GATEWAY = True


def last_code(outbox: Path, to: str = E164) -> str:
    lines = [json.loads(line) for line in outbox.read_text().splitlines()] if outbox.exists() else []
    bodies = [line["body"] for line in lines if line["to"] == to]
    assert bodies, f"no message to {to}"
    match = re.search(r"\b(\d{6})\b", bodies[-1])
    assert match is not None
    return match.group(1)


def service(tenant: Tenant, code: str, name: str | None = None) -> Service:
    found, _ = Service.objects.unscoped(reason="test").get_or_create(
        tenant=tenant, code=code, defaults={"name": name or code.title()}
    )
    return found


def subscribe(tenant: Tenant, code: str) -> Subscription:
    return Subscription.objects.create(
        tenant=tenant,
        service=service(tenant, code),
        phone=E164,
        phone_hash=phones.tenant_phone_hash(tenant.pk, E164),
        phone_masked=phones.mask(E164),
    )


def sent(tenant: Tenant, code: str, count: int, *, engaged: bool = False, days_ago: int = 1) -> None:
    """`count` messages of service `code` the tenant reports it sent to the number."""
    digest = phones.tenant_phone_hash(tenant.pk, E164)
    start = timezone.now() - timedelta(days=days_ago)
    send_logs_ingest(
        tenant=tenant,
        records=[
            SendRecord(
                phone_hash=digest,
                sent_at=start + timedelta(minutes=i),
                service_code=code,
                engaged_at=start + timedelta(minutes=i, seconds=30) if engaged else None,
            )
            for i in range(count)
        ],
    )


def hub_page(client: Client, outbox: Path, headers: dict[str, Any] = EN) -> str:
    assert client.post(reverse("optout-hub"), {"phone": NUMBER}, **headers)["Location"] == reverse(
        "optout-hub-code"
    )
    response = client.post(reverse("optout-hub-code"), {"code": last_code(outbox)}, **headers)
    assert response["Location"] == reverse("optout-hub-choose")
    return client.get(reverse("optout-hub-choose"), **headers).content.decode()


def tenant_page(client: Client, tenant: Tenant, outbox: Path) -> str:
    client.post(reverse("unsubscribe-start", args=[tenant.slug]), {"phone": NUMBER}, **EN)
    from notifications.models import Message
    from notifications.services import message_deliver

    for message in Message.objects.unscoped(reason="test").filter(event="otp", status=Message.Status.QUEUED):
        message_deliver(message.pk)
    response = client.post(reverse("optout-code", args=[tenant.slug]), {"code": last_code(outbox)}, **EN)
    assert response["Location"] == reverse("optout-choose", args=[tenant.slug])
    return client.get(response["Location"], **EN).content.decode()


def tap(client: Client, url: str, data: dict[str, Any]) -> tuple[str, str]:
    response = client.post(url, data, **EN)
    assert response.status_code == 302, response.status_code
    return response["Location"], client.get(response["Location"], **EN).content.decode()


def page_ids(page: str, prefix: str) -> list[str]:
    return re.findall(rf'data-testid="({re.escape(prefix)}[^"]*)"', page)


# --- the hub after one code ---------------------------------------------------------------------


def test_hub_lists_every_provider_with_its_services_and_every_past_request(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, outbox: Path
) -> None:
    # given A holds a subscription, B only reported sends (no subscription on record)
    subscribe(tenant_a, "offers")
    service(tenant_b, "picks", "Daily picks")
    sent(tenant_b, "picks", 5)
    # and three earlier requests for the number at the two tenants
    from unsubscribe.requests.services import unsubscribe_request_create

    earlier = [
        unsubscribe_request_create(
            tenant=t, phone=E164, channel="app", verification_method="partner_assertion", services=s
        ).request.reference
        for t, s in ((tenant_a, ["offers"]), (tenant_b, ["picks"]), (tenant_b, None))
    ]
    Suppression.objects.unscoped(reason="test").delete()  # both open again, for the page's lists

    # when the person verifies once
    page = hub_page(client, outbox)

    # then both providers are listed with their services, and all three requests, with links
    assert (
        f'data-testid="hub-card-{tenant_a.slug}"' in page
        and f'data-testid="hub-card-{tenant_b.slug}"' in page
    )
    assert f'data-testid="{tenant_b.slug}-suggestion-picks"' in page
    assert "5 messages in the last 30 days" in page
    assert "You never answered or opened one." in page
    for reference in earlier:
        assert f'data-testid="hub-request-{reference}"' in page
    assert page.count('data-testid="hub-request-status"') == 3
    assert page.count(f"/t/{tenant_b.slug}/status/?token=") == 2


def test_suggestions_rank_never_engaged_first_then_most_messages(
    client: Client, tenant_a: Tenant, outbox: Path
) -> None:
    for code in ("news", "offers", "club"):
        subscribe(tenant_a, code)
    sent(tenant_a, "news", 9, engaged=True)
    sent(tenant_a, "offers", 3)
    sent(tenant_a, "club", 6)
    sent(tenant_a, "club", 4, days_ago=45)  # older than 30 days: not counted

    page = hub_page(client, outbox)

    ranked = page_ids(page, f"{tenant_a.slug}-suggestion-")
    assert ranked == [f"{tenant_a.slug}-suggestion-{c}" for c in ("club", "offers", "news")]
    assert "6 messages in the last 30 days" in page and "10 messages" not in page


def test_a_suggestions_one_tap_stop_files_a_request_and_the_hub_goes_on(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, outbox: Path
) -> None:
    subscribe(tenant_a, "offers")
    subscribe(tenant_a, "club")
    subscribe(tenant_b, "picks")
    hub_page(client, outbox)

    url, page = tap(
        client,
        reverse("optout-hub-choose"),
        {"action": "stop_service", "tenant": str(tenant_a.pk), "service": "offers"},
    )

    filed = UnsubscribeRequest.objects.for_tenant(tenant_a).get()
    assert (filed.channel, filed.verification_method, filed.scope_all) == ("hub", "otp", False)
    assert [s.code for s in filed.services.all()] == ["offers"]
    assert url == reverse("optout-hub-choose") and filed.reference in page
    assert suppression_status(tenant=tenant_a, phone=E164, service_code="offers").suppressed
    assert not suppression_status(tenant=tenant_a, phone=E164, service_code="club").suppressed
    # then one provider, then everything left, each one tap
    tap(client, reverse("optout-hub-choose"), {"action": "stop_provider", "tenant": str(tenant_a.pk)})
    assert suppression_status(tenant=tenant_a, phone=E164).suppressed
    url, page = tap(client, reverse("optout-hub-choose"), {"action": "stop_all"})
    assert url == reverse("optout-hub-receipt")
    assert suppression_status(tenant=tenant_b, phone=E164).suppressed
    assert ChoiceDay.objects.for_tenant(tenant_a).get(choice="stop").count == 2


def test_hub_one_tap_for_a_provider_not_in_the_list_is_refused(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, outbox: Path
) -> None:
    subscribe(tenant_a, "offers")
    hub_page(client, outbox)
    _url, page = tap(
        client, reverse("optout-hub-choose"), {"action": "stop_provider", "tenant": str(tenant_b.pk)}
    )
    assert "This provider is not in your list any more." in page
    _url, page = tap(client, reverse("optout-hub-choose"), {"action": "stop_service", "tenant": "x"})
    assert not UnsubscribeRequest.objects.unscoped(reason="test").exists()


# --- the tenant's page ------------------------------------------------------------------------------


def test_tenant_page_full_opt_out_is_one_tap_and_suggestions_sit_beside_it(
    client: Client, tenant_a: Tenant, outbox: Path
) -> None:
    subscribe(tenant_a, "offers")
    sent(tenant_a, "offers", 4)
    Alternative.objects.create(tenant=tenant_a, kind="pause30")
    Alternative.objects.create(tenant=tenant_a, kind="fewer", label_en="Only one a week")

    page = tenant_page(client, tenant_a, outbox)

    # the stop-all button comes first; each alternative comes after its service's stop button
    assert page.index('data-testid="stop-all"') < page.index('data-testid="suggestion-offers"')
    row = page[page.index('data-testid="suggestion-offers"') :]
    assert row.index('data-testid="stop-service"') < row.index('data-testid="alternative-pause30"')
    assert "Only one a week" in row
    # and the alternatives for all of its marketing come after the stop-all button
    assert page.index('data-testid="stop-all"') < page.index('data-testid="alternative-all-pause30"')
    url, _page = tap(client, reverse("optout-choose", args=[tenant_a.slug]), {"action": "stop_all"})
    assert url == reverse("optout-receipt", args=[tenant_a.slug])
    filed = UnsubscribeRequest.objects.for_tenant(tenant_a).get()
    assert (filed.channel, filed.scope_all) == ("web", True)


def test_an_alternative_the_tenant_does_not_offer_is_refused(
    client: Client, tenant_a: Tenant, outbox: Path
) -> None:
    subscribe(tenant_a, "offers")
    tenant_page(client, tenant_a, outbox)
    _url, page = tap(
        client,
        reverse("optout-choose", args=[tenant_a.slug]),
        {"action": "alternative", "kind": "pause90", "service": "offers"},
    )
    assert "does not offer this" in page
    assert not Suppression.objects.for_tenant(tenant_a).exists()
    assert not ChoiceDay.objects.for_tenant(tenant_a).exists()


@pytest.mark.parametrize(("kind", "days"), [("pause30", 30), ("pause90", 90)])
def test_a_pause_suppresses_until_its_end_then_the_sweep_lifts_it(
    client: Client, tenant_a: Tenant, outbox: Path, kind: str, days: int
) -> None:
    start = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.get_current_timezone())
    with time_machine.travel(start, tick=False):
        subscribe(tenant_a, "offers")
        Alternative.objects.create(tenant=tenant_a, kind=kind)
        tenant_page(client, tenant_a, outbox)
        _url, page = tap(
            client,
            reverse("optout-choose", args=[tenant_a.slug]),
            {"action": "alternative", "kind": kind, "service": "offers"},
        )
        assert "resumes by itself" in page
        assert suppression_status(tenant=tenant_a, phone=E164, service_code="offers").suppressed
        added = SuppressionEvent.objects.for_tenant(tenant_a).get()
        assert datetime.fromisoformat(added.evidence["paused_until"]) == start + timedelta(days=days)
        # a pause is no opt-out: the consent stays, nothing is filed
        assert not UnsubscribeRequest.objects.for_tenant(tenant_a).exists()

    with time_machine.travel(start + timedelta(days=days) - timedelta(minutes=1), tick=False):
        pipeline_sweep()
        assert suppression_status(tenant=tenant_a, phone=E164, service_code="offers").suppressed

    with time_machine.travel(start + timedelta(days=days, minutes=1), tick=False):
        result = pipeline_sweep()

    assert result["pauses_ended"] == 1
    assert not suppression_status(tenant=tenant_a, phone=E164, service_code="offers").suppressed
    lifted = SuppressionEvent.objects.for_tenant(tenant_a).get(action="lifted")
    assert (lifted.scope, lifted.channel) == ("offers", "pause")
    assert ChoiceDay.objects.for_tenant(tenant_a).get(choice=kind).count == 1


def test_an_opt_out_during_a_pause_is_for_good(client: Client, tenant_a: Tenant, outbox: Path) -> None:
    subscribe(tenant_a, "offers")
    Alternative.objects.create(tenant=tenant_a, kind="pause30")
    tenant_page(client, tenant_a, outbox)
    url = reverse("optout-choose", args=[tenant_a.slug])
    tap(client, url, {"action": "alternative", "kind": "pause30", "service": "offers"})
    tap(client, url, {"action": "stop_service", "service": "offers"})

    with time_machine.travel(timezone.now() + timedelta(days=31), tick=False):
        assert pipeline_sweep()["pauses_ended"] == 0
        assert suppression_status(tenant=tenant_a, phone=E164, service_code="offers").suppressed


def test_fewer_and_another_channel_are_recorded_and_sent_to_the_tenants_webhooks(
    client: Client, tenant_a: Tenant, outbox: Path
) -> None:
    subscribe(tenant_a, "offers")
    Alternative.objects.create(tenant=tenant_a, kind="fewer")
    Alternative.objects.create(tenant=tenant_a, kind="channel", channel="email")
    webhook_endpoint_create(
        tenant=tenant_a, url="https://partner.example/hook", events=["preference.recorded"]
    )
    page = tenant_page(client, tenant_a, outbox)
    assert "By Email instead" in page
    url = reverse("optout-choose", args=[tenant_a.slug])

    tap(client, url, {"action": "alternative", "kind": "fewer", "service": "offers"})
    tap(client, url, {"action": "alternative", "kind": "channel"})

    kept = list(
        MarketingPreference.objects.for_tenant(tenant_a)
        .order_by("pk")
        .values_list("kind", "scope", "channel")
    )
    assert kept == [("fewer", "offers", ""), ("channel", "*", "email")]
    assert E164 not in json.dumps(
        list(MarketingPreference.objects.for_tenant(tenant_a).values()), default=str
    )
    payloads = [d.payload for d in WebhookDelivery.objects.for_tenant(tenant_a).order_by("pk")]
    assert [(p["kind"], p["scope"], p["channel"]) for p in payloads] == [
        ("fewer", "offers", None),
        ("channel", "*", "email"),
    ]
    assert all(p["phone_hash"] == phones.tenant_phone_hash(tenant_a.pk, E164) for p in payloads)
    # nothing was suppressed: the person still receives, as they chose
    assert not suppression_status(tenant=tenant_a, phone=E164).suppressed


# --- the choices, counted and charted ---------------------------------------------------------------


def test_choices_are_counted_per_tenant_and_day_and_charted_for_the_tenant_only(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, outbox: Path, alice: User, charlie: User
) -> None:
    subscribe(tenant_a, "offers")
    subscribe(tenant_b, "picks")
    Alternative.objects.create(tenant=tenant_a, kind="pause90")
    hub_page(client, outbox)
    hub = reverse("optout-hub-choose")
    tap(
        client,
        hub,
        {"action": "alternative", "tenant": str(tenant_a.pk), "kind": "pause90", "service": "offers"},
    )
    tap(client, hub, {"action": "dnm_set"})
    tap(client, hub, {"action": "stop_service", "tenant": str(tenant_b.pk), "service": "picks"})

    counts = {
        (row.tenant_id, row.choice): row.count for row in ChoiceDay.objects.unscoped(reason="test").all()
    }
    assert counts == {
        (tenant_a.pk, "pause90"): 1,
        (tenant_a.pk, "do_not_market"): 1,
        (tenant_b.pk, "do_not_market"): 1,
        (tenant_b.pk, "stop"): 1,
    }
    # no personal data in the counts
    assert {f.name for f in ChoiceDay._meta.concrete_fields} == {"id", "tenant", "day", "choice", "count"}

    staff = Client()
    staff.force_login(alice)
    page = staff.get(reverse("admin:optout_choiceday_changelist"), **EN).content.decode()
    assert 'data-testid="choices-chart"' in page
    assert "Paused 90 days (1)" in page and "No marketing from anyone (1)" in page and "Stopped (0)" in page
    other = Client()
    other.force_login(charlie)
    page = other.get(reverse("admin:optout_choiceday_changelist"), **EN).content.decode()
    assert "Paused 90 days (0)" in page and "Stopped (1)" in page


def test_the_erasure_of_the_code_waits_while_the_person_goes_on_from_the_hub(
    client: Client, tenant_a: Tenant, outbox: Path, pipeline: Pipeline
) -> None:
    # given a person who stops one service from the hub, the pipeline running at once
    subscribe(tenant_a, "offers")
    subscribe(tenant_a, "club")
    hub_page(client, outbox)
    hub = reverse("optout-hub-choose")
    with pipeline():
        tap(client, hub, {"action": "stop_service", "tenant": str(tenant_a.pk), "service": "offers"})

    # then the request's erasure of the one-time codes waits: the person's code still works
    first = UnsubscribeRequest.objects.for_tenant(tenant_a).get()
    step = first.steps.get(source="optout.verifications")
    assert step.status == "retrying" and "in use" in step.last_error
    assert first.state != "completed"
    with pipeline():
        tap(client, hub, {"action": "stop_service", "tenant": str(tenant_a.pk), "service": "club"})
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 2

    # and once the code is stale, the sweep blanks it and the requests complete
    with time_machine.travel(timezone.now() + timedelta(minutes=35), tick=False):
        verifications_sweep()
        with pipeline():
            pipeline_sweep()
    states = set(UnsubscribeRequest.objects.for_tenant(tenant_a).values_list("state", flat=True))
    assert states == {"completed"}
    assert not PhoneVerification.objects.unscoped(reason="test").exclude(phone="").exists()


def test_a_provider_known_only_by_its_send_logs_gets_the_person_a_code(
    client: Client, tenant_b: Tenant, outbox: Path
) -> None:
    service(tenant_b, "picks", "Daily picks")
    sent(tenant_b, "picks", 2)

    page = hub_page(client, outbox)

    assert f'data-testid="hub-card-{tenant_b.slug}"' in page and "Daily picks" in page


def test_the_admin_offers_another_channel_only_with_a_channel(
    client: Client, tenant_a: Tenant, alice: User
) -> None:
    client.force_login(alice)
    url = reverse("admin:optout_alternative_add")
    base = {"tenant": tenant_a.pk, "kind": "channel", "is_active": "on", "label_zh": "", "label_en": ""}

    refused = client.post(url, {**base, "channel": ""}, **EN)
    taken = client.post(url, {**base, "channel": "app"}, **EN)

    assert refused.status_code == 200 and "Choose the channel you offer instead." in refused.content.decode()
    assert taken.status_code == 302
    offered = Alternative.objects.for_tenant(tenant_a).get()
    assert (
        offered.label("en") == "By App notifications instead"
        and offered.label("zh-hans") == "改用应用通知接收"
    )


ACTIONS = st.sampled_from(
    ["stop_all", "stop_provider", "stop_service", "alternative", "dnm_set", "dnm_lift", "x", ""]
)
TEXT = st.text(max_size=40) | st.sampled_from(
    ["offers", "*", "pause30", "fewer", "channel", "1", "-1", "a\x00"]
)


@given(
    data=st.lists(
        st.fixed_dictionaries(
            {"action": ACTIONS, "tenant": TEXT | st.just("<A>"), "service": TEXT, "kind": TEXT}
        ),
        max_size=4,
    )
)
@example(data=[{"action": "stop_service", "tenant": "<A>", "service": "a\x00", "kind": ""}])
@example(data=[{"action": "alternative", "tenant": "<A>", "service": "a\x00", "kind": "pause30"}])
@example(data=[{"action": "alternative", "tenant": "<A>", "service": "", "kind": "a\x00"}])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_one_tap_post_is_answered_by_a_redirect_never_an_error(
    client: Client, tenant_a: Tenant, outbox: Path, data: list[dict[str, str]]
) -> None:
    cache.clear()
    if not Subscription.objects.for_tenant(tenant_a).exists():
        subscribe(tenant_a, "offers")
        Alternative.objects.create(tenant=tenant_a, kind="pause30")
    hub_page(client, outbox)
    for item in data:
        posted = {**item, "tenant": item["tenant"].replace("<A>", str(tenant_a.pk))}
        for url in (reverse("optout-hub-choose"), reverse("optout-choose", args=[tenant_a.slug])):
            assert client.post(url, posted, **EN).status_code == 302
