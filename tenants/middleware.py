"""Per web request, which tenants' rows the database lets the request see (tenants/db_scope.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from . import db_scope
from .scoping import tenant_ids_for_user

ADMIN_PREFIX = "/admin/"
API_PREFIX = "/api/"


def _admin_scope(user: Any) -> str:
    """The admin acts for the signed-in staff member: a superuser every tenant, staff their
    tenants, anyone else (the login page) none."""
    if not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return db_scope.NOTHING
    if getattr(user, "is_superuser", False):
        return db_scope.SYSTEM
    with db_scope.system_scope(reason="reading the staff member's memberships"):
        return db_scope.tenants_value(tenant_ids_for_user(user))


def request_scope(request: HttpRequest) -> tuple[str, str]:
    """(value of app.tenant_id, reason) for this request."""
    path = request.path_info
    if path.startswith(ADMIN_PREFIX):
        return _admin_scope(request.user), "the admin, for a superuser"
    if path.startswith(API_PREFIX):
        # Nothing until the API key is known; TenantScopedAPIView narrows to its tenant.
        return db_scope.NOTHING, ""
    # The person's pages, the hub, provider webhooks: they act for the platform (routing a
    # reply, platform-wide code limits, every provider at the hub) and find the tenant themselves.
    return db_scope.SYSTEM, "public pages and provider webhooks act for the platform"


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
