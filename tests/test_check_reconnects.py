"""A check on a database connection PostgreSQL has closed (a restart, a failover, an idle
timeout, `pg_terminate_backend`) is answered on a new connection, never with a 500."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from rest_framework.test import APIClient

from tenants.models import Tenant
from unsubscribe.suppressions import index

from .workers import test_database_url as database_url

CHECK = "/api/v1/suppressions/check"


def _terminate_this_connection() -> None:
    """Close the server side of Django's connection from another connection."""
    pid = connection.connection.info.backend_pid
    with psycopg.connect(database_url(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.django_db(transaction=True)
def test_a_single_check_on_a_closed_connection_is_answered(api_key_a: str) -> None:
    api = APIClient(HTTP_AUTHORIZATION=f"Api-Key {api_key_a}")
    assert api.get(CHECK, {"phone": "+8613800138000"}).status_code == 200
    _terminate_this_connection()
    response = api.get(CHECK, {"phone": "+8613800138000"})
    assert response.status_code == 200, response.content
    assert response.json()["suppressed"] is False


@pytest.mark.django_db(transaction=True)
def test_a_bulk_check_on_a_closed_connection_is_answered(api_key_a: str, tenant_a: Tenant) -> None:
    index.index_refresh(tenant_a.pk, full=True)
    index.index_refresh(index.PLATFORM, full=True)
    api = APIClient(HTTP_AUTHORIZATION=f"Api-Key {api_key_a}")
    body = {"phones": ["+8613800138000", "13800138001"]}
    assert api.post(CHECK, body, format="json").status_code == 200
    _terminate_this_connection()
    response = api.post(CHECK, body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["count"] == 2
