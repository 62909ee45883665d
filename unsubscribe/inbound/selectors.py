"""Reads for reply SMS: a tenant's gateway credential, and which route a reply belongs to."""

from __future__ import annotations

from datetime import datetime

from tenants.models import Tenant

from .models import Action, InboundCredential, InboundMessage, ReplyRoute, digits_only


def inbound_credential(*, tenant: Tenant, provider: str) -> InboundCredential | None:
    """The tenant's credential for this provider, enabled or not; None when never configured."""
    return InboundCredential.objects.for_tenant(tenant).filter(provider=provider).first()


def reply_route_for(*, tenant: Tenant, to: str, sign_name: str = "") -> ReplyRoute | None:
    """The route a reply sent to `to` (a number or an extension code) belongs to, or None.

    Carriers give a tenant a base number (10690001) and append an extension code per
    service (88 → 1069000188). Gateways report either the whole number (Twilio's To,
    most Aliyun accounts' dest_code) or the extension alone, and tenants configure
    whichever they were told. So, in this order:

    1. a route equal to the destination;
    2. the longest route the destination ends with (the tenant mapped the extension
       "88") or starts with (the tenant mapped the base number "10690001": every
       extension under it); more digits are more specific, and at equal length the
       suffix wins, because an extension names one service and a base number many;
    3. a route with no number whose sign name is the reply's (Aliyun's sign_name).

    A route that also names a sign name only matches replies to that sign name, and
    beats an otherwise equal route without one. We do not try the reverse (a route
    "1069000188" for a reported "88"): a short code would then match any long route
    that happens to end with it, which is a guess, not a mapping.
    """
    destination = digits_only(to)
    sign = (sign_name or "").strip()
    best: ReplyRoute | None = None
    best_key: tuple[bool, int, bool, bool] | None = None
    # A tenant has a handful of routes: ranking them here is clearer than in SQL.
    for route in ReplyRoute.objects.for_tenant(tenant).select_related("service"):
        if route.sign_name and route.sign_name != sign:
            continue
        if route.destination:
            if not destination:
                continue
            exact = route.destination == destination
            suffix = destination.endswith(route.destination)
            if not (exact or suffix or destination.startswith(route.destination)):
                continue
            key = (exact, len(route.destination), suffix, bool(route.sign_name))
        elif route.sign_name:
            key = (False, 0, False, True)
        else:
            continue  # neither number nor sign name: matches nothing
        if best_key is None or key > best_key:
            best, best_key = route, key
    return best


def clarification_sent_since(*, tenant: Tenant, from_hash: str, since: datetime) -> bool:
    """Did we already ask this number to confirm an unclear reply since `since`?"""
    return (
        InboundMessage.objects.for_tenant(tenant)
        .filter(from_hash=from_hash, action=Action.CLARIFY, created_at__gte=since)
        .exists()
    )
