"""Builders for pipeline tests: a tenant with services, a subscriber, HTTP targets, a request
filed by an agent, and what the file gateway sent."""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypedDict

from django.db import transaction
from django.utils import timezone

from lanzuan import phones
from tenants.models import Tenant
from unsubscribe.models import Service, SubscriberProfile, Subscription, Target, UnsubscribeRequest
from unsubscribe.requests.services import unsubscribe_request_create

NUMBER = "13800138000"
E164 = "+8613800138000"

# The `pipeline` fixture (tests/conftest.py): `with pipeline():` runs what a request causes.
# The context yields the on-commit callbacks it ran, as pytest-django's fixture types them.
Pipeline = Callable[[], AbstractContextManager[list[Callable[[], Any]]]]


class Language(TypedDict):
    """A request's language header, splatted into the test client's calls (`**EN`): typed
    key by key, so that mypy sees it reach **extra and no other parameter."""

    HTTP_ACCEPT_LANGUAGE: str


def subscriber(tenant: Tenant, number: str = NUMBER) -> list[Service]:
    services = [
        Service.objects.unscoped(reason="test").get_or_create(
            tenant=tenant, code=code, defaults={"name": code.title()}
        )[0]
        for code in ("offers", "club")
    ]
    e164 = phones.normalise(number)
    for service in services:
        Subscription.objects.create(
            tenant=tenant,
            service=service,
            phone=e164,
            phone_hash=phones.tenant_phone_hash(tenant.pk, e164),
            phone_masked=phones.mask(e164),
            consent_source="signup",
            consent_at=timezone.now(),
        )
    SubscriberProfile.objects.create(
        tenant=tenant,
        phone=e164,
        phone_hash=phones.tenant_phone_hash(tenant.pk, e164),
        phone_masked=phones.mask(e164),
        display_name="张三",
        interests="流量",
        city="杭州",
    )
    return services


def internal_targets(tenant: Tenant) -> None:
    """Nothing to set up any more: Lanzuan's own records (subscriptions, profiles, …)
    are ended and erased by built-in steps for every tenant. Kept for older callers."""


def http_target(
    tenant: Tenant, url: str, purpose: str = "terminate", max_attempts: int = 5, timeout: int = 5
) -> Target:
    return Target.objects.create(
        tenant=tenant,
        name="Provider CRM",
        purpose=purpose,
        kind="http",
        url=url,
        signing_secret="s3cret-signing-key",
        timeout_seconds=timeout,
        max_attempts=max_attempts,
    )


def file(
    tenant: Tenant,
    phone: str = NUMBER,
    *,
    channel: str = "hotline",
    services: Sequence[str] | None = None,
    idempotency_key: str | None = None,
) -> UnsubscribeRequest:
    """A request filed on the hotline by an agent, committed (its work is queued after commit)."""
    with transaction.atomic():
        filed = unsubscribe_request_create(
            tenant=tenant,
            phone=phone,
            channel=channel,
            verification_method="agent_assertion",
            verification_evidence={"agent_id": "A007"},
            services=services,
            idempotency_key=idempotency_key,
        )
    return filed.request


def outbox_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def thread_like_the_test(target: Callable[..., object], *args: object) -> threading.Thread:
    """A thread that acts as the test itself does: with the test's database scope
    (tenants/db_scope.py). A new Python thread starts with an empty context, which
    row-level security reads as "no tenant's rows" (a server's request thread sets its own)."""
    return threading.Thread(target=contextvars.copy_context().run, args=(target, *args))
