"""Reads: which text and which gateway a tenant uses."""

from __future__ import annotations

from dataclasses import dataclass

from tenants.models import Tenant

from .defaults import default_text
from .models import GatewayConfig, Template


@dataclass(frozen=True)
class ResolvedTemplate:
    template: Template | None  # None: the built-in default
    subject: str
    body: str


def template_resolve(*, tenant: Tenant, event: str, channel: str, language: str) -> ResolvedTemplate:
    """The tenant's own text for this event, channel and language, else the built-in default."""
    own = Template.objects.for_tenant(tenant).filter(event=event, channel=channel, language=language).first()
    if own is not None:
        return ResolvedTemplate(template=own, subject=own.subject, body=own.body)
    default = default_text(event, language)
    return ResolvedTemplate(template=None, subject=default.subject, body=default.body)


def gateway_config_get(*, tenant: Tenant | int, channel: str) -> GatewayConfig | None:
    return GatewayConfig.objects.for_tenant(tenant).filter(channel=channel, is_active=True).first()
