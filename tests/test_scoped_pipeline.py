"""The pipeline follows the request's scope, for every tenant, through the real entry
points (the opt-out page, the email link, the partner API, management commands) with
Celery eager and on-commit callbacks run: what the confirmation says, what is erased,
what a new tenant ends, what the status page shows, and what a re-subscription keeps."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import time_machine
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from lanzuan import phones
from notifications.models import Message, Template
from notifications.services import message_deliver
from tenants.models import Tenant
from unsubscribe import links
from unsubscribe.models import Service, Step, SubscriberProfile, Subscription, Target, UnsubscribeRequest
from unsubscribe.pipeline.datasources import receipt_text
from unsubscribe.pipeline.services import request_advance
from unsubscribe.requests.services import unsubscribe_request_create
from unsubscribe.suppressions.services import resubscribe

from .pipeline_helpers import E164, NUMBER, http_target

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from django.contrib.auth.models import User

    from .pipeline_helpers import Language, Pipeline

pytestmark = pytest.mark.django_db


ZH: Language = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}
EN: Language = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}
T0 = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # 07:30 the next day in Asia/Shanghai


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    cache.clear()  # rate-limit counters of the pages and the API
    yield
    cache.clear()


def make_subscriber(tenant: Tenant, *codes: str) -> list[Service]:
    chosen = []
    for code in codes:
        service, _created = Service.objects.unscoped(reason="test").get_or_create(
            tenant=tenant,
            code=code,
            defaults={"name": {"deals": "Daily deals", "club": "Members club"}[code]},
        )
        Subscription.objects.create(
            tenant=tenant,
            service=service,
            phone=E164,
            phone_hash=phones.tenant_phone_hash(tenant.pk, E164),
            phone_masked=phones.mask(E164),
            consent_source="signup",
            consent_at=T0 - timedelta(days=30),
        )
        chosen.append(service)
    SubscriberProfile.objects.create(
        tenant=tenant,
        phone=E164,
        phone_hash=phones.tenant_phone_hash(tenant.pk, E164),
        phone_masked=phones.mask(E164),
        display_name="张三",
        interests="流量",
        city="杭州",
    )
    return chosen


def sms_to_number(outbox: Path) -> list[str]:
    lines = [json.loads(line) for line in outbox.read_text().splitlines()] if outbox.exists() else []
    return [line["body"] for line in lines if line["to"] == E164]


def web_optout(
    client: Client, tenant: Tenant, outbox: Path, scope: dict[str, str | list[str]], headers: Language
) -> UnsubscribeRequest:
    """The opt-out page: number, the code from the SMS, the choice and the confirmation.
    Call it inside `pipeline()`: the request's work runs when that block ends."""
    client.post(
        reverse("unsubscribe-start", args=[tenant.slug]), {"country": "86", "phone": NUMBER}, **headers
    )
    for message in Message.objects.for_tenant(tenant).filter(event="otp", status=Message.Status.QUEUED):
        message_deliver(message.pk)  # the code SMS (its task would run after the block)
    match = re.search(r"\b(\d{6})\b", sms_to_number(outbox)[-1])
    assert match is not None
    code = match.group(1)
    client.post(reverse("optout-code", args=[tenant.slug]), {"action": "verify", "code": code}, **headers)
    response = client.post(
        reverse("optout-choose", args=[tenant.slug]), {**scope, "confirm": "on"}, **headers
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return UnsubscribeRequest.objects.for_tenant(tenant).get()


def subscription(tenant: Tenant, code: str) -> Subscription:
    return Subscription.objects.for_tenant(tenant).get(service__code=code)


def status_page(client: Client, request: UnsubscribeRequest, headers: Language) -> str:
    return client.get(links.status_url(request, absolute=False), **headers).content.decode()


# --- item 4: the confirmation says what stopped and what continues --------------------------------


def test_partial_web_optout_confirmation_names_the_stopped_and_the_continuing_service(
    client: Client, tenant_a: Tenant, outbox: Path, pipeline: Pipeline
) -> None:
    # given a person with two services
    deals, _club = make_subscriber(tenant_a, "deals", "club")

    # when they stop one of them on the page, in Chinese
    with pipeline():
        request = web_optout(client, tenant_a, outbox, {"scope": "some", "services": [deals.code]}, ZH)

    # then the one confirmation names what stopped and what goes on, and claims nothing more
    request.refresh_from_db()
    assert request.state == "completed"
    confirmation = sms_to_number(outbox)[-1]
    assert request.reference in confirmation
    assert (
        "已停止向本号码发送：Daily deals" in confirmation and "仍在发送的服务：Members club" in confirmation
    )
    assert "您已退订营销信息" not in confirmation and "即日起不再发送" not in confirmation
    # sent after the termination step succeeded: ended, not "being ended" (review F12)
    assert "相关业务正在终止" in confirmation  # true when sent: terminations may still be running


def test_email_one_click_confirmation_names_the_service_and_what_continues(
    tenant_a: Tenant, outbox: Path, pipeline: Pipeline
) -> None:
    # given a person with two services, the marketing email of one of them
    deals, _club = make_subscriber(tenant_a, "deals", "club")
    # when the mailbox provider posts the one-click unsubscribe
    with pipeline():
        response = Client(enforce_csrf_checks=True).post(
            links.email_unsubscribe_path(subscription(tenant_a, "deals")),
            {"List-Unsubscribe": "One-Click"},
        )
    assert response.status_code == 200

    # then
    confirmation = sms_to_number(outbox)[-1]
    assert "已停止向本号码发送：Daily deals。仍在发送的服务：Members club。" in confirmation
    assert "您已退订营销信息" not in confirmation
    assert subscription(tenant_a, "club").status == "active"


def test_all_marketing_confirmation_says_all_and_nothing_continues(
    client: Client, tenant_a: Tenant, outbox: Path, pipeline: Pipeline
) -> None:
    make_subscriber(tenant_a, "deals", "club")
    with pipeline():
        web_optout(client, tenant_a, outbox, {"scope": "all"}, EN)
    confirmation = sms_to_number(outbox)[-1]
    assert "Stopped now: all marketing. Still sent: none." in confirmation
    assert "Ending services; data to be erased." in confirmation


def test_tenant_template_can_use_the_scope_variables(
    alice: User, client: Client, tenant_a: Tenant, outbox: Path, pipeline: Pipeline
) -> None:
    # given the tenant's own confirmation text, saved in the admin, using both variables
    deals, _club = make_subscriber(tenant_a, "deals", "club")
    client.force_login(alice)
    response = client.post(
        reverse("admin:notifications_template_add"),
        {
            "tenant": tenant_a.pk,
            "event": "unsubscribe_completed",
            "channel": "sms",
            "language": "zh-hans",
            "subject": "",
            "body": "【{tenant_name}】已停止：{stopped}。照常：{continuing}。{status_url}",
        },
        **EN,
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Template.objects.for_tenant(tenant_a).count() == 1

    # when a partner files a one-service opt-out
    with pipeline():
        unsubscribe_request_create(
            tenant=tenant_a,
            phone=NUMBER,
            channel="app",
            verification_method="partner_assertion",
            services=["deals"],
        )

    # then the confirmation is the tenant's text with the scope filled in
    assert sms_to_number(outbox)[-1].startswith("【运营商 A】已停止：Daily deals。照常：Members club。")


# --- item 5: erasure follows the scope --------------------------------------------------------------


def test_service_only_optout_keeps_the_profile_while_another_subscription_is_active(
    client: Client, tenant_a: Tenant, outbox: Path, pipeline: Pipeline
) -> None:
    # given a person with two services and a marketing profile
    deals, _club = make_subscriber(tenant_a, "deals", "club")

    # when they stop one service on the page
    with pipeline():
        request = web_optout(client, tenant_a, outbox, {"scope": "some", "services": [deals.code]}, EN)

    # then that subscription is ended and loses the number; the other one and the profile stay
    request.refresh_from_db()
    assert request.state == "completed"
    ended = subscription(tenant_a, "deals")
    assert ended.status == "ended" and ended.phone == ""
    kept = subscription(tenant_a, "club")
    assert kept.status == "active" and kept.phone == E164
    profile = SubscriberProfile.objects.for_tenant(tenant_a).get()
    assert profile.display_name == "张三" and profile.phone == E164
    # and the receipt and the status page say so, in words, without the number
    step = Step.objects.unscoped(reason="test").get(
        request=request, kind="erase", source="subscriber_profile"
    )
    # (stored in the tenant's language; the lines read in any)
    assert "已保留营销资料：仍有 1 项其他订阅有效。" in step.receipt
    assert "Kept the marketing profile: 1 other subscription is still active." in receipt_text(
        step.receipt_lines, language="en"
    )
    page = status_page(client, request, EN)
    assert "Kept for the services you still receive: your marketing profile" in page
    assert "Removed the number from 1 ended subscription." in page
    assert "The number is kept only for the services you still receive" in page
    assert NUMBER not in page and NUMBER not in "".join(s.receipt for s in request.steps.all())


def test_all_marketing_optout_erases_the_profile(
    client: Client, tenant_a: Tenant, outbox: Path, pipeline: Pipeline
) -> None:
    make_subscriber(tenant_a, "deals", "club")

    with pipeline():
        request = web_optout(client, tenant_a, outbox, {"scope": "all"}, EN)

    assert not SubscriberProfile.objects.for_tenant(tenant_a).exists()
    assert set(Subscription.objects.for_tenant(tenant_a).values_list("status", "phone")) == {("ended", "")}
    page = status_page(client, request, EN)
    assert "Personal data cleaned: your marketing profile" in page
    assert "Deleted the marketing profile." in page


def test_stopping_the_last_active_service_erases_the_profile(
    client: Client, tenant_a: Tenant, outbox: Path, pipeline: Pipeline
) -> None:
    (deals,) = make_subscriber(tenant_a, "deals")

    with pipeline():
        web_optout(client, tenant_a, outbox, {"scope": "some", "services": [deals.code]}, EN)

    assert not SubscriberProfile.objects.for_tenant(tenant_a).exists()


def test_anonymising_tenant_anonymises_instead(
    client: Client, tenant_a: Tenant, outbox: Path, pipeline: Pipeline
) -> None:
    tenant_a.erasure_mode = Tenant.ErasureMode.ANONYMISE
    tenant_a.save()
    make_subscriber(tenant_a, "deals")

    with pipeline():
        request = web_optout(client, tenant_a, outbox, {"scope": "all"}, EN)

    profile = SubscriberProfile.objects.for_tenant(tenant_a).get()
    assert (profile.phone, profile.display_name, profile.city) == ("", "", "")
    assert "Anonymised the marketing profile." in status_page(client, request, EN)


# --- item 6: a tenant made with create_tenant ends its own records ---------------------------------


def test_tenant_made_by_create_tenant_ends_its_subscriptions(
    client: Client, outbox: Path, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a tenant made by the command, with a subscriber and no targets at all
    call_command("create_tenant", "acme", "--name", "Acme Mobile", "--kind", "operator")
    call_command("create_api_key", "acme", "--name", "app backend")
    key = capsys.readouterr().out.strip().splitlines()[-1]
    acme = Tenant.objects.get(slug="acme")
    make_subscriber(acme, "deals", "club")
    assert not Target.objects.for_tenant(acme).exists()

    # when its app backend files an all-marketing opt-out
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    with pipeline():
        response = api.post(
            "/api/v1/unsubscribe-requests", {"phone": NUMBER, "channel": "app"}, format="json"
        )
    assert response.status_code == 201, response.content

    # then Lanzuan's own records are ended and erased, each step with a receipt
    request = UnsubscribeRequest.objects.for_tenant(acme).get()
    assert request.state == "completed"
    assert set(Subscription.objects.for_tenant(acme).values_list("status", flat=True)) == {"ended"}
    assert not SubscriberProfile.objects.for_tenant(acme).exists()
    receipts = {(s.kind, s.source): s.receipt for s in request.steps.all()}
    assert receipts[("terminate", "subscriptions")] == "已终止 2 项订阅。"  # the tenant's language
    ended = request.steps.get(kind="terminate", source="subscriptions")
    assert receipt_text(ended.receipt_lines, language="en") == "Ended 2 subscriptions."
    assert ("erase", "notifications.messages") in receipts  # the platform's copies are steps too
    detail = api.get(f"/api/v1/unsubscribe-requests/{request.reference}").json()
    assert {"kind": "terminate", "status": "succeeded"}.items() <= detail["steps"][0].items()
    # and the status page shows those steps by their public names
    page = status_page(client, request, EN)
    assert "Services ended: your subscriptions" in page and "Ended 2 subscriptions." in page


def test_seed_demo_adds_no_targets_and_its_tenants_end_their_records(
    outbox: Path, pipeline: Pipeline
) -> None:
    call_command("seed_demo")
    shop = Tenant.objects.get(slug="demo-shop")
    assert not Target.objects.unscoped(reason="test").exists()

    with pipeline():
        request = unsubscribe_request_create(
            tenant=shop, phone=NUMBER, channel="app", verification_method="partner_assertion"
        ).request

    # each of Lanzuan's sources ran once (no double run through old internal targets)
    sources = list(request.steps.exclude(source="").values_list("kind", "source"))
    assert len(sources) == len(set(sources))
    assert set(
        Subscription.objects.for_tenant(shop)
        .filter(phone_hash=request.phone_hash)
        .values_list("status", flat=True)
    ) == {"ended"}


def test_a_request_planned_before_the_built_in_steps_gets_them(
    tenant_a: Tenant, outbox: Path, pipeline: Pipeline
) -> None:
    # given a request planned by the old code: a confirmation step only (no targets)
    make_subscriber(tenant_a, "deals")
    request = unsubscribe_request_create(
        tenant=tenant_a, phone=NUMBER, channel="app", verification_method="partner_assertion"
    ).request
    request.steps.exclude(kind="confirm").delete()

    # when a worker advances it
    with pipeline():
        request_advance(request.pk)

    # then the missing steps were added and ran
    request.refresh_from_db()
    assert request.state == "completed"
    assert subscription(tenant_a, "deals").status == "ended"


# --- item 11: public labels on the status page -----------------------------------------------------


def test_status_page_shows_public_labels_never_internal_names(
    client: Client, tenant_a: Tenant, outbox: Path, pipeline: Pipeline
) -> None:
    # given a provider CRM target with its own public names, and the built-in sources
    make_subscriber(tenant_a, "deals")
    crm = http_target(tenant_a, "http://10.20.30.40/end")  # never called: it fails at once
    crm.name = "CRM-PROD-7 (Lanzuan subscriptions)"
    crm.public_label_zh = "会员系统"
    crm.public_label_en = "the membership system"
    crm.save()

    with pipeline():
        request = web_optout(client, tenant_a, outbox, {"scope": "all"}, EN)

    english, chinese = status_page(client, request, EN), status_page(client, request, ZH)
    assert "Services ended: the membership system" in english
    assert "会员系统" in chinese
    assert "Services ended: your subscriptions" in english
    for page in (english, chinese):
        assert "CRM-PROD-7" not in page and "Lanzuan subscriptions" not in page
        assert "Lanzuan subscriber profile" not in page and "(Lanzuan)" not in page


def test_target_without_public_label_shows_a_neutral_name(
    client: Client, tenant_a: Tenant, outbox: Path
) -> None:
    http_target(tenant_a, "https://crm.example.com/end", purpose="erase")
    request = unsubscribe_request_create(
        tenant=tenant_a, phone=NUMBER, channel="app", verification_method="partner_assertion"
    ).request
    page = status_page(client, request, EN)
    assert "Personal data cleaned: the provider&#x27;s systems" in page and "Provider CRM" not in page


def test_admin_target_form_takes_public_labels(alice: User, client: Client, tenant_a: Tenant) -> None:
    client.force_login(alice)
    response = client.post(
        reverse("admin:unsubscribe_target_add"),
        {
            "tenant": tenant_a.pk,
            "name": "CRM",
            "public_label_zh": "会员系统",
            "public_label_en": "the membership system",
            "purpose": "terminate",
            "kind": "http",
            "url": "http://127.0.0.1:40009/end",
            "signing_secret": "s3cret-signing-key",
            "timeout_seconds": 10,
            "max_attempts": 5,
            "is_active": "on",
        },
        **EN,
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    target = Target.objects.for_tenant(tenant_a).get()
    assert (target.public_label("zh-hans"), target.public_label("en")) == (
        "会员系统",
        "the membership system",
    )


# --- item 3 (pipeline part): a re-subscription after the request started is kept ------------------


def test_subscription_renewed_after_the_request_started_is_not_ended(
    tenant_a: Tenant, outbox: Path, pipeline: Pipeline
) -> None:
    make_subscriber(tenant_a, "deals", "club")
    # given a request to stop "deals", received at T0, whose pipeline has not run yet
    with time_machine.travel(T0, tick=False):
        request = unsubscribe_request_create(
            tenant=tenant_a,
            phone=NUMBER,
            channel="app",
            verification_method="partner_assertion",
            services=["deals"],
        ).request
    # and the person subscribing to "deals" again five minutes later
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        resubscribe(tenant=tenant_a, phone=NUMBER, channel="sms", services=["deals"])

    # when the pipeline runs
    with time_machine.travel(T0 + timedelta(minutes=6), tick=True), pipeline():
        request_advance(request.pk)

    # then the renewed subscription stays active with its number, and the receipt says why
    renewed = subscription(tenant_a, "deals")
    assert renewed.status == "active" and renewed.phone == E164
    assert subscription(tenant_a, "club").status == "active"
    step = Step.objects.unscoped(reason="test").get(request=request, kind="terminate", source="subscriptions")
    assert "1 项订阅保持有效：这些订阅在申请之后已续订。" in step.receipt  # the tenant's language
    assert "Left 1 subscription active: it was renewed after the request." in receipt_text(
        step.receipt_lines, language="en"
    )


@pytest.mark.django_db
def test_migration_turns_internal_targets_into_built_in_steps() -> None:
    """The migration's own function, on rows in the shape they had before it, with the models of its
    state, as `migrate` calls it. The one column a later migration dropped (Target.internal_source)
    comes back for the test's transaction; migrating the database back to 0013 and forward again
    cost ~12 s of CPU."""
    import importlib

    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    migration = importlib.import_module("unsubscribe.migrations.0014_pipe_internal_targets_to_steps")
    old = (
        MigrationLoader(None, ignore_no_migrations=True)
        .project_state(("unsubscribe", "0014_pipe_internal_targets_to_steps"), at_end=False)
        .apps
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE unsubscribe_target ADD COLUMN internal_source varchar(50) NOT NULL DEFAULT ''"
        )
    tenant = Tenant.objects.create(slug="old", name="Old")
    request = UnsubscribeRequest._base_manager.create(
        tenant=tenant, reference="OLD1-OLD1", phone_hash="h", phone_masked="138****8000", channel="app"
    )
    for purpose, source in (
        ("terminate", "subscriptions"),
        ("erase", "subscriptions"),
        ("erase", "subscriber_profile"),
    ):
        target = Target._base_manager.create(
            tenant=tenant, name=f"Lanzuan {source}", purpose=purpose, kind="internal"
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE unsubscribe_target SET internal_source = %s WHERE id = %s", [source, target.pk]
            )
        Step._base_manager.create(
            tenant=tenant,
            request=request,
            kind=purpose,
            target=target,
            target_name=target.name,
            status="succeeded",
            receipt="ended 2 subscription(s)",
        )
    crm = Target._base_manager.create(tenant=tenant, name="CRM", purpose="terminate", kind="http")
    Step._base_manager.create(tenant=tenant, request=request, kind="terminate", target=crm)

    # when the migration runs
    (operation,) = migration.Migration.operations
    assert operation.code is migration.internal_targets_to_steps
    with connection.schema_editor(atomic=False) as schema_editor:
        migration.internal_targets_to_steps(old, schema_editor)

    # then the internal targets are gone, their steps are built-in steps with their receipts
    assert list(Target.objects.unscoped(reason="test").values_list("name", flat=True)) == ["CRM"]
    steps = Step.objects.unscoped(reason="test").filter(request_id=request.pk)
    assert set(steps.filter(target__isnull=True).values_list("kind", "source")) == {
        ("terminate", "subscriptions"),
        ("erase", "subscriptions"),
        ("erase", "subscriber_profile"),
    }
    assert steps.get(kind="terminate", source="subscriptions").receipt == "ended 2 subscription(s)"
    assert steps.get(target__name="CRM").source == ""
