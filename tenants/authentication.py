"""Partner API keys: `Authorization: Api-Key <key>` → request.auth is the TenantAPIKey.

Kept apart from tenants.api because DRF imports authentication classes while
rest_framework.views itself is loading.
"""

from __future__ import annotations

import hashlib
import threading
import time
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

# A key once verified is trusted by this process for this long without asking the database
# again, so a check costs no key look-up. A revoke (or a tenant switched off) reaches the
# process that made it at once (forget_keys, on save) and every other process within this
# time. Unknown keys are never remembered.
KEY_CACHE_SECONDS = 0.5
_MAX_CACHED_KEYS = 10_000
_verified: dict[str, tuple[float, TenantAPIKey]] = {}  # SHA-256 of the key → (when, row with its tenant)
_verified_lock = threading.Lock()


def forget_keys() -> None:
    """Verify every key again on its next use (called when a key or a tenant changes)."""
    with _verified_lock:
        _verified.clear()


def forget_keys_on_change(sender: Any, **kwargs: Any) -> None:
    forget_keys()


def verified_key(key: str) -> TenantAPIKey:
    """The usable key row (with its tenant) for `key`; TenantAPIKey.DoesNotExist if none."""
    ident = hashlib.sha256(key.encode()).hexdigest()
    now = time.monotonic()
    hit = _verified.get(ident)
    if hit is not None and now - hit[0] < KEY_CACHE_SECONDS:
        return hit[1]
    with db_scope.system_scope(reason="finding the tenant of an API key"):
        api_key = TenantAPIKey.objects.get_from_key(key)
    assert isinstance(api_key, TenantAPIKey)
    with _verified_lock:
        if len(_verified) >= _MAX_CACHED_KEYS:
            _verified.clear()
        _verified[ident] = (now, api_key)
    return api_key


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
