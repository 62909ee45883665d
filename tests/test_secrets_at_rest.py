"""Issue 19 item 15: stored secrets are encrypted at rest (lanzuan/fields.py), keys rotate
with `manage.py rotate_field_keys`, and an API key's hash stays out of its primary key,
history rows, admin URLs and pages, and the throttle's cache keys."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from lanzuan import fields, signing
from notifications.models import GatewayConfig, Message
from notifications.services import message_create, message_deliver
from tenants.models import TenantAPIKey
from tenants.services import api_key_create
from unsubscribe.inbound.models import InboundCredential, PlatformInboundCredential
from unsubscribe.inbound.services import inbound_credential_set, platform_credential_set
from unsubscribe.models import Target
from unsubscribe.partner import webhooks
from unsubscribe.partner.models import WebhookEndpoint
from unsubscribe.voice.models import VoiceCredential
from unsubscribe.voice.services import voice_credential_set

from .httpserver import http_endpoint
from .pipeline_helpers import file, http_target
from .test_inbound import generic_payload, post_generic
from .test_production import production_env
from .workers import ROOT

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.test import Client
    from pytest_django import Settings

    from tenants.models import Tenant

    from .pipeline_helpers import Pipeline

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()

GATEWAY = "gateway-token-plaintext-1111"
INBOUND = "inbound-secret-plaintext-2222"
PLATFORM = "platform-secret-plaintext-3333"
VOICE = "voice-secret-plaintext-4444"
WEBHOOK = "whsec_webhook-plaintext-5555"
TARGET = "target-signing-plaintext-6666"
ALL = (GATEWAY, INBOUND, PLATFORM, VOICE, WEBHOOK, TARGET)

# (table, column) of every secret; the history tables of these models have no such column.
COLUMNS = {
    GATEWAY: ("notifications_gatewayconfig", "secret"),
    INBOUND: ("inbound_inboundcredential", "secret"),
    PLATFORM: ("inbound_platforminboundcredential", "secret"),
    VOICE: ("voice_voicecredential", "secret"),
    WEBHOOK: ("partner_webhookendpoint", "secret"),
    TARGET: ("unsubscribe_target", "signing_secret"),
}


def tables_holding(*needles: str) -> list[str]:
    """Every table and column (history tables and the admin log too) whose text holds a needle."""
    found = []
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            for column in connection.introspection.get_table_description(cursor, table):
                for needle in needles:
                    cursor.execute(
                        f"SELECT COUNT(*) FROM {qn(table)} WHERE CAST({qn(column.name)} AS TEXT) LIKE %s",  # noqa: S608
                        [f"%{needle}%"],
                    )
                    if cursor.fetchone()[0]:
                        found.append(f"{table}.{column.name}")
    return found


def stored(table: str, column: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table}")  # noqa: S608
        (value,) = cursor.fetchone()
    assert isinstance(value, str)
    return value


@pytest.fixture
def every_secret(tenant_a: Tenant, pipeline: Pipeline) -> dict[str, Any]:
    """One row of every model with a secret, made through the services, and changed once so
    each has history rows."""
    gateway = GatewayConfig.objects.create(
        tenant=tenant_a, channel="sms", kind="http", endpoint="https://gw.example/send", secret=GATEWAY
    )
    gateway.sender_id = "Lanzuan"
    gateway.save()
    inbound = inbound_credential_set(tenant=tenant_a, provider="generic", secret=INBOUND)
    inbound_credential_set(tenant=tenant_a, provider="generic", enabled=True)
    platform = platform_credential_set(account="aliyun-main", provider="aliyun", secret=PLATFORM)
    voice = voice_credential_set(tenant=tenant_a, provider="generic", secret=VOICE)
    endpoint, _ = webhooks.webhook_endpoint_create(
        tenant=tenant_a, url="https://crm.example.com/hooks", events=["request.created"], secret=WEBHOOK
    )
    target = Target.objects.create(
        tenant=tenant_a,
        name="CRM",
        purpose="erase",
        url="https://crm.example.com/erase",
        signing_secret=TARGET,
    )
    target.name = "CRM v2"
    target.save()
    return {
        "gateway": gateway,
        "inbound": inbound,
        "platform": platform,
        "voice": voice,
        "endpoint": endpoint,
        "target": target,
    }


# --- at rest ----------------------------------------------------------------------------------


def test_no_table_or_history_table_holds_a_secret_in_clear(every_secret: dict[str, Any]) -> None:
    assert tables_holding(*ALL) == []
    for table, column in COLUMNS.values():
        value = stored(table, column)
        assert value.startswith("fernet1:"), (table, value)
    # the history tables exist, have rows, and no secret column
    for table in (
        "notifications_historicalgatewayconfig",
        "inbound_historicalinboundcredential",
        "inbound_historicalplatforminboundcredential",
        "voice_historicalvoicecredential",
        "partner_historicalwebhookendpoint",
        "unsubscribe_historicaltarget",
    ):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608
            assert cursor.fetchone()[0] >= 1, table
            names = {c.name for c in connection.introspection.get_table_description(cursor, table)}
        assert not names & {"secret", "signing_secret"}, table
    # and the models read the clear text back
    assert GatewayConfig.objects.for_tenant(every_secret["gateway"].tenant).get().secret == GATEWAY
    assert PlatformInboundCredential.objects.get().secret == PLATFORM
    assert InboundCredential.objects.unscoped(reason="test").get().secret == INBOUND
    assert VoiceCredential.objects.unscoped(reason="test").get().secret == VOICE
    assert WebhookEndpoint.objects.unscoped(reason="test").get().secret == WEBHOOK
    assert Target.objects.unscoped(reason="test").get().signing_secret == TARGET


def test_each_encryption_is_fresh_and_an_empty_secret_stays_empty(tenant_a: Tenant) -> None:
    first, second = fields.encrypt("same"), fields.encrypt("same")
    assert first != second and fields.decrypt(first) == fields.decrypt(second) == "same"
    email = GatewayConfig.objects.create(tenant=tenant_a, channel="email", kind="smtp")
    assert stored("notifications_gatewayconfig", "secret") == ""
    assert GatewayConfig.objects.for_tenant(tenant_a).filter(secret="").get() == email


def test_the_app_still_uses_its_secrets(
    client: Client, tenant_a: Tenant, pipeline: Pipeline, settings: Settings
) -> None:
    settings.LANZUAN_PLATFORM_SMS_URL = ""
    with http_endpoint() as gateway_server, http_endpoint() as target_server:
        # a gateway send is signed with the gateway's secret
        GatewayConfig.objects.create(
            tenant=tenant_a, channel="sms", kind="http", endpoint=gateway_server.url, secret=GATEWAY
        )
        message = message_create(tenant=tenant_a, event="clarify", to="+8613800138000", context={})
        assert message_deliver(message.pk).status == Message.Status.SENT
        (sent,) = gateway_server.received
        assert signing.verify(
            GATEWAY, sent.headers["X-Lanzuan-Timestamp"], sent.body, sent.headers["X-Lanzuan-Signature"]
        )
        # a target call is signed with the target's secret
        target = http_target(tenant_a, target_server.url, purpose="erase")
        with pipeline():
            file(tenant_a)
        (call,) = target_server.received
        assert signing.verify(
            target.signing_secret,
            call.headers["X-Lanzuan-Timestamp"],
            call.body,
            call.headers["X-Lanzuan-Signature"],
        )
    # an inbound webhook signed with the stored secret is accepted, another refused
    inbound_credential_set(tenant=tenant_a, provider="generic", secret=INBOUND)
    assert post_generic(client, tenant_a, generic_payload("退订", "g-1"), secret=INBOUND).status_code == 200
    assert post_generic(client, tenant_a, generic_payload("退订", "g-2"), secret="wrong").status_code == 403
    assert tables_holding(GATEWAY, INBOUND, "s3cret-signing-key") == []


def test_webhook_deliveries_are_signed_with_the_decrypted_secret(
    tenant_a: Tenant, pipeline: Pipeline
) -> None:
    with http_endpoint() as receiver:
        webhooks.webhook_endpoint_create(
            tenant=tenant_a, url=receiver.url, events=["request.created"], secret=WEBHOOK
        )
        with pipeline():
            file(tenant_a)
        (delivery,) = [r for r in receiver.received if r.headers.get("X-Lanzuan-Event") == "request.created"]
    assert signing.verify(
        WEBHOOK,
        delivery.headers["X-Lanzuan-Timestamp"],
        delivery.body,
        delivery.headers["X-Lanzuan-Signature"],
    )
    assert tables_holding(WEBHOOK) == []


@pytest.mark.parametrize("who", ["root", "bob"])  # a superuser, and a viewer (read-only pages)
def test_admin_pages_and_api_show_neither_secret_nor_ciphertext(
    client: Client, root: User, bob: User, every_secret: dict[str, Any], api_key_a: str, who: str
) -> None:
    client.force_login(root if who == "root" else bob)
    ciphertexts = [stored(table, column) for table, column in COLUMNS.values()]
    pages = []
    for name, obj in [
        ("notifications_gatewayconfig", every_secret["gateway"]),
        ("inbound_inboundcredential", every_secret["inbound"]),
        ("inbound_platforminboundcredential", every_secret["platform"]),
        ("voice_voicecredential", every_secret["voice"]),
        ("partner_webhookendpoint", every_secret["endpoint"]),
        ("unsubscribe_target", every_secret["target"]),
    ]:
        if who == "bob" and name == "inbound_platforminboundcredential":
            continue  # superusers only
        pages.append(reverse(f"admin:{name}_changelist"))
        pages.append(reverse(f"admin:{name}_change", args=[obj.pk]))
        pages.append(reverse(f"admin:{name}_history", args=[obj.pk]))
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert "fernet1:" not in html, page
        assert not [s for s in ALL if s in html], page
        assert not [c for c in ciphertexts if c[-32:] in html], page

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_a}")
    endpoint = every_secret["endpoint"]
    for url in ("/api/v1/webhooks", f"/api/v1/webhooks/{endpoint.pk}"):
        answer = api.get(url)
        assert answer.status_code == 200, url
        body = answer.content.decode()
        assert "fernet1:" not in body and WEBHOOK not in body and "secret" not in body


def test_the_migrations_encrypt_rows_kept_in_clear_and_reverse(tenant_a: Tenant) -> None:
    """The data step of the migrations (lanzuan.fields.encrypt_column / decrypt_column), on rows
    as they were before: clear text in the column."""
    from django.apps import apps

    GatewayConfig.objects.create(tenant=tenant_a, channel="sms", kind="http", endpoint="https://x.example")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE notifications_gatewayconfig SET secret = %s", [GATEWAY])
    editor = SimpleNamespace(connection=connection)

    fields.encrypt_column("notifications", "GatewayConfig", "secret")(apps, editor)
    assert stored(*COLUMNS[GATEWAY]).startswith("fernet1:") and tables_holding(GATEWAY) == []
    assert GatewayConfig.objects.for_tenant(tenant_a).get().secret == GATEWAY

    fields.decrypt_column("notifications", "GatewayConfig", "secret")(apps, editor)
    assert stored(*COLUMNS[GATEWAY]) == GATEWAY


# --- keys and rotation ------------------------------------------------------------------------


def test_rotation_re_encrypts_under_the_new_key_and_the_old_key_can_go(
    settings: Settings, every_secret: dict[str, Any], tenant_a: Tenant
) -> None:
    # the rows were written under the session's key: a first rotation moves them all to KEY_A
    settings.LANZUAN_FIELD_KEYS = [KEY_A, *settings.LANZUAN_FIELD_KEYS]
    call_command("rotate_field_keys", stdout=open(os.devnull, "w"))  # noqa: SIM115
    settings.LANZUAN_FIELD_KEYS = [KEY_A]
    before = {name: stored(*COLUMNS[name]) for name in ALL}
    for value in before.values():
        Fernet(KEY_A.encode()).decrypt(value[len("fernet1:") :].encode())

    # a row left in clear text (from before the migration) is encrypted by the rotation too
    with connection.cursor() as cursor:
        cursor.execute("UPDATE voice_voicecredential SET secret = %s", [VOICE])

    # new key first, old key still there: everything reads; the command moves every row to B
    settings.LANZUAN_FIELD_KEYS = [KEY_B, KEY_A]
    assert GatewayConfig.objects.for_tenant(tenant_a).get().secret == GATEWAY
    call_command("rotate_field_keys", stdout=open(os.devnull, "w"))  # noqa: SIM115
    after = {name: stored(*COLUMNS[name]) for name in ALL}
    for name, value in after.items():
        assert value != before[name] and value.startswith("fernet1:")
        token = value[len("fernet1:") :].encode()
        assert Fernet(KEY_B.encode()).decrypt(token).decode() == name
        with pytest.raises(InvalidToken):
            Fernet(KEY_A.encode()).decrypt(token)
    assert tables_holding(*ALL) == []

    # the old key dropped: every secret still reads
    settings.LANZUAN_FIELD_KEYS = [KEY_B]
    assert GatewayConfig.objects.for_tenant(tenant_a).get().secret == GATEWAY
    assert VoiceCredential.objects.for_tenant(tenant_a).get().secret == VOICE
    assert PlatformInboundCredential.objects.get().secret == PLATFORM
    assert WebhookEndpoint.objects.for_tenant(tenant_a).get().secret == WEBHOOK
    assert Target.objects.for_tenant(tenant_a).get().signing_secret == TARGET

    # a key dropped too early: reading fails loudly, and the command changes nothing
    settings.LANZUAN_FIELD_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(ImproperlyConfigured):
        GatewayConfig.objects.for_tenant(tenant_a).get()
    with pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("rotate_field_keys", stdout=open(os.devnull, "w"))  # noqa: SIM115
    assert {name: stored(*COLUMNS[name]) for name in ALL} == after


def test_without_a_key_debug_derives_one_and_production_refuses(settings: Settings, tenant_a: Tenant) -> None:
    settings.LANZUAN_FIELD_KEYS = []
    settings.DEBUG = True
    GatewayConfig.objects.create(
        tenant=tenant_a, channel="sms", kind="http", endpoint="https://x.example", secret=GATEWAY
    )
    derived = Fernet(fields.derived_key(settings.SECRET_KEY).encode())
    assert derived.decrypt(stored(*COLUMNS[GATEWAY])[len("fernet1:") :].encode()).decode() == GATEWAY
    assert [m.id for m in fields.check_field_keys()] == ["lanzuan.W001"]

    settings.DEBUG = False
    assert [m.id for m in fields.check_field_keys()] == ["lanzuan.E001"]
    with pytest.raises(ImproperlyConfigured, match="LANZUAN_FIELD_KEYS"):
        GatewayConfig.objects.for_tenant(tenant_a).get()
    settings.LANZUAN_FIELD_KEYS = ["not-a-fernet-key"]
    assert [m.id for m in fields.check_field_keys()] == ["lanzuan.E002"]


def test_check_deploy_fails_without_field_keys(tmp_path: Any) -> None:
    env = production_env(LANZUAN_VAR_DIR=str(tmp_path))
    env.pop("LANZUAN_FIELD_KEYS", None)
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check", "--deploy"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "lanzuan.E001" in result.stderr and "LANZUAN_FIELD_KEYS" in result.stderr


# --- API keys ---------------------------------------------------------------------------------


def test_an_api_keys_hash_stays_out_of_pk_history_admin_and_throttle_keys(
    client: Client, root: User, tenant_a: Tenant
) -> None:
    api_key, key = api_key_create(tenant=tenant_a, name="crm")
    digest = api_key.hashed_key.rpartition("$")[2]
    assert len(digest) == 128 and digest not in str(api_key.pk) and api_key.prefix not in str(api_key.pk)

    # an authenticated, throttled call
    cache.clear()
    window = int(time.time() // 60)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert api.get("/api/v1/webhooks").status_code == 200
    # the default budget is per minute (the call may have started the next one)
    counts = [cache.get(f"throttle:partner:{api_key.pk}:{w}") for w in (window, window + 1)]
    assert any(counts)  # the throttle counts under the random id

    # the admin: the URL and the pages carry the id, never the hash; a change adds history rows
    client.force_login(root)
    change = reverse("admin:tenants_tenantapikey_change", args=[api_key.pk])
    assert digest not in change
    form = {"tenant": tenant_a.pk, "name": "crm v2", "expiry_date_0": "", "expiry_date_1": ""}
    assert client.post(change, form).status_code == 302
    for page in (reverse("admin:tenants_tenantapikey_changelist"), change):
        assert digest not in client.get(page).content.decode()
    history = reverse("admin:tenants_tenantapikey_history", args=[api_key.pk])
    assert digest not in client.get(history).content.decode()
    assert TenantAPIKey.history.filter(id=api_key.pk).count() == 2

    # no table but the key's own hash column holds it (history rows, the admin log included)
    assert tables_holding(digest) == ["tenants_tenantapikey.hashed_key"]
    # nor any cache key or value
    if settings_uses_redis():
        client_ = cache._cache.get_client()  # type: ignore[attr-defined]
        for redis_key in client_.scan_iter(match="*", count=1000):
            assert digest.encode() not in redis_key
            if client_.type(redis_key) == b"string":
                assert digest.encode() not in (client_.get(redis_key) or b"")

    # and the key still authenticates
    assert api.get("/api/v1/webhooks").status_code == 200


def settings_uses_redis() -> bool:
    from django.conf import settings

    return str(settings.CACHES["default"]["BACKEND"]).endswith("RedisCache")
