"""Row-level security, the second wall (tenants/db_scope.py, tenants/row_security.py).

Whatever Python does (raw SQL, a forgotten scope, a library reading every row),
PostgreSQL itself shows a request only its tenants' rows: the API the key's tenant, the
admin the staff member's tenants, a thread that set nothing no rows at all.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import RequestFactory
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response

from tenants import db_scope
from tenants.api import TenantScopedAPIView
from tenants.middleware import DatabaseScopeMiddleware
from tenants.row_security import POLICY
from unsubscribe.models import Suppression

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.test import Client

    from tenants.models import Tenant

pytestmark = [
    pytest.mark.django_db(transaction=False),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is PostgreSQL's"),
]

RAW_READ = "SELECT tenant_id, phone_masked FROM unsubscribe_suppression ORDER BY tenant_id"


def _raw_rows() -> list[tuple[int, str]]:
    with connection.cursor() as cursor:
        cursor.execute(RAW_READ)
        return [(int(t), str(m)) for t, m in cursor.fetchall()]


class RawSuppressionsView(TenantScopedAPIView):
    """A deliberately careless endpoint: raw SQL over every tenant's suppressions."""

    def get(self, request: Request) -> Response:
        return Response({"rows": [list(row) for row in _raw_rows()]})


def raw_suppressions_page(request: HttpRequest, slug: str = "") -> HttpResponse:
    """A deliberately careless page of one tenant's: raw SQL over every tenant's suppressions."""
    return JsonResponse({"rows": [list(row) for row in _raw_rows()]})


urlpatterns = [
    path("api/v1/test-raw-suppressions", RawSuppressionsView.as_view()),
    path("t/<slug:slug>/test-raw-suppressions", raw_suppressions_page),
    path("hub/test-raw-suppressions", raw_suppressions_page),
]


@pytest.fixture
def suppressions(tenant_a: Tenant, tenant_b: Tenant) -> dict[str, int]:
    Suppression.objects.create(tenant=tenant_a, phone_hash="a" * 64, phone_masked="138****0001")
    Suppression.objects.create(tenant=tenant_b, phone_hash="b" * 64, phone_masked="139****0002")
    return {"a": tenant_a.pk, "b": tenant_b.pk}


def test_every_tenant_table_has_a_forced_policy() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                   EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = %s)
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relkind = 'r'
               AND EXISTS (SELECT 1 FROM pg_attribute a
                            WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
            """,
            [POLICY],
        )
        tables = cursor.fetchall()
    assert len(tables) >= 30  # every tenant-owned model and its history table
    unprotected = [
        name for name, enabled, forced, has_policy in tables if not (enabled and forced and has_policy)
    ]
    assert unprotected == []


@pytest.mark.skipif(
    os.environ.get("CI") != "true", reason="CI connects as an ordinary role; a developer may not"
)
def test_ci_connects_as_a_role_the_policies_bind() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (False, False)


@pytest.mark.urls(__name__)
def test_a_raw_sql_read_through_the_api_returns_only_the_keys_tenant(
    client: Client, api_key_a: str, suppressions: dict[str, int]
) -> None:
    response = client.get("/api/v1/test-raw-suppressions", HTTP_AUTHORIZATION=f"Api-Key {api_key_a}")
    assert response.status_code == 200
    assert response.json()["rows"] == [[suppressions["a"], "138****0001"]]
    # The test's own (system) scope is back once the request is over.
    assert {t for t, _m in _raw_rows()} == {suppressions["a"], suppressions["b"]}


@pytest.mark.urls(__name__)
def test_a_tenants_public_page_reads_only_that_tenants_rows(
    client: Client, tenant_a: Tenant, suppressions: dict[str, int]
) -> None:
    response = client.get(f"/t/{tenant_a.slug}/test-raw-suppressions")
    assert response.json()["rows"] == [[suppressions["a"], "138****0001"]]
    assert client.get("/t/no-such-tenant/test-raw-suppressions").json()["rows"] == []
    # the hub acts for the platform: one number, every provider
    assert len(client.get("/hub/test-raw-suppressions").json()["rows"]) == 2


def _through_middleware(request: HttpRequest) -> dict[str, Any]:
    def view(_request: HttpRequest) -> HttpResponse:
        return JsonResponse({"rows": [list(row) for row in _raw_rows()]})

    response = DatabaseScopeMiddleware(view)(request)
    import json  # noqa: PLC0415 (only this helper decodes)

    return dict(json.loads(response.content))


def test_a_raw_sql_read_in_the_admin_returns_only_the_staff_members_tenants(
    alice: User, charlie: User, root: User, suppressions: dict[str, int]
) -> None:
    request = RequestFactory().get("/admin/unsubscribe/suppression/")
    request.user = alice
    assert _through_middleware(request)["rows"] == [[suppressions["a"], "138****0001"]]
    request.user = charlie
    assert _through_middleware(request)["rows"] == [[suppressions["b"], "139****0002"]]
    request.user = root  # a superuser acts for the platform
    assert len(_through_middleware(request)["rows"]) == 2


def test_the_admin_login_page_sees_no_tenants_rows(suppressions: dict[str, int]) -> None:
    from django.contrib.auth.models import AnonymousUser  # noqa: PLC0415 (one test needs it)

    request = RequestFactory().get("/admin/login/")
    request.user = AnonymousUser()
    assert _through_middleware(request)["rows"] == []


@pytest.mark.django_db(transaction=True)
def test_a_thread_that_set_no_scope_sees_nothing(suppressions: dict[str, int]) -> None:
    """Fail closed: a new thread (a server's request thread before the middleware, a
    library's worker) starts with no tenant. The rows are committed: only the policy hides them."""
    seen: list[Any] = []

    def read() -> None:
        try:
            seen.append(_raw_rows())
        finally:
            connection.close()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    assert seen == [[]]


def test_a_scoped_write_cannot_create_another_tenants_row(tenant_a: Tenant, tenant_b: Tenant) -> None:
    with (
        db_scope.tenants_scope([tenant_a.pk]),
        pytest.raises(DatabaseError, match="row-level security"),
        transaction.atomic(),
    ):
        Suppression.objects.create(tenant=tenant_b, phone_hash="c" * 64, phone_masked="137****0003")


def test_a_scope_sent_inside_a_rolled_back_savepoint_is_sent_again(suppressions: dict[str, int]) -> None:
    """PostgreSQL undoes a set_config made inside a savepoint that rolls back; the backend
    must send the scope again rather than trust what it sent."""
    a, b = suppressions["a"], suppressions["b"]
    with db_scope.tenants_scope([b]):
        assert _raw_rows() == [(b, "139****0002")]
        with db_scope.tenants_scope([a]):
            seen: list[list[tuple[int, str]]] = []

            def read_in_a_savepoint_that_rolls_back() -> None:
                with transaction.atomic():
                    seen.append(_raw_rows())  # 'a' is sent inside the savepoint
                    raise RuntimeError

            with pytest.raises(RuntimeError):
                read_in_a_savepoint_that_rolls_back()
            assert seen == [[(a, "138****0001")]]
            assert _raw_rows() == [(a, "138****0001")]  # the server went back to 'b'
