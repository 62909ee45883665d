"""Partner API keys: `Authorization: Api-Key <key>` → request.auth is the TenantAPIKey.

Kept apart from tenants.api because DRF imports authentication classes while
rest_framework.views itself is loading.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from lanzuan.memo import ProcessMemo

from . import db_scope
from .models import TenantAPIKey

KEY_PREFIX = "Api-Key"

# A key once verified is trusted by this process for this long without asking the database
# again, so a check costs no key look-up. A revoke (or a tenant switched off) reaches the
# process that made it at once (the memo forgets on save: tenants/apps.py) and every other
# process within this time. Unknown keys are never remembered (lanzuan/memo.py).
KEY_CACHE_SECONDS = 0.5
key_memo: ProcessMemo[TenantAPIKey] = ProcessMemo("api_keys", seconds=KEY_CACHE_SECONDS)


def forget_keys() -> None:
    """Verify every key again on its next use."""
    key_memo.forget()


def verified_key(key: str) -> TenantAPIKey:
    """The usable key row (with its tenant) for `key`; TenantAPIKey.DoesNotExist if none."""

    def load() -> TenantAPIKey:
        with db_scope.system_scope(reason="finding the tenant of an API key"):
            api_key = TenantAPIKey.objects.get_from_key(key)
        assert isinstance(api_key, TenantAPIKey)
        return api_key

    # Keyed by the key's SHA-256: the memo never holds a key itself.
    return key_memo.get(hashlib.sha256(key.encode()).hexdigest(), load)


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
            api_key = verified_key(key.strip())
        except TenantAPIKey.DoesNotExist:
            raise exceptions.AuthenticationFailed(_("Unknown API key.")) from None
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
