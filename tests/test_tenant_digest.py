"""Per-tenant phone digests (issue 19, item 16): a tenant's rows, API answers, webhooks and
exports carry that tenant's own digest of a number, so two tenants cannot link a person by
it; the platform digest serves only platform-wide work (the hub, one-time-code limits,
replies no tenant could be given). Rows stored with the old, global digest are converted by
a migration and keep matching."""

from __future__ import annotations

import csv
import hashlib
import importlib
import io
import json
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from django.apps import apps as django_apps
from django.core.cache import cache
from django.db import connection
from django.db.migrations.exceptions import IrreversibleError
from django.db.migrations.loader import MigrationLoader
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from lanzuan import phones, signing
from notifications.models import Message
from tenants.models import Tenant
from tenants.services import api_key_create
from unsubscribe import domain_events
from unsubscribe.audit.canonical import GENESIS_HASH
from unsubscribe.inbound.models import InboundMessage, UnroutedMessage
from unsubscribe.inbound.services import inbound_credential_set
from unsubscribe.models import (
    ChannelSetting,
    ConsentRecord,
    NumberEvent,
    RequestChannel,
    SendLogEntry,
    Service,
    Step,
    SubscriberProfile,
    Subscription,
    Suppression,
    SuppressionEvent,
    UnsubscribeRequest,
)
from unsubscribe.optout.models import PhoneVerification
from unsubscribe.optout.selectors import hub_providers
from unsubscribe.partner import tasks as partner_tasks
from unsubscribe.partner import webhooks
from unsubscribe.partner.models import WebhookDelivery
from unsubscribe.voice.models import VoiceCall
from unsubscribe.voice.services import voice_call_step

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from types import ModuleType

    from celery import Celery
    from django.contrib.auth.models import User
    from django.http.response import HttpResponseBase
    from pytest_django import Settings

    from .pipeline_helpers import Pipeline

NUMBER = "13800138000"
E164 = "+8613800138000"
EN: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}
GENERIC_SECRET = "generic-hmac-secret-for-tests"

# Every tenant-owned table that keeps a digest of a number, with its column.
TENANT_DIGEST_COLUMNS = {
    Subscription: "phone_hash",
    SubscriberProfile: "phone_hash",
    UnsubscribeRequest: "phone_hash",
    Suppression: "phone_hash",
    SuppressionEvent: "phone_hash",
    PhoneVerification: "phone_hash",
    InboundMessage: "from_hash",
    VoiceCall: "caller_hash",
    Message: "to_hash",
    ConsentRecord: "phone_hash",
    NumberEvent: "phone_hash",
    SendLogEntry: "phone_hash",
}
# Tables made after the migration that converted the old global digests: they never held one.
NEWER_THAN_THE_DIGEST_MIGRATION = {ConsentRecord, NumberEvent, SendLogEntry}


@pytest.fixture(autouse=True)
def fresh_limits() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def platform_sender(settings: Settings, eager_celery: Celery) -> None:
    """The hub's codes go through the platform's sender: the file gateway here, sent at once."""
    settings.LANZUAN_PLATFORM_SMS_URL = ""
    settings.LANZUAN_FILE_GATEWAY = True
    settings.LANZUAN_PLATFORM_NAME = "蓝钻退订平台"
    settings.LANZUAN_PLATFORM_NAME_EN = "Lanzuan"


@pytest.fixture
def no_webhook_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Webhook deliveries are stored (their payload is what gets sent) but not posted."""
    monkeypatch.setattr(partner_tasks.deliver_webhook, "apply_async", lambda *args, **kwargs: None)


def api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def last_code(outbox: Path) -> str:
    bodies = [json.loads(line)["body"] for line in outbox.read_text().splitlines()]
    match = re.search(r"\b(\d{6})\b", bodies[-1])
    assert match is not None
    return match.group(1)


def tables_holding(value: str, *, outside_tenant: int | None = None) -> set[str]:
    """The tables with a row whose text holds `value` anywhere (any column, JSON included);
    with `outside_tenant`, only rows of other tenants (or of none) count."""
    found = set()
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            columns = {c.name for c in connection.introspection.get_table_description(cursor, table)}
            where = "CAST(t AS TEXT) LIKE %s"
            params: list[Any] = [f"%{value}%"]
            if outside_tenant is not None and "tenant_id" in columns:
                where += " AND (t.tenant_id IS NULL OR t.tenant_id <> %s)"
                params.append(outside_tenant)
            cursor.execute(f"SELECT COUNT(*) FROM {qn(table)} AS t WHERE {where}", params)  # noqa: S608
            if cursor.fetchone()[0]:
                found.add(table)
    return found


HEX_DIGEST = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


def hex_digests_of(tenant: Tenant) -> set[str]:
    """Every 64-hex-digit value (a digest) in the tenant's rows, in any table and column."""
    found: set[str] = set()
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            columns = {c.name for c in connection.introspection.get_table_description(cursor, table)}
            if "tenant_id" in columns:
                cursor.execute(
                    f"SELECT CAST(t AS TEXT) FROM {qn(table)} AS t WHERE t.tenant_id = %s", [tenant.pk]
                )  # noqa: S608
                for (text,) in cursor.fetchall():
                    found.update(HEX_DIGEST.findall(text))
    return found


def import_subscription(key: str, tenant: Tenant, code: str = "offers") -> None:
    Service.objects.for_tenant(tenant).get_or_create(
        tenant=tenant, code=code, defaults={"name": f"{tenant.slug} {code}"}
    )
    response = api(key).post(
        "/api/v1/subscriptions/import",
        [{"phone": NUMBER, "service": code, "consent_at": "2025-01-31"}],
        format="json",
    )
    assert response.status_code == 200 and response.json()["created"] == 1, response.content


def streamed_csv(response: HttpResponseBase) -> list[dict[str, str]]:
    assert isinstance(response, StreamingHttpResponse)
    return list(csv.DictReader(io.StringIO(response.getvalue().decode())))


# --- one number, two tenants ---------------------------------------------------------------------


@pytest.mark.usefixtures("no_webhook_sends")
def test_the_same_number_has_a_different_digest_at_each_tenant_everywhere(
    tenant_a: Tenant,
    tenant_b: Tenant,
    api_key_a: str,
    api_key_b: str,
    alice: User,
    charlie: User,
    root: User,
    outbox: Path,
    pipeline: Pipeline,
) -> None:
    digest = {t.pk: phones.tenant_phone_hash(t.pk, E164) for t in (tenant_a, tenant_b)}
    platform = phones.platform_phone_hash(E164)
    assert len({*digest.values(), platform}) == 3
    filed: dict[int, dict[str, Any]] = {}
    for tenant, key in ((tenant_a, api_key_a), (tenant_b, api_key_b)):
        # given the person is a subscriber (imported through the API), with a webhook endpoint
        import_subscription(key, tenant)
        # a deactivation of the number before the consent was reported (it voids nothing)
        events = [{"phone": NUMBER, "event": "deactivated", "date": "2025-01-01"}]
        assert api(key).post("/api/v1/number-events", events, format="json").json()["recorded"] == 1
        # the sender reported a message it sent the number
        sent = [{"phone": NUMBER, "sent_at": "2025-01-02T08:00:00+08:00"}]
        assert api(key).post("/api/v1/send-logs", sent, format="json").json()["accepted"] == 1
        webhooks.webhook_endpoint_create(
            tenant=tenant, url="https://crm.example.com/hooks", events=list(domain_events.EVENTS), secret=None
        )
        # and the person asked for a code on the web page, replied HELP by SMS, and called the IVR
        assert (
            Client()
            .post(reverse("unsubscribe-start", args=[tenant.slug]), {"phone": NUMBER}, **EN)
            .status_code
            == 302
        )
        inbound_credential_set(tenant=tenant, provider="generic", secret=GENERIC_SECRET)
        body = json.dumps({"from": E164, "to": "10690001", "text": "HELP", "message_id": "h1"}).encode()
        headers = signing.signed_headers(GENERIC_SECRET, body)
        sms = Client().post(
            reverse("inbound:sms-hook", kwargs={"tenant_slug": tenant.slug, "provider": "generic"}),
            body,
            content_type="application/json",
            HTTP_X_LANZUAN_TIMESTAMP=headers[signing.TIMESTAMP_HEADER],
            HTTP_X_LANZUAN_SIGNATURE=headers[signing.SIGNATURE_HEADER],
        )
        assert sms.status_code == 200, sms.content
        ChannelSetting.objects.create(tenant=tenant, channel=RequestChannel.HOTLINE, ivr_enabled=True)
        voice_call_step(tenant=tenant, provider="generic", call_id="call-1", caller=E164)
        # when the person's request is filed through the API and the pipeline runs
        with pipeline():
            response = api(key).post(
                "/api/v1/unsubscribe-requests", {"phone": NUMBER, "channel": "app"}, format="json"
            )
        assert response.status_code == 201, response.content
        filed[tenant.pk] = response.json()

    for tenant, key in ((tenant_a, api_key_a), (tenant_b, api_key_b)):
        mine = digest[tenant.pk]
        # then every table row of the tenant about the number holds the tenant's own digest
        # (subscriber profiles have no entry point but the demo seed; the migration test has them)
        for model, column in TENANT_DIGEST_COLUMNS.items():
            if model is SubscriberProfile:
                continue
            values = set(model.objects.for_tenant(tenant).values_list(column, flat=True))
            assert values == {mine}, (model.__name__, values)
        history = UnsubscribeRequest.history.filter(tenant_id=tenant.pk).values_list("phone_hash", flat=True)
        assert set(history) == {mine}
        # … and so does every output: the API's answers and the webhook payloads
        assert filed[tenant.pk]["phone_hash"] == mine
        reference = filed[tenant.pk]["reference"]
        assert api(key).get(f"/api/v1/unsubscribe-requests/{reference}").json()["phone_hash"] == mine
        payloads = list(WebhookDelivery.objects.for_tenant(tenant).values_list("payload", flat=True))
        assert payloads and {p["phone_hash"] for p in payloads} == {mine}
        # the request completed: the suppression matches, by the API's check
        check = api(key).get("/api/v1/suppressions/check", {"phone": NUMBER}).json()
        assert check["suppressed"] is True
        # no row of another tenant holds this tenant's digest, in any table
        assert tables_holding(mine, outside_tenant=tenant.pk) == set()

    # no digest-like value of one tenant's rows is in the other's: nothing links the person. Not
    # digests of the person: each audit chain's all-zero start, and the SHA-256 of a step's receipt
    # text (the audit record's `receipt_sha256`), the same words at both tenants ("nothing to erase")
    receipts = Step.objects.unscoped(reason="receipt texts of both tenants").values_list("receipt", flat=True)
    constants = {GENESIS_HASH} | {hashlib.sha256(text.encode()).hexdigest() for text in receipts if text}
    shared = (hex_digests_of(tenant_a) & hex_digests_of(tenant_b)) - constants
    assert hex_digests_of(tenant_a) and not shared, shared
    # the platform digest is in no table (no reply went unrouted here)
    assert tables_holding(platform) == set()
    assert {
        "unsubscribe_subscription",
        "unsubscribe_unsubscriberequest",
        "unsubscribe_historicalunsubscriberequest",
        "unsubscribe_suppression",
        "unsubscribe_suppressionevent",
        "optout_phoneverification",
        "inbound_inboundmessage",
        "voice_voicecall",
        "notifications_message",
        "partner_webhookdelivery",
    } <= tables_holding(digest[tenant_a.pk])

    # the CSV export of each tenant's staff carries their digest
    for user, tenant in ((alice, tenant_a), (charlie, tenant_b)):
        staff = Client()
        staff.force_login(user)
        rows = streamed_csv(staff.get(reverse("admin:unsubscribe_export")))
        assert rows and {r["number_hash"] for r in rows} == {digest[tenant.pk]}

    # staff still find the number by searching for it: a superuser at both tenants, Alice at hers
    changelist = reverse("admin:unsubscribe_suppression_changelist")
    for user, tenants in ((root, {tenant_a.pk, tenant_b.pk}), (alice, {tenant_a.pk})):
        staff = Client()
        staff.force_login(user)
        found = staff.get(changelist, {"q": "138 0013 8000"})
        assert {row.tenant_id for row in found.context["cl"].result_list} == tenants


def test_a_suppression_at_one_tenant_is_not_found_by_another_tenants_digest(
    tenant_a: Tenant, tenant_b: Tenant, api_key_a: str, api_key_b: str, outbox: Path
) -> None:
    assert (
        api(api_key_a)
        .post("/api/v1/unsubscribe-requests", {"phone": NUMBER, "channel": "app"}, format="json")
        .status_code
        == 201
    )
    many = {"phones": [NUMBER, "13912345678"]}
    assert api(api_key_a).post("/api/v1/suppressions/check", many, format="json").json()["suppressed"] == 1
    assert api(api_key_b).post("/api/v1/suppressions/check", many, format="json").json()["suppressed"] == 0
    # B cannot find A's row by its own digest of the number either
    assert (
        not Suppression.objects.unscoped(reason="test")
        .filter(phone_hash=phones.tenant_phone_hash(tenant_b.pk, E164))
        .exists()
    )


# --- the hub --------------------------------------------------------------------------------------


def test_the_hub_still_finds_the_person_at_every_tenant(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, api_key_a: str, api_key_b: str, outbox: Path
) -> None:
    import_subscription(api_key_a, tenant_a)
    import_subscription(api_key_b, tenant_b, "picks")
    Tenant.objects.create(slug="tenant-c", name="Not a provider")  # knows nothing of the number

    assert [p.tenant for p in hub_providers(e164=E164)] == sorted([tenant_a, tenant_b], key=lambda t: t.name)
    client.post(reverse("optout-hub"), {"phone": NUMBER}, **EN)
    owner = PhoneVerification.objects.unscoped(reason="test").get()
    assert owner.tenant_id == tenant_a.pk  # the first provider owns the code's row …
    assert owner.phone_hash == phones.tenant_phone_hash(tenant_a.pk, E164)  # … with its own digest
    client.post(reverse("optout-hub-code"), {"code": last_code(outbox)}, **EN)
    choose = client.get(reverse("optout-hub-choose"), **EN).content.decode()
    assert tenant_a.name in choose and tenant_b.name in choose and "Not a provider" not in choose
    client.post(
        reverse("optout-hub-choose"),
        {"providers": [str(tenant_a.pk), str(tenant_b.pk)], "confirm": "on"},
        **EN,
    )

    for tenant in (tenant_a, tenant_b):
        request = UnsubscribeRequest.objects.for_tenant(tenant).get()
        assert request.phone_hash == phones.tenant_phone_hash(tenant.pk, E164)
    # asked again, the hub sees that both stopped everything
    assert all(p.already_stopped for p in hub_providers(e164=E164))


# --- the digest itself ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    numbers=st.lists(
        st.integers(min_value=13000000000, max_value=19999999999), min_size=1, max_size=5, unique=True
    ),
    tenants=st.lists(st.integers(min_value=1, max_value=2**31 - 1), min_size=2, max_size=4, unique=True),
)
def test_tenant_digests_differ_across_tenants_and_are_stable_within_one(
    numbers: list[int], tenants: list[int]
) -> None:
    for number in numbers:
        e164 = f"+86{number}"
        platform = phones.platform_phone_digest(e164)
        digests = [phones.tenant_phone_hash(t, e164) for t in tenants]
        assert len(set(digests)) == len(tenants) and platform.hex() not in digests
        for tenant, digest in zip(tenants, digests, strict=True):
            assert phones.tenant_phone_hash(tenant, e164) == digest  # stable
            assert phones.tenant_phone_hasher(tenant)(e164) == digest  # the bulk paths' form
            assert phones.tenant_phone_digester(tenant)(e164).hex() == digest
            assert phones.tenant_hash_from_platform(tenant, platform) == digest  # the hub's form
            assert len(digest) == 64 and int(digest, 16) >= 0
        assert phones.tenant_phone_hashes(e164, tenants) == dict(zip(tenants, digests, strict=True))
    # different numbers at one tenant stay different
    assert len({phones.tenant_phone_hash(tenants[0], f"+86{n}") for n in numbers}) == len(numbers)


def test_the_digest_changes_with_the_key(settings: Settings) -> None:
    before = phones.tenant_phone_hash(1, E164)
    settings.PHONE_HASH_KEY = "another-key"
    assert phones.tenant_phone_hash(1, E164) != before


# --- the migration from the global digest --------------------------------------------------------


def _digest_migration() -> tuple[ModuleType, Any]:
    """The digest migration's module and the models as they stood when it ran.

    The migration only changes data (one RunPython), so it runs here on rows written into
    today's schema, with the historical models of its own state, exactly as `migrate` would
    call it. Migrating the test database back and forth to get there cost ~25 s of CPU."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    (node,) = [
        (app, name)
        for app, name in loader.graph.nodes
        if app == "unsubscribe" and str(name).endswith("_tenant_digests")
    ]
    module = importlib.import_module(f"unsubscribe.migrations.{node[1]}")
    return module, loader.project_state(node, at_end=False).apps


@pytest.mark.django_db
def test_rows_with_the_old_global_digest_are_converted_and_keep_matching(outbox: Path) -> None:
    migration, old_apps = _digest_migration()
    (operation,) = migration.Migration.operations
    assert operation.code is migration.forward and operation.reverse_code is migration.backward
    _old_rows(django_apps)
    with connection.schema_editor(atomic=False) as schema_editor:
        migration.forward(old_apps, schema_editor)

    a, b = Tenant.objects.get(slug="old-a"), Tenant.objects.get(slug="old-b")
    platform = phones.platform_phone_hash(E164)
    for tenant in (a, b):
        mine = phones.tenant_phone_hash(tenant.pk, E164)
        for model, column in TENANT_DIGEST_COLUMNS.items():
            if model in NEWER_THAN_THE_DIGEST_MIGRATION:
                continue
            values = set(model.objects.for_tenant(tenant).values_list(column, flat=True))
            assert values - {""} == {mine}, (model.__name__, values)
        assert set(
            UnsubscribeRequest.history.filter(tenant_id=tenant.pk).values_list("phone_hash", flat=True)
        ) == {mine}
        delivery = WebhookDelivery.objects.for_tenant(tenant).get()
        assert delivery.payload == {"reference": "R", "phone_hash": mine, "phone_masked": "138****8000"}
        clarify = Message.objects.for_tenant(tenant).get()
        assert clarify.dedupe_key == f"inbound-clarify:{mine}:2026-01-20"
        # the code that waited for its number was expired (its hash was keyed with the old digest)
        assert PhoneVerification.objects.for_tenant(tenant).get().expires_at <= timezone.now()
        # the suppression added before still matches, through the API
        key = api_key_create(tenant=tenant, name="after")[1]
        check = api(key).get("/api/v1/suppressions/check", {"phone": NUMBER}).json()
        assert check["suppressed"] is True
        # the old, unkeyed idempotency fingerprint is gone; the key still returns its request
        assert (
            not UnsubscribeRequest.history.filter(tenant_id=tenant.pk)
            .exclude(request_fingerprint="")
            .exists()
        )
        again = api(key).post(
            "/api/v1/unsubscribe-requests",
            {"phone": NUMBER, "channel": "app"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="k1",
        )
        assert again.status_code == 200 and again.json()["reference"] == f"REF-{tenant.slug}", again.content
    # the voice call of a withheld number has no digest, and keeps none
    assert VoiceCall.objects.unscoped(reason="test").filter(caller_hash="").count() == 1
    # the unroutable reply is platform-level: it keeps the platform digest
    assert UnroutedMessage.objects.get().from_hash == platform
    # and the hub finds the person at both tenants
    assert {p.tenant for p in hub_providers(e164=E164)} == {a, b}

    # with digests stored, going back is refused, with the reason
    with pytest.raises(IrreversibleError, match="cannot be turned back"):
        migration.backward(old_apps, None)


def _old_rows(old: Any) -> None:
    """Rows as the code before the migration wrote them (the global digest everywhere), in today's
    schema; `_base_manager`: written as the system, below the scoping."""
    platform = phones.platform_phone_hash(E164)
    now = timezone.now()
    for slug in ("old-a", "old-b"):
        tenant = old.get_model("tenants", "Tenant")._base_manager.create(slug=slug, name=slug)
        t = {"tenant_id": tenant.pk}
        service = old.get_model("unsubscribe", "Service")._base_manager.create(
            **t, name="Offers", code="offers"
        )
        old.get_model("unsubscribe", "Subscription")._base_manager.create(
            **t, service_id=service.pk, phone=E164, phone_hash=platform, phone_masked="138****8000"
        )
        old.get_model("unsubscribe", "SubscriberProfile")._base_manager.create(
            **t, phone=E164, phone_hash=platform, phone_masked="138****8000"
        )
        fields = {
            "phone_hash": platform,
            "phone_masked": "138****8000",
            "channel": "app",
            "verification_method": "partner_assertion",
            "idempotency_key": "k1",
            "request_fingerprint": "f" * 64,  # the old kind: SHA-256 over the number and the ask
        }
        request = old.get_model("unsubscribe", "UnsubscribeRequest")._base_manager.create(
            **t, reference=f"REF-{slug}", **fields
        )
        old.get_model("unsubscribe", "HistoricalUnsubscribeRequest")._base_manager.create(
            **t, id=request.pk, reference=request.reference, history_date=now, history_type="+", **fields
        )
        old.get_model("unsubscribe", "Suppression")._base_manager.create(
            **t, phone_hash=platform, phone_masked="138****8000", scope="*"
        )
        old.get_model("unsubscribe", "SuppressionEvent")._base_manager.create(
            **t, phone_hash=platform, phone_masked="138****8000", scope="*", action="added"
        )
        old.get_model("optout", "PhoneVerification")._base_manager.create(
            **t,
            phone=E164,
            phone_hash=platform,
            phone_masked="138****8000",
            code_hash="c",
            expires_at=now + timedelta(minutes=5),
        )
        old.get_model("inbound", "InboundMessage")._base_manager.create(
            **t,
            provider="generic",
            provider_message_id="m1",
            reference="AAAA-BBBB",
            from_hash=platform,
            from_masked="138****8000",
        )
        old.get_model("voice", "VoiceCall")._base_manager.create(
            **t, provider="generic", call_id="c1", caller_hash=platform
        )
        old.get_model("notifications", "Message")._base_manager.create(
            **t,
            channel="sms",
            event="clarify",
            language="zh-hans",
            to_hash=platform,
            to_masked="138****8000",
            body="?",
            dedupe_key=f"inbound-clarify:{platform}:2026-01-20",
        )
        endpoint = old.get_model("partner", "WebhookEndpoint")._base_manager.create(
            **t, url="https://crm.example.com/hooks", events=["*"], secret="whsec_old"
        )
        old.get_model("partner", "WebhookDelivery")._base_manager.create(
            **t,
            endpoint_id=endpoint.pk,
            event="request.created",
            payload={"reference": "R", "phone_hash": platform, "phone_masked": "138****8000"},
        )
    old.get_model("voice", "VoiceCall")._base_manager.create(
        tenant_id=tenant.pk, provider="generic", call_id="withheld"
    )
    old.get_model("inbound", "UnroutedMessage")._base_manager.create(
        source="platform:x",
        reason="no_match",
        provider="generic",
        provider_message_id="u1",
        from_number=E164,
        from_hash=platform,
        from_masked="138****8000",
    )
