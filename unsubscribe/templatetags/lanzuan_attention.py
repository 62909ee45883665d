"""The admin home's queue: what needs attention in the user's tenants."""

from __future__ import annotations

from typing import Any

from django import template

from tenants.scoping import request_tenant_ids

from .. import attention

register = template.Library()


@register.simple_tag(takes_context=True)
def attention_queue(context: dict[str, Any]) -> dict[str, Any]:
    """The queue for the tenants this user may see (every tenant for superusers),
    and whether the user has no email address for the needs-attention alerts."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if request is None or user is None or not user.is_authenticated:
        return {"tenants": [], "unrouted": None, "platform": [], "user_misses_alerts": False}
    superuser = bool(user.is_active and user.is_superuser)
    tenant_ids = None if superuser else request_tenant_ids(request)
    # Platform-wide: only superusers may open those lists, so only they get the links.
    platform = attention.platform_attentions() if superuser else []
    return {
        "tenants": attention.attention_queue(tenant_ids=tenant_ids),
        "unrouted": next((item for item in platform if item.key == "unrouted_replies"), None),
        "platform": [item for item in platform if item.key != "unrouted_replies"],
        "user_misses_alerts": attention.user_misses_alerts(user),
    }
