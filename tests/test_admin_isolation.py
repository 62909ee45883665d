"""Tenant isolation in the admin, over every registered tenant-owned model.

Alice administers tenant A, Bob views A, Charlie administers B. New models are
covered automatically: the parametrisation reads the admin registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.urls import reverse
from model_bakery import baker

from tenants.models import Membership, Tenant, TenantAPIKey
from tenants.scoping import TenantOwnedModel

from .conftest import PASSWORD

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.contrib.auth.models import User
    from django.db.models import Model
    from django.test import Client


def tenant_models() -> list[type[Model]]:
    models = [
        model
        for model in admin.site._registry
        if (isinstance(model, type) and issubclass(model, TenantOwnedModel))
        or model in (Membership, TenantAPIKey)
    ]
    return sorted(models, key=lambda m: m._meta.label)


MODELS = tenant_models()

# Not every tenant-owned model needs an admin page, but most do: a missing one is a
# decision, listed here with its reason (and the test fails until it is).
WITHOUT_ADMIN = {
    "optout.PhoneVerification": "one-time codes, with the number in clear until used: no one's to browse",
    "unsubscribe.RequestDeadline": "computed at filing, never edited: shown on its request's list and page",
    "unsubscribe.AuditHead": "the lock row of a tenant's audit chain: its verdict shows on the admin home",
}


def test_every_tenant_owned_model_is_covered() -> None:
    from tenants.scoping import tenant_owned_models

    unregistered = {m._meta.label for m in tenant_owned_models() if m not in admin.site._registry}
    assert unregistered == set(WITHOUT_ADMIN)
    assert len(MODELS) >= 10


def make(model: type[Model], tenant: Tenant) -> Model:
    if model is TenantAPIKey:
        return TenantAPIKey.objects.create_key(name=f"key-{tenant.slug}", tenant=tenant)[0]
    obj = baker.make(model, tenant=tenant, _create_files=True)
    _same_tenant(obj, tenant)
    return obj


def _same_tenant(obj: Model, tenant: Tenant) -> None:
    """baker makes related rows (a step's request, a subscription's service) for tenants of
    their own; real rows share their tenant, and row-level security hides the others' rows."""
    for field in obj._meta.concrete_fields:
        related = getattr(obj, field.name) if field.is_relation and field.many_to_one else None
        if isinstance(related, TenantOwnedModel) and related.tenant_id != tenant.pk:
            type(related)._base_manager.filter(pk=related.pk).update(tenant=tenant)
            related.tenant = tenant
            _same_tenant(related, tenant)


def urls(obj: Model) -> dict[str, str]:
    info = (obj._meta.app_label, obj._meta.model_name)
    return {
        "change": reverse("admin:{}_{}_change".format(*info), args=[quote(obj.pk)]),
        "history": reverse("admin:{}_{}_history".format(*info), args=[quote(obj.pk)]),
        "delete": reverse("admin:{}_{}_delete".format(*info), args=[quote(obj.pk)]),
    }


@pytest.fixture
def login(client: Client) -> Callable[[User], Client]:
    def _login(user: User) -> Client:
        client.force_login(user)
        return client

    return _login


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_admin_of_a_cannot_reach_b_objects(
    model: type[Model],
    tenant_a: Tenant,
    tenant_b: Tenant,
    alice: User,
    charlie: User,
    login: Callable[[User], Client],
) -> None:
    # given an object in each tenant
    mine, theirs = make(model, tenant_a), make(model, tenant_b)
    client = login(alice)
    info = (model._meta.app_label, model._meta.model_name)

    # when Alice lists the model, she sees hers and not theirs
    response = client.get(reverse("admin:{}_{}_changelist".format(*info)))
    assert response.status_code == 200
    body = response.content.decode()
    assert urls(mine)["change"] in body
    assert urls(theirs)["change"] not in body
    assert tenant_b.name not in body  # not in rows, not among filter choices

    # and every URL of B's object answers 404 (or 403), never the object
    for kind, url in urls(theirs).items():
        status = client.get(url).status_code
        assert status in (403, 404), f"{kind} {url} → {status}"
        assert client.post(url, {"post": "yes"}).status_code in (403, 404), f"POST {kind}"
    assert model._base_manager.filter(pk=theirs.pk).exists()

    # a filter on B's tenant shows nothing of B
    response = client.get(reverse("admin:{}_{}_changelist".format(*info)), {"tenant__id__exact": tenant_b.pk})
    assert urls(theirs)["change"] not in response.content.decode()


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_viewer_reads_but_cannot_change(
    model: type[Model], tenant_a: Tenant, bob: User, login: Callable[[User], Client]
) -> None:
    obj = make(model, tenant_a)
    client = login(bob)
    assert client.get(urls(obj)["change"]).status_code == 200
    assert client.get(urls(obj)["history"]).status_code == 200
    assert client.post(urls(obj)["change"], {}).status_code == 403
    assert client.post(urls(obj)["delete"], {"post": "yes"}).status_code == 403
    info = (model._meta.app_label, model._meta.model_name)
    add = client.get(reverse("admin:{}_{}_add".format(*info)))
    assert add.status_code == 403
    assert model._base_manager.filter(pk=obj.pk).exists()


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_superuser_sees_both_tenants(
    model: type[Model], tenant_a: Tenant, tenant_b: Tenant, root: User, login: Callable[[User], Client]
) -> None:
    mine, theirs = make(model, tenant_a), make(model, tenant_b)
    client = login(root)
    info = (model._meta.app_label, model._meta.model_name)
    body = client.get(reverse("admin:{}_{}_changelist".format(*info))).content.decode()
    assert urls(mine)["change"] in body and urls(theirs)["change"] in body
    assert client.get(urls(theirs)["change"]).status_code == 200


def test_tenant_admin_sees_only_own_tenant(
    tenant_a: Tenant, tenant_b: Tenant, alice: User, login: Callable[[User], Client]
) -> None:
    client = login(alice)
    body = client.get(reverse("admin:tenants_tenant_changelist")).content.decode()
    assert tenant_a.name in body and tenant_b.name not in body
    assert client.get(reverse("admin:tenants_tenant_change", args=[tenant_b.pk])).status_code == 404
    assert client.get(reverse("admin:tenants_tenant_history", args=[tenant_b.pk])).status_code == 404


def test_admin_changes_own_tenant_policy_with_history(
    tenant_a: Tenant, alice: User, login: Callable[[User], Client]
) -> None:
    client = login(alice)
    url = reverse("admin:tenants_tenant_change", args=[tenant_a.pk])
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None}
    data.update(
        {
            "sla_hours": 12,
            "name": tenant_a.name,
            "time_zone": "Asia/Shanghai",
            "brand_colour": "#112233",
            "default_language": "zh-hans",
            "erasure_mode": "delete",
            "erasure_delay_hours": 0,
            "record_retention_days": 365,
            "terms_zh": "条款",
            "terms_en": "Terms",
        }
    )
    data.pop("allow_resubscribe", None)
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    tenant_a.refresh_from_db()
    assert tenant_a.sla_hours == 12 and tenant_a.allow_resubscribe is False
    history = client.get(reverse("admin:tenants_tenant_history", args=[tenant_a.pk])).content.decode()
    assert "alice" in history


def test_foreign_key_choices_and_autocomplete_are_scoped(
    tenant_a: Tenant, tenant_b: Tenant, alice: User, login: Callable[[User], Client]
) -> None:
    from unsubscribe.models import Service

    Service.objects.create(tenant=tenant_a, name="Mine", code="mine")
    Service.objects.create(tenant=tenant_b, name="Theirs", code="theirs")
    client = login(alice)
    add = client.get(reverse("admin:unsubscribe_target_add")).content.decode()
    assert tenant_b.name not in add
    auto = client.get(
        "/admin/autocomplete/",
        {"app_label": "unsubscribe", "model_name": "subscription", "field_name": "service", "term": ""},
    )
    assert auto.status_code == 200
    names = [r["text"] for r in auto.json()["results"]]
    assert any("Mine" in n for n in names) and not any("Theirs" in n for n in names)


def test_user_without_membership_sees_no_tenant_data(
    db: None, tenant_a: Tenant, login: Callable[[User], Client]
) -> None:
    from django.contrib.auth import get_user_model

    stranger = get_user_model().objects.create_user("stranger", password=PASSWORD, is_staff=True)
    client = login(stranger)
    assert client.get(reverse("admin:unsubscribe_unsubscriberequest_changelist")).status_code == 403


@pytest.mark.parametrize(
    ("model_label", "secret_field", "value"),
    [
        ("unsubscribe.Target", "signing_secret", "target-secret-xyz"),
        ("notifications.GatewayConfig", "secret", "gw-secret-xyz"),
    ],
)
def test_viewer_never_sees_write_only_secrets(
    model_label: str,
    secret_field: str,
    value: str,
    tenant_a: Tenant,
    bob: User,
    alice: User,
    login: Callable[[User], Client],
) -> None:
    from django.apps import apps

    model = apps.get_model(model_label)
    obj = make(model, tenant_a)
    setattr(obj, secret_field, value)
    obj.save()
    for user in (bob, alice):
        page = login(user).get(urls(obj)["change"]).content.decode()
        assert value not in page


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_actions_never_touch_another_tenants_rows(
    model: type[Model], tenant_a: Tenant, tenant_b: Tenant, alice: User, login: Callable[[User], Client]
) -> None:
    theirs = make(model, tenant_b)
    client = login(alice)
    info = (model._meta.app_label, model._meta.model_name)
    response = client.post(
        reverse("admin:{}_{}_changelist".format(*info)),
        {"action": "delete_selected", "_selected_action": [str(theirs.pk)], "post": "yes"},
    )
    assert response.status_code in (200, 302, 403)
    assert model._base_manager.filter(pk=theirs.pk).exists()
