"""State changes for tenants and their keys."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction

from .models import Tenant, TenantAPIKey


@transaction.atomic
def tenant_create(*, slug: str, name: str, kind: str = Tenant.Kind.PLATFORM, **policies: object) -> Tenant:
    tenant = Tenant(slug=slug, name=name, kind=kind, **policies)
    tenant.full_clean()
    tenant.save()
    return tenant


def api_key_create(
    *, tenant: Tenant, name: str, expiry_date: datetime | None = None
) -> tuple[TenantAPIKey, str]:
    """Returns the key row and the key itself, which is never stored and cannot be shown again."""
    if not name.strip():
        raise ValidationError("An API key needs a name.")
    api_key, key = TenantAPIKey.objects.create_key(tenant=tenant, name=name.strip(), expiry_date=expiry_date)
    assert isinstance(api_key, TenantAPIKey)
    return api_key, key
