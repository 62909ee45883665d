"""The platform-wide do-not-market entry (issue 17): set from the hub after one code, honoured by
every tenant's single check, bulk check and scrub (also a tenant created after it), lifted only
by the person with a fresh code, never by a tenant (no API path, no admin path)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from lanzuan import phones
from tenants.models import Tenant
from tenants.services import api_key_create
from unsubscribe.models import PlatformDoNotMarket, PlatformDoNotMarketEvent, Service, Subscription
from unsubscribe.partner.tasks import run_scrub_job
from unsubscribe.suppressions.services import resubscribe

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from celery import Celery
    from django.contrib.auth.models import User
    from pytest_django import Settings

NUMBER = "13800138000"
E164 = "+8613800138000"
OTHER = "+8613912345678"
EN: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}


@pytest.fixture(autouse=True)
def fresh_limits() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def hub_settings(settings: Settings, eager_celery: Celery) -> None:
    settings.LANZUAN_PLATFORM_SMS_URL = ""
    settings.LANZUAN_FILE_GATEWAY = True
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "EXCEPTION_HANDLER": "unsubscribe.partner.problems.problem_exception_handler",
    }
    settings.LANZUAN_API_RATES = {"partner": "600/min", "partner_bulk": "60/min"}


def last_code(outbox: Path, to: str = E164) -> str:
    lines = [json.loads(line) for line in outbox.read_text().splitlines()] if outbox.exists() else []
    bodies = [line["body"] for line in lines if line["to"] == to]
    assert bodies, f"no message to {to}"
    match = re.search(r"\b(\d{6})\b", bodies[-1])
    assert match is not None
    return match.group(1)


def subscribe(tenant: Tenant, code: str = "offers", phone: str = E164) -> Subscription:
    service, _ = Service.objects.unscoped(reason="test").get_or_create(
        tenant=tenant, code=code, defaults={"name": code.title()}
    )
    return Subscription.objects.create(
        tenant=tenant,
        service=service,
        phone=phone,
        phone_hash=phones.tenant_phone_hash(tenant.pk, phone),
        phone_masked=phones.mask(phone),
    )


def hub_verified(client: Client, outbox: Path) -> str:
    """Through the hub's number and code steps; returns the hub page after the code."""
    assert client.post(reverse("optout-hub"), {"phone": NUMBER}, **EN)["Location"] == reverse(
        "optout-hub-code"
    )
    response = client.post(reverse("optout-hub-code"), {"code": last_code(outbox)}, **EN)
    assert response["Location"] == reverse("optout-hub-choose")
    return client.get(reverse("optout-hub-choose"), **EN).content.decode()


def tap(client: Client, data: dict[str, Any]) -> str:
    response = client.post(reverse("optout-hub-choose"), data, **EN)
    assert response.status_code == 302, response.status_code
    return client.get(response["Location"], **EN).content.decode()


def api(tenant: Tenant) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_create(tenant=tenant, name='t')[1]}")
    return client


def test_set_from_the_hub_suppresses_the_number_at_a_tenant_created_after_it(
    client: Client, tenant_a: Tenant, outbox: Path
) -> None:
    # given a person who set the platform-wide entry from the hub, after one code
    subscribe(tenant_a)
    page = hub_verified(client, outbox)
    assert 'data-testid="hub-dnm-set"' in page
    page = tap(client, {"action": "dnm_set"})
    assert 'data-testid="hub-dnm-on"' in page
    entry = PlatformDoNotMarket.objects.get()
    assert entry.phone_hash == phones.platform_phone_hash(E164) and entry.phone_masked == "138****8000"
    assert E164 not in json.dumps(list(PlatformDoNotMarketEvent.objects.values()), default=str)

    # when a tenant that did not exist then checks the number
    newcomer = Tenant.objects.create(slug="newcomer", name="Newcomer", kind=Tenant.Kind.PLATFORM)
    partner = api(newcomer)

    # then the single check says suppressed, because of the platform-wide entry
    one = partner.get("/api/v1/suppressions/check", {"phone": E164}).json()
    assert one["suppressed"] is True and one["platform_do_not_market"] is True
    assert one["scopes"] == [] and one["since"] is not None
    free = partner.get("/api/v1/suppressions/check", {"phone": OTHER}).json()
    assert free["suppressed"] is False and "platform_do_not_market" not in free
    # and the bulk check too, number by number
    many = partner.post(
        "/api/v1/suppressions/check", {"phones": [OTHER, NUMBER, "nope"]}, format="json"
    ).json()
    assert many["suppressed"] == 1
    assert [r.get("platform_do_not_market") for r in many["results"]] == [None, True, None]
    assert [r.get("suppressed") for r in many["results"]] == [False, True, None]

    # and a scrub job removes it, counted as the platform-wide entry
    upload = SimpleUploadedFile("list.csv", f"phone\n{E164}\n{OTHER}\n".encode(), content_type="text/csv")
    job = partner.post("/api/v1/scrub-jobs", {"file": upload}, format="multipart").json()
    run_scrub_job(job["id"])
    done = partner.get(f"/api/v1/scrub-jobs/{job['id']}").json()
    assert (done["suppressed"], done["platform_do_not_market"], done["sendable"]) == (1, 1, 1)


def test_a_tenant_opt_out_and_the_entry_together_keep_the_tenant_answer(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, outbox: Path
) -> None:
    subscribe(tenant_a)
    hub_verified(client, outbox)
    tap(client, {"action": "stop_provider", "tenant": str(tenant_a.pk)})
    tap(client, {"action": "dnm_set"})

    one = api(tenant_a).get("/api/v1/suppressions/check", {"phone": E164}).json()
    assert one["suppressed"] and one["platform_do_not_market"] and one["scopes"] == ["all"]
    # a tenant's own re-subscribe lifts its opt-out, never the person's platform-wide entry
    Tenant.objects.filter(pk=tenant_b.pk).update(allow_resubscribe=True)
    subscribe(tenant_b)
    resubscribe(tenant=tenant_b, phone=E164, channel="sms")
    again = api(tenant_b).get("/api/v1/suppressions/check", {"phone": E164}).json()
    assert again["suppressed"] and again["platform_do_not_market"]


def test_lifting_needs_a_fresh_code(client: Client, tenant_a: Tenant, outbox: Path) -> None:
    # given the entry set with one code
    subscribe(tenant_a)
    hub_verified(client, outbox)
    page = tap(client, {"action": "dnm_set"})
    # the same code cannot lift it: the page says to verify again, and a forged post is refused
    assert 'data-testid="hub-dnm-lift"' not in page and 'data-testid="hub-dnm-fresh"' in page
    page = tap(client, {"action": "dnm_lift"})
    assert "verify your number again with a new code" in page
    assert PlatformDoNotMarket.objects.count() == 1

    # when the person comes back later (the resend cooldown is over) and verifies with a new code
    cache.clear()
    fresh = Client()
    page = hub_verified(fresh, outbox)
    assert 'data-testid="hub-dnm-lift"' in page
    response = fresh.post(reverse("optout-hub-choose"), {"action": "dnm_lift"}, **EN)

    # then it is lifted, recorded, and the visit ends (the code is used)
    assert response["Location"] == reverse("optout-hub")
    assert not PlatformDoNotMarket.objects.exists()
    actions = list(PlatformDoNotMarketEvent.objects.order_by("pk").values_list("action", flat=True))
    assert actions == ["set", "lifted"]
    lifted = PlatformDoNotMarketEvent.objects.get(action="lifted")
    assert lifted.evidence["otp_id"] != PlatformDoNotMarketEvent.objects.get(action="set").evidence["otp_id"]
    one = api(tenant_a).get("/api/v1/suppressions/check", {"phone": E164}).json()
    assert one["suppressed"] is False and "platform_do_not_market" not in one


def test_no_tenant_can_lift_it_not_by_api_nor_admin(
    tenant_a: Tenant, alice: User, root: User, client: Client, outbox: Path
) -> None:
    subscribe(tenant_a)
    hub_verified(client, outbox)
    tap(client, {"action": "dnm_set"})
    entry = PlatformDoNotMarket.objects.get()
    partner = api(tenant_a)

    # the partner API has no route that names it
    for path in ("/api/v1/platform-do-not-market", f"/api/v1/suppressions/{entry.pk}"):
        assert partner.delete(path).status_code in {404, 405}
    schema = partner.get("/api/schema/", {"format": "json"}).content.decode()
    assert "do-not-market" not in schema.split('"paths"')[1].split('"components"')[0]

    # a tenant's staff do not see it in the admin at all
    staff = Client()
    staff.force_login(alice)
    changelist = reverse("admin:unsubscribe_platformdonotmarket_changelist")
    assert staff.get(changelist).status_code == 403
    assert (
        staff.post(
            reverse("admin:unsubscribe_platformdonotmarket_delete", args=[entry.pk]), {"post": "yes"}
        ).status_code
        == 403
    )

    # platform staff read it, masked, and cannot change or delete it either
    platform = Client()
    platform.force_login(root)
    page = platform.get(changelist, **EN).content.decode()
    assert "138****8000" in page and entry.phone_hash not in page and E164 not in page
    delete = platform.post(
        reverse("admin:unsubscribe_platformdonotmarket_delete", args=[entry.pk]), {"post": "yes"}
    )
    assert delete.status_code == 403
    assert PlatformDoNotMarket.objects.filter(pk=entry.pk).exists()


def test_the_cores_may_we_send_answer_honours_it_too(client: Client, tenant_a: Tenant, outbox: Path) -> None:
    from unsubscribe.suppressions.selectors import suppression_status

    subscribe(tenant_a)
    hub_verified(client, outbox)
    assert not suppression_status(tenant=tenant_a, phone=E164).suppressed
    tap(client, {"action": "dnm_set"})
    status = suppression_status(tenant=tenant_a, phone=E164, service_code="offers")
    assert status.suppressed and status.platform_do_not_market and status.scopes == []


def test_no_provider_imports_a_subscription_for_the_number(
    client: Client, tenant_a: Tenant, outbox: Path
) -> None:
    subscribe(tenant_a)
    hub_verified(client, outbox)
    tap(client, {"action": "dnm_set"})
    newcomer = Tenant.objects.create(slug="importer", name="Importer", kind=Tenant.Kind.PLATFORM)
    Service.objects.create(tenant=newcomer, code="offers", name="Offers")

    response = api(newcomer).post(
        "/api/v1/subscriptions/import",
        [{"phone": E164, "service": "offers"}, {"phone": OTHER, "service": "offers"}],
        format="json",
    )

    body = response.json()
    assert (body["created"], body["skipped_opted_out"]) == (1, 1), body
    kept = Subscription.objects.for_tenant(newcomer).values_list("phone", flat=True)
    assert list(kept) == [OTHER]
