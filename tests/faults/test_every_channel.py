"""Issue 19, "The every-table scan … runs after a request through every channel with an
echoing HTTP target": one person per channel (reply SMS, the tenant's web page, the
partner API, the voice menu, the email one-click link, the one-stop hub) asks to stop,
through the real entry point; every request runs to completion through the real pipeline,
with termination and erasure targets that echo every call back (number and all, in two
formats) and gateways that echo every message back; then no raw number is left in the
database, the files or Redis.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from lanzuan import phones, signing
from unsubscribe import links
from unsubscribe.inbound.services import inbound_credential_set
from unsubscribe.models import ChannelSetting, RequestChannel, Step, Subscription, UnsubscribeRequest
from unsubscribe.voice.services import voice_credential_set

from ..httpserver import Endpoint, http_endpoint
from ..pipeline_helpers import http_target, subscriber
from .scan import national_digits, unique_number

if TYPE_CHECKING:
    from collections.abc import Iterator

    from django.test.client import _MonkeyPatchedWSGIResponse as Response

    from tenants.models import Tenant

    from ..pipeline_helpers import Pipeline
    from .conftest import Gateways, RawNumbers
    from .ledger import Ledger

SMS_SECRET = "faults-generic-sms-secret"
VOICE_SECRET = "faults-generic-voice-secret"
EN: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture(autouse=True)
def fresh_limits() -> Iterator[None]:
    cache.clear()  # rate-limit counters of earlier tests
    yield
    cache.clear()


@pytest.fixture
def echoing_targets(tenant_a: Tenant, tenant_b: Tenant) -> Iterator[Endpoint]:
    """One termination and one erasure target per tenant, all echoing every call back."""
    with http_endpoint(answer="echo") as endpoint:
        for tenant in (tenant_a, tenant_b):
            http_target(tenant, endpoint.url, purpose="terminate")
            http_target(tenant, endpoint.url, purpose="erase")
        yield endpoint


def signed_post(client: Client, url: str, payload: dict[str, Any], secret: str) -> Response:
    body = json.dumps(payload).encode()
    headers = signing.signed_headers(secret, body)
    return client.post(
        url,
        body,
        content_type="application/json",
        HTTP_X_LANZUAN_TIMESTAMP=headers[signing.TIMESTAMP_HEADER],
        HTTP_X_LANZUAN_SIGNATURE=headers[signing.SIGNATURE_HEADER],
    )


# --- one request through each channel -----------------------------------------------------------


def reply_sms(client: Client, tenant: Tenant, number: str, pipeline: Pipeline) -> None:
    inbound_credential_set(tenant=tenant, provider="generic", secret=SMS_SECRET)
    url = reverse("inbound:sms-hook", kwargs={"tenant_slug": tenant.slug, "provider": "generic"})
    payload = {
        "from": number,
        "to": "10690001",
        "text": "TD",
        "message_id": "faults-1",
        "timestamp": int(time.time()),
    }
    with pipeline():
        response = signed_post(client, url, payload, SMS_SECRET)
    assert response.status_code == 200 and response.json()["action"] == "unsubscribe", response.content


def web_page(client: Client, tenant: Tenant, number: str, pipeline: Pipeline, gateways: Gateways) -> None:
    national = national_digits(number)
    with pipeline():
        asked = client.post(
            reverse("unsubscribe-start", args=[tenant.slug]), {"country": "86", "phone": national}, **EN
        )
    assert asked["Location"] == reverse("optout-code", args=[tenant.slug])
    with pipeline():
        verified = client.post(
            reverse("optout-code", args=[tenant.slug]), {"code": gateways.code(number)}, **EN
        )
        assert verified["Location"] == reverse("optout-choose", args=[tenant.slug])
        chosen = client.post(
            reverse("optout-choose", args=[tenant.slug]), {"scope": "all", "confirm": "on"}, **EN
        )
    assert chosen["Location"] == reverse("optout-receipt", args=[tenant.slug])


def partner_api(client: Client, api_key: str, number: str, pipeline: Pipeline) -> None:
    with pipeline():
        response = client.post(
            "/api/v1/unsubscribe-requests",
            {"phone": number},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Api-Key {api_key}",
            HTTP_IDEMPOTENCY_KEY="faults-every-channel",
        )
    assert response.status_code == 201, response.content


def voice_menu(client: Client, tenant: Tenant, number: str, pipeline: Pipeline) -> None:
    ChannelSetting.objects.create(
        tenant=tenant, channel=RequestChannel.HOTLINE, hotline_number="400-800-1234", ivr_enabled=True
    )
    voice_credential_set(tenant=tenant, provider="generic", secret=VOICE_SECRET)
    url = reverse("voice:generic-hook", kwargs={"tenant_slug": tenant.slug})
    with pipeline():
        turn = signed_post(
            client, url, {"call_id": "faults-call", "from": number, "to": "4008001234"}, VOICE_SECRET
        ).json()
        for _press in range(2):  # "press 1 to stop", then "press 1 to confirm"
            turn = signed_post(
                client, url, {"call_id": "faults-call", "turn": turn["turn"], "digits": "1"}, VOICE_SECRET
            ).json()
    assert turn["outcome"] == "filed", turn


def email_one_click(tenant: Tenant, number: str, pipeline: Pipeline) -> None:
    subscription = Subscription.objects.for_tenant(tenant).filter(phone=number).first()
    assert subscription is not None
    mailbox_provider = Client(enforce_csrf_checks=True)  # no cookies, no CSRF token
    with pipeline():
        response = mailbox_provider.post(
            links.email_unsubscribe_path(subscription),
            "List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )
    assert response.status_code == 200, response.content


def hub(client: Client, tenants: list[Tenant], number: str, pipeline: Pipeline, gateways: Gateways) -> None:
    with pipeline():
        asked = client.post(reverse("optout-hub"), {"phone": number}, **EN)
    assert asked["Location"] == reverse("optout-hub-code")
    with pipeline():
        client.post(reverse("optout-hub-code"), {"code": gateways.code(number)}, **EN)
        chosen = client.post(
            reverse("optout-hub-choose"), {"providers": [str(t.pk) for t in tenants], "confirm": "on"}, **EN
        )
    assert chosen.status_code == 302, chosen.content


# --- the test -------------------------------------------------------------------------------------


def test_a_request_through_every_channel_leaves_no_raw_number_anywhere(
    tenant_a: Tenant,
    tenant_b: Tenant,
    api_key_a: str,
    pipeline: Pipeline,
    gateways: Gateways,
    echoing_targets: Endpoint,
    raw_numbers: RawNumbers,
    fault_ledger: Ledger,
) -> None:
    # given a person per channel, subscribed to tenant A's services (the hub's also to B's)
    channels = ["sms", "web", "partner", "hotline", "email", "hub"]
    number = {channel: unique_number() for channel in channels}
    for channel in channels:
        subscriber(tenant_a, number[channel])
    subscriber(tenant_b, number["hub"])
    # The email link stops one service; a person still subscribed to another is still a
    # subscriber whose number is kept. This one had only the one the email was about.
    Subscription.objects.for_tenant(tenant_a).filter(phone=number["email"], service__code="club").delete()
    gateways.use(tenant_a, tenant_b)

    # when each asks to stop through their channel, and everything it causes runs
    reply_sms(Client(), tenant_a, number["sms"], pipeline)
    web_page(Client(), tenant_a, number["web"], pipeline, gateways)
    partner_api(Client(), api_key_a, number["partner"], pipeline)
    voice_menu(Client(), tenant_a, number["hotline"], pipeline)
    email_one_click(tenant_a, number["email"], pipeline)
    hub(Client(), [tenant_a, tenant_b], number["hub"], pipeline, gateways)

    # then one request per person and tenant, each filed by its channel and completed
    requests = list(UnsubscribeRequest.objects.unscoped(reason="test").order_by("pk"))
    by_channel = {request.channel: request for request in requests}
    fault_ledger.count(
        filed=len(requests), faults=len(echoing_targets.received) + len(gateways.endpoint.received)
    )
    assert sorted(r.channel for r in requests) == sorted([*channels, "hub"]), [r.channel for r in requests]
    lost = [r for r in requests if r.state != UnsubscribeRequest.State.COMPLETED]
    fault_ledger.count(lost=len(lost))
    assert not lost, [(r.channel, r.state, r.attention_reason) for r in lost]
    # the echoing targets were called by every request (terminate and erase), number and all
    assert {r.json()["phone"] for r in echoing_targets.received} == set(number.values())
    for request in requests:
        steps = Step.objects.for_tenant(request.tenant_id).filter(request=request)
        assert all(step.status == "succeeded" for step in steps), [(s.kind, s.status) for s in steps]
        assert steps.filter(target__isnull=False).count() == 2
    # and each person got one confirmation per tenant, however many messages the way took
    confirmations = {
        channel: len(gateways.sent(number[channel], "unsubscribe_completed")) for channel in channels
    }
    fault_ledger.count(duplicated=sum(max(n - (2 if c == "hub" else 1), 0) for c, n in confirmations.items()))
    assert confirmations == {channel: 2 if channel == "hub" else 1 for channel in channels}
    assert by_channel["web"].verification_method == by_channel["hub"].verification_method == "otp"

    # and not one raw number is left: database, files (the outbox's too), Redis
    assert raw_numbers(*number.values()) == [], {phones.mask(n): c for c, n in number.items()}
