"""Reads shared by every concept of the core: the tenant's channel settings and its
marketing services by code."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils.translation import gettext as _

from tenants.models import Tenant

from .errors import UnknownServices
from .models import ChannelSetting, RequestChannel, Service


def services_resolve(*, tenant: Tenant, services: Iterable[str | Service] | None) -> list[Service]:
    """The tenant's services for these codes, in the order asked, each once; raises
    UnknownServices naming the codes it does not have."""
    if not services:
        return []
    codes = [s.code if isinstance(s, Service) else str(s).strip() for s in services]
    found = {s.code: s for s in Service.objects.for_tenant(tenant).filter(code__in=codes)}
    unknown = sorted(set(codes) - set(found))
    if unknown:
        raise UnknownServices(_("Unknown service code(s): %(codes)s") % {"codes": ", ".join(unknown)})
    return [found[c] for c in dict.fromkeys(codes)]


def channel_setting(*, tenant: Tenant, channel: str) -> ChannelSetting:
    """The tenant's setting for a channel; an unsaved default (enabled) when none exists."""
    found = ChannelSetting.objects.for_tenant(tenant).filter(channel=channel).first()
    return found or ChannelSetting(tenant=tenant, channel=channel, enabled=True)


def channel_enabled(*, tenant: Tenant, channel: str) -> bool:
    return channel_setting(tenant=tenant, channel=channel).enabled


def enabled_channels(*, tenant: Tenant) -> list[ChannelSetting]:
    """Every channel the tenant offers, in a stable order, with its instructions."""
    saved = {c.channel: c for c in ChannelSetting.objects.for_tenant(tenant)}
    settings = [
        saved.get(value) or ChannelSetting(tenant=tenant, channel=value) for value in RequestChannel.values
    ]
    return [s for s in settings if s.enabled]
