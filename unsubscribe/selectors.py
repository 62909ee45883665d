"""Reads: is this number suppressed, find a request by its receipt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lanzuan import phones
from tenants.models import Tenant

from .models import SCOPE_ALL, Channel, ChannelSetting, Suppression, UnsubscribeRequest
from .references import clean_reference


@dataclass(frozen=True)
class SuppressionStatus:
    suppressed: bool
    since: datetime | None
    scopes: list[str]


def suppression_status(*, tenant: Tenant, phone: str, service_code: str | None = None) -> SuppressionStatus:
    """May we send to this number? Suppressed if opted out of everything, or of the
    given service. Raises InvalidPhoneNumber."""
    digest = phones.phone_hash(phones.normalise(phone))
    return suppression_status_for_hash(tenant=tenant, phone_hash=digest, service_code=service_code)


def relevant_scopes(service_code: str | None) -> set[str]:
    """Without a service, a number counts as suppressed when everything is stopped;
    with one, when everything or that service is."""
    return {SCOPE_ALL} if not service_code else {SCOPE_ALL, service_code}


def suppression_status_for_hash(
    *, tenant: Tenant, phone_hash: str, service_code: str | None = None
) -> SuppressionStatus:
    rows = list(
        Suppression.objects.for_tenant(tenant)
        .filter(phone_hash=phone_hash)
        .values_list("scope", "created_at")
    )
    relevant = relevant_scopes(service_code)
    since = [created for scope, created in rows if scope in relevant]
    return SuppressionStatus(
        suppressed=bool(since), since=min(since) if since else None, scopes=sorted(s for s, _c in rows)
    )


def request_by_reference(*, tenant: Tenant, reference: str) -> UnsubscribeRequest | None:
    return UnsubscribeRequest.objects.for_tenant(tenant).filter(reference=clean_reference(reference)).first()


def request_for_person(*, tenant: Tenant, reference: str, phone: str) -> UnsubscribeRequest | None:
    """A status lookup by a person: the reference and the number must both match
    (the number is compared by hash, so it works after erasure)."""
    request = request_by_reference(tenant=tenant, reference=reference)
    if request is None:
        return None
    try:
        digest = phones.phone_hash(phones.normalise(phone))
    except phones.InvalidPhoneNumber:
        return None
    return request if request.phone_hash == digest else None


def channel_setting(*, tenant: Tenant, channel: str) -> ChannelSetting:
    """The tenant's setting for a channel; an unsaved default (enabled) when none exists."""
    found = ChannelSetting.objects.for_tenant(tenant).filter(channel=channel).first()
    return found or ChannelSetting(tenant=tenant, channel=channel, enabled=True)


def channel_enabled(*, tenant: Tenant, channel: str) -> bool:
    return channel_setting(tenant=tenant, channel=channel).enabled


def enabled_channels(*, tenant: Tenant) -> list[ChannelSetting]:
    """Every channel the tenant offers, in a stable order, with its instructions."""
    saved = {c.channel: c for c in ChannelSetting.objects.for_tenant(tenant)}
    settings = [saved.get(value) or ChannelSetting(tenant=tenant, channel=value) for value in Channel.values]
    return [s for s in settings if s.enabled]
