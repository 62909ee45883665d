"""Per web request, which tenants' rows the database lets the request see (tenants/db_scope.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from . import db_scope
from .models import Tenant
from .scoping import request_tenant_ids

ADMIN_PREFIX = "/admin/"
API_PREFIX = "/api/"


def _admin_scope(request: HttpRequest) -> str:
    """The admin acts for the signed-in staff member: a superuser every tenant, staff their
    tenants, anyone else (the login page) none."""
    user = request.user
    if not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return db_scope.NOTHING
    if getattr(user, "is_superuser", False):
        return db_scope.SYSTEM
    with db_scope.system_scope(reason="reading the staff member's memberships"):
        return db_scope.tenants_value(request_tenant_ids(request))


def request_scope(request: HttpRequest) -> tuple[str, str]:
    """(value of app.tenant_id, reason) for this request."""
    path = request.path_info
    if path.startswith(ADMIN_PREFIX):
        return _admin_scope(request), "the admin, for a superuser"
    if path.startswith(API_PREFIX):
        # Nothing until the API key is known; TenantScopedAPIView narrows to its tenant.
        return db_scope.NOTHING, ""
    # The hub and provider webhooks act for the platform: every provider at the hub; a reply on
    # one tenant's URL may be to another tenant's number, which is found and flagged. A tenant's
    # own pages (/t/<slug>/…) are narrowed to it in process_view.
    return db_scope.SYSTEM, "the hub and provider webhooks act for the platform"


# The URL keyword of the person's pages that names their tenant.
TENANT_URL_KWARGS = ("slug",)


class DatabaseScopeMiddleware:
    """Sets `app.tenant_id` for the request (after AuthenticationMiddleware) and resets it after,
    streaming responses included: their rows are read while the body is sent."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        value, reason = request_scope(request)
        with _scope(value, reason):
            response = self.get_response(request)
        if isinstance(response, StreamingHttpResponse):
            response.streaming_content = _scoped_stream(response.streaming_content, value, reason)
        return response

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: dict[str, Any]
    ) -> None:
        """A tenant's pages (`/t/<slug>/…`, the email link included) see only that tenant's rows
        (an unknown slug: none); reset with the request's scope in __call__."""
        slug = next((kwargs[k] for k in TENANT_URL_KWARGS if k in kwargs), None)
        if slug is None or request.path_info.startswith((ADMIN_PREFIX, API_PREFIX)):
            return
        tenant_id = Tenant.objects.filter(slug=slug).values_list("pk", flat=True).first()
        db_scope.enter_tenants([tenant_id] if tenant_id is not None else [])


def _scope(value: str, reason: str) -> Any:
    if value == db_scope.SYSTEM:
        return db_scope.system_scope(reason=reason)
    return db_scope.tenants_scope(int(t) for t in value.split(",") if t)


def _scoped_stream(chunks: Iterable[Any], value: str, reason: str) -> Iterator[Any]:
    iterator = iter(chunks)
    while True:
        with _scope(value, reason):
            try:
                chunk = next(iterator)
            except StopIteration:
                return
        yield chunk
