"""Per-API-key rate limits. Counters live in the cache (Redis in production), so
every web process shares them; a refused call gets 429 with Retry-After.

Rates come from settings.LANZUAN_API_RATES ({"partner": "600/min", "partner_bulk":
"60/min"}), read on every request so tests and deployments can change them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from tenants.models import TenantAPIKey

DEFAULT_RATES = {
    "partner": "600/min",  # ordinary calls: file, read, list, single checks
    "partner_bulk": "60/min",  # 10,000-number checks, scrub uploads, imports
}


def configured_rate(scope: str) -> str:
    rates: dict[str, str] = getattr(settings, "LANZUAN_API_RATES", None) or {}
    return rates.get(scope) or DEFAULT_RATES[scope]


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Keyed by the API key's id, not the client address: one partner behind many
    addresses shares one budget, and two partners behind one NAT do not."""

    scope = "partner"

    def get_rate(self) -> str:
        return configured_rate(self.scope)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        key = request.auth
        if not isinstance(key, TenantAPIKey):
            return None  # unauthenticated calls are refused before throttling
        return f"throttle:{self.scope}:{key.pk}"


class BulkApiKeyRateThrottle(ApiKeyRateThrottle):
    scope = "partner_bulk"
