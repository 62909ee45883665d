"""Reads for the voice menu."""

from __future__ import annotations

from tenants.models import Tenant
from unsubscribe.models import Service

from .models import VoiceCredential


def voice_credential(*, tenant: Tenant, provider: str) -> VoiceCredential | None:
    """The tenant's credential for this voice platform, enabled or not; None when never configured."""
    return VoiceCredential.objects.for_tenant(tenant).filter(provider=provider).first()


def voice_services(*, tenant: Tenant) -> list[Service]:
    """The services a caller can choose from, in the order they are read out."""
    return list(Service.objects.for_tenant(tenant).filter(is_active=True).order_by("name", "pk"))
