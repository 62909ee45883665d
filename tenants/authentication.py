"""Partner API keys: `Authorization: Api-Key <key>` → request.auth is the TenantAPIKey.

Kept apart from tenants.api because DRF imports authentication classes while
rest_framework.views itself is loading.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from . import db_scope
from .models import TenantAPIKey

KEY_PREFIX = "Api-Key"


class TenantAPIKeyAuthentication(BaseAuthentication):
    """`Authorization: Api-Key <key>`; request.auth is the TenantAPIKey."""

    def authenticate(self, request: Request) -> tuple[AnonymousUser, TenantAPIKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _sep, key = header.partition(" ")
        if scheme != KEY_PREFIX or not key.strip():
            raise exceptions.AuthenticationFailed(_("Use the header 'Authorization: Api-Key <key>'."))
        try:
            with db_scope.system_scope(reason="finding the tenant of an API key"):
                api_key = TenantAPIKey.objects.get_from_key(key.strip())
        except TenantAPIKey.DoesNotExist:
            raise exceptions.AuthenticationFailed(_("Unknown API key.")) from None
        assert isinstance(api_key, TenantAPIKey)
        if api_key.has_expired:  # get_from_key() already leaves out revoked keys
            raise exceptions.AuthenticationFailed(_("This API key is revoked or expired."))
        if not api_key.tenant.is_active:
            raise exceptions.AuthenticationFailed(_("This tenant is not active."))
        return AnonymousUser(), api_key

    def authenticate_header(self, request: Request) -> str:
        return KEY_PREFIX


class HasTenantAPIKey(BasePermission):
    message = _("An API key is required: 'Authorization: Api-Key <key>'.")

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, TenantAPIKey)


class TenantAPIKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]  # drf-spectacular: untyped
    target_class = "tenants.authentication.TenantAPIKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`, a per-tenant key from `manage.py create_api_key` or the admin.",
        }
