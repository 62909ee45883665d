"""Shared fixtures: two tenants (A and B) and the three actors of every isolation test.

Alice administers tenant A, Bob is a viewer on A, Charlie administers tenant B.
A superuser sees both.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from tenants.models import Membership, Role, Tenant
from tenants.services import api_key_create

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def tenant_a(db: None) -> Tenant:
    return Tenant.objects.create(slug="tenant-a", name="运营商 A", kind=Tenant.Kind.OPERATOR)


@pytest.fixture
def tenant_b(db: None) -> Tenant:
    return Tenant.objects.create(slug="tenant-b", name="Platform B", kind=Tenant.Kind.PLATFORM)


def make_member(username: str, tenant: Tenant, role: str):
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, is_staff=True)
    Membership.objects.create(user=user, tenant=tenant, role=role)
    return user


@pytest.fixture
def alice(tenant_a: Tenant):
    return make_member("alice", tenant_a, Role.ADMIN)


@pytest.fixture
def bob(tenant_a: Tenant):
    return make_member("bob", tenant_a, Role.VIEWER)


@pytest.fixture
def agent_amy(tenant_a: Tenant):
    return make_member("amy", tenant_a, Role.AGENT)


@pytest.fixture
def charlie(tenant_b: Tenant):
    return make_member("charlie", tenant_b, Role.ADMIN)


@pytest.fixture
def root(db: None):
    return get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)


@pytest.fixture
def api_key_a(tenant_a: Tenant) -> str:
    return api_key_create(tenant=tenant_a, name="tests")[1]


@pytest.fixture
def api_key_b(tenant_b: Tenant) -> str:
    return api_key_create(tenant=tenant_b, name="tests")[1]


@pytest.fixture
def outbox(settings, tmp_path):
    """The file gateway's outbox, isolated per test; returns its path."""
    path = tmp_path / "outbox.jsonl"
    settings.OUTBOX_PATH = path
    return path


@pytest.fixture
def eager_celery():
    """Celery tasks run in-process when dispatched (retries too, without waiting), for
    flows whose effect a test checks right away; integration tests use a real worker."""
    from lanzuan.celery import app

    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False
