"""Reads for reply SMS: a tenant's gateway credential, which route (and, through a shared
gateway, which tenant) a reply belongs to, what we last asked a number, its status."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from lanzuan import phones
from lanzuan.memo import ProcessMemo
from tenants.models import Tenant
from tenants.scoping import TenantQuerySet
from unsubscribe.attention import QueueItem
from unsubscribe.cases.selectors import CaseEntry, admin_url, number_q
from unsubscribe.models import (
    ChannelSetting,
    RequestChannel,
    Suppression,
    SuppressionEvent,
    UnsubscribeRequest,
)
from unsubscribe.proofs.canonical import instant
from unsubscribe.proofs.pack import ProofSection, ProofTable
from unsubscribe.proofs.sections import MESSAGE_WINDOW, when
from unsubscribe.selectors import channel_setting

from .models import (
    Action,
    Context,
    InboundCredential,
    InboundMessage,
    PlatformInboundCredential,
    ReplyRoute,
    UnroutedMessage,
    destination_digits,
)

# What every reply reads and staff rarely change (the tenant, its gateway credential, SMS
# setting and reply routes, the platform's routing book) is read once a second per process, not
# once per reply: a change saved here is seen at once, one saved by another process within
# CONFIG_SECONDS (lanzuan/memo.py; the models it watches: apps.py).
CONFIG_SECONDS = 1.0
config_memo: ProcessMemo[Any] = ProcessMemo("inbound_config", seconds=CONFIG_SECONDS)


def active_tenant(slug: str) -> Tenant | None:
    """The active tenant with this slug (a webhook's URL names it)."""
    found: Tenant | None = config_memo.get(
        ("tenant", slug), lambda: Tenant.objects.filter(slug=slug, is_active=True).first()
    )
    return found


def inbound_credential(*, tenant: Tenant, provider: str) -> InboundCredential | None:
    """The tenant's credential for this provider, enabled or not; None when never configured."""
    found: InboundCredential | None = config_memo.get(
        ("credential", tenant.pk, provider),
        lambda: InboundCredential.objects.for_tenant(tenant).filter(provider=provider).first(),
    )
    return found


def sms_setting(*, tenant: Tenant) -> ChannelSetting:
    """The tenant's SMS channel setting (unsubscribe.selectors.channel_setting), remembered."""
    found: ChannelSetting = config_memo.get(
        ("sms_setting", tenant.pk), lambda: channel_setting(tenant=tenant, channel=RequestChannel.SMS)
    )
    return found


def _routes(tenant: Tenant) -> tuple[ReplyRoute, ...]:
    found: tuple[ReplyRoute, ...] = config_memo.get(
        ("routes", tenant.pk),
        lambda: tuple(ReplyRoute.objects.for_tenant(tenant).select_related("service").order_by("pk")),
    )
    return found


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
    destination = destination_digits(to)
    sign = (sign_name or "").strip()
    best: ReplyRoute | None = None
    best_key: tuple[bool, int, bool, bool] | None = None
    # A tenant has a handful of routes: ranking them here is clearer than in SQL.
    for route in _routes(tenant):
        if route.sign_name and route.sign_name != sign:
            continue
        if route.destination:
            if not destination:
                continue
            mapped = destination_digits(route.destination)  # also routes saved before +86 was taken off
            exact = mapped == destination
            suffix = destination.endswith(mapped)
            if not (exact or suffix or destination.startswith(mapped)):
                continue
            key = (exact, len(mapped), suffix, bool(route.sign_name))
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


def pending_clarification(*, tenant: Tenant, from_hash: str, since: datetime) -> InboundMessage | None:
    """The reply we asked this number to confirm (a clarification sent since `since`) when
    nothing has answered it yet: no later reply read as its answer, and no opt-out since."""
    asked = (
        InboundMessage.objects.for_tenant(tenant)
        .filter(from_hash=from_hash, action=Action.CLARIFY, created_at__gte=since)
        .order_by("-created_at", "-pk")
        .first()
    )
    if asked is None:
        return None
    answered = (
        InboundMessage.objects.for_tenant(tenant)
        .filter(from_hash=from_hash, created_at__gte=asked.created_at)
        .exclude(pk=asked.pk)
        .filter(Q(context=Context.CLARIFICATION) | Q(action=Action.UNSUBSCRIBE))
        .exists()
    )
    return None if answered else asked


def inbound_credential_for_platform(*, account: str, provider: str) -> PlatformInboundCredential | None:
    found: PlatformInboundCredential | None = config_memo.get(
        ("platform_credential", account, provider),
        lambda: PlatformInboundCredential.objects.filter(account=account, provider=provider).first(),
    )
    return found


@dataclass(frozen=True)
class Routing:
    tenant: Tenant | None
    candidates: list[Tenant]  # every tenant tied at the best match (several: ambiguous)
    matched: str  # what decided, for the record


def tenant_for_reply(*, to: str, sign_name: str = "", among: list[int] | None = None) -> Routing:
    """Which tenant a reply through a shared gateway belongs to, by what it was sent to.

    Cross-tenant by design (one gateway account serves many tenants), hence unscoped(...).
    A destination (Twilio's To, Aliyun's dest_code) matches a tenant's reply number
    (its SMS channel setting) or reply route when it is that number, or starts with it
    (an extension code appended to the tenant's base number): the longest match wins,
    exact before prefix. Unlike within one tenant, a bare extension ("88") is not
    matched as a suffix: many tenants may use "88". Without a destination match, a
    route's sign name decides. A tie between tenants routes nowhere (staff decide).
    `among`: the tenant ids the gateway account serves (None: any active tenant).
    """
    destination = destination_digits(to)
    sign = (sign_name or "").strip()
    book = _routing_book()
    active = book.active if among is None else book.active & set(among)
    matches = _Matches(set(active))
    if destination:
        _match_destination(matches, book, destination, sign)
    if not matches.scores and sign:
        _match_sign_name(matches, book, sign)
    if not matches.scores:
        return Routing(None, [], "")
    best = max(matches.scores.values())
    winners = sorted(tenant_id for tenant_id, key in matches.scores.items() if key == best)
    tenants = list(Tenant.objects.filter(pk__in=winners).order_by("pk"))
    if len(tenants) == 1:
        return Routing(tenants[0], tenants, matches.matched[winners[0]])
    return Routing(None, tenants, "; ".join(matches.matched[t] for t in winners))


@dataclass(frozen=True)
class _RoutingBook:
    """Every tenant's reply numbers and routes, as platform routing reads them."""

    active: frozenset[int]  # active tenants
    numbers: tuple[tuple[int, str], ...]  # (tenant, reply number) of SMS channel settings
    routes: tuple[tuple[int, str, str], ...]  # (tenant, destination, sign name) of routes with a number
    signs: tuple[tuple[int, str], ...]  # (tenant, sign name) of routes with no number


def _routing_book() -> _RoutingBook:
    book: _RoutingBook = config_memo.get("routing_book", _routing_book_read)
    return book


def _routing_book_read() -> _RoutingBook:
    settings = (
        ChannelSetting.objects.unscoped(
            reason="platform routing: a shared gateway's reply may be any tenant's"
        )
        .filter(channel=RequestChannel.SMS)
        .exclude(reply_numbers="")
    )
    routes = ReplyRoute.objects.unscoped(
        reason="platform routing: a shared gateway's reply may be any tenant's"
    )
    return _RoutingBook(
        active=frozenset(Tenant.objects.filter(is_active=True).values_list("pk", flat=True)),
        numbers=tuple(
            (setting.tenant_id, number)
            for setting in settings.only("tenant_id", "reply_numbers")
            for number in setting.numbers()
        ),
        routes=tuple(routes.exclude(destination="").values_list("tenant_id", "destination", "sign_name")),
        signs=tuple(
            routes.filter(destination="").exclude(sign_name="").values_list("tenant_id", "sign_name")
        ),
    )


class _Matches:
    """Each tenant's best match so far: its score (2 exact, 1 prefix, 0 sign name; then the
    length of the number) and what matched, for the record."""

    def __init__(self, tenant_ids: set[int]) -> None:
        self.tenant_ids = tenant_ids
        self.scores: dict[int, tuple[int, int]] = {}
        self.matched: dict[int, str] = {}

    def consider(self, tenant_id: int, destination: str, number: str, label: str) -> None:
        if tenant_id not in self.tenant_ids or not number or not destination:
            return
        if destination == number:
            key = (2, len(number))
        elif destination.startswith(number):
            key = (1, len(number))
        else:
            return
        if key > self.scores.get(tenant_id, (0, 0)):
            self.scores[tenant_id] = key
            self.matched[tenant_id] = f"{label} {number}"


def _match_destination(matches: _Matches, book: _RoutingBook, destination: str, sign: str) -> None:
    for tenant_id, number in book.numbers:
        matches.consider(tenant_id, destination, destination_digits(number), "reply number")
    for tenant_id, number, route_sign in book.routes:
        if not route_sign or route_sign == sign:
            matches.consider(tenant_id, destination, destination_digits(number), "reply route")


def _match_sign_name(matches: _Matches, book: _RoutingBook, sign: str) -> None:
    for tenant_id in {tenant_id for tenant_id, route_sign in book.signs if route_sign == sign}:
        if tenant_id in matches.tenant_ids:
            matches.scores[tenant_id] = (0, 0)
            matches.matched[tenant_id] = f"sign name {sign}"


def tenant_owns_destination(*, tenant: Tenant, to: str, sign_name: str = "") -> bool:
    """Does this reply's destination belong to the tenant (a route or a reply number)?"""
    if reply_route_for(tenant=tenant, to=to, sign_name=sign_name) is not None:
        return True
    destination = destination_digits(to)
    numbers = [destination_digits(n) for n in sms_setting(tenant=tenant).numbers()]
    if not destination:
        return True  # nothing to tell it by
    return any(
        n and (destination == n or destination.startswith(n) or n.endswith(destination)) for n in numbers
    )


@dataclass(frozen=True)
class NumberStatus:
    request: UnsubscribeRequest | None
    lifted_after: bool  # re-subscribed since that request
    suppressed_since: datetime | None = None  # no request on record (purged) but still opted out


def number_status(*, tenant: Tenant, phone_hash: str) -> NumberStatus:
    """The number's latest request at the tenant, and whether a re-subscribe came after it."""
    request = latest_request(tenant=tenant, phone_hash=phone_hash)
    if request is None:
        since = (
            Suppression.objects.for_tenant(tenant)
            .filter(phone_hash=phone_hash)
            .order_by("created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        return NumberStatus(None, False, since)
    return NumberStatus(
        request, lifted_since(tenant=tenant, phone_hash=phone_hash, since=request.received_at)
    )


def latest_request(*, tenant: Tenant, phone_hash: str) -> UnsubscribeRequest | None:
    return (
        UnsubscribeRequest.objects.for_tenant(tenant)
        .filter(phone_hash=phone_hash)
        .order_by("-received_at", "-pk")
        .first()
    )


def lifted_since(*, tenant: Tenant, phone_hash: str, since: datetime) -> bool:
    """Did the number re-subscribe to anything after `since`?"""
    return (
        SuppressionEvent.objects.for_tenant(tenant)
        .filter(phone_hash=phone_hash, action=SuppressionEvent.Action.LIFTED, created_at__gt=since)
        .exists()
    )


def number_suppressed(*, tenant: Tenant, phone_hash: str) -> bool:
    """Is an opt-out of the number in force at the tenant (for any scope)?"""
    return Suppression.objects.for_tenant(tenant).filter(phone_hash=phone_hash).exists()


# --- the admin home (registered with unsubscribe.attention in apps.py) -------------------


def flagged_replies() -> TenantQuerySet[InboundMessage]:
    """Replies flagged for staff (held or unclear), not yet scoped: the attention queue
    counts them per tenant, for the tenants its reader may see."""
    return InboundMessage.objects.filter(flagged_for_attention=True)


def unrouted_attention() -> QueueItem:
    """Replies no tenant could be given (no match, ambiguous, or sent to another tenant's
    number on a tenant's URL), still flagged. Platform-wide, so for superusers only:
    tenant staff cannot open that list (it holds other tenants' replies)."""
    count = UnroutedMessage.objects.filter(flagged_for_attention=True).count()
    url = (
        reverse("admin:inbound_unroutedmessage_changelist")
        + "?"
        + urlencode({"flagged_for_attention__exact": "1"})
    )
    return QueueItem("unrouted_replies", _("Unroutable reply SMS (platform, flagged)"), count, url)


def case_replies(digests: dict[int, str]) -> Iterable[CaseEntry]:
    """The number's replies at each tenant (by that tenant's digest) for its case page:
    what we understood and what we did; the text itself stays on the reply's own page."""
    rows = (
        InboundMessage.objects.for_tenants(list(digests))
        .filter(number_q(digests, "from_hash"))
        .select_related("request")
    )
    for message in rows:
        reference = f" · {message.request.reference}" if message.request else ""
        yield CaseEntry(
            at=message.received_at,
            tenant_id=message.tenant_id,
            kind="reply",
            channel=str(RequestChannel.SMS.label),
            summary=f"{message.get_intent_display()} → {message.get_action_display()}{reference}",
            url=admin_url(message),
        )


def proof_replies(request: UnsubscribeRequest, context: dict[str, Any]) -> ProofSection:
    """The proof pack's replies (unsubscribe/proofs): every reply SMS that filed or concerns the
    request: those linked to it, and the number's other replies from an hour before it was filed
    until an hour after it completed (a clarification and its answer). Texts as received, numbers
    masked."""
    end = (request.completed_at or timezone.now()) + MESSAGE_WINDOW
    replies = list(
        InboundMessage.objects.for_tenant(request.tenant_id)
        .filter(
            Q(request=request)
            | Q(
                from_hash=request.phone_hash,
                received_at__gte=request.received_at - MESSAGE_WINDOW,
                received_at__lte=end,
            )
        )
        .order_by("received_at", "pk")
    )
    return ProofSection(
        key="texts_received",
        title=_("Texts received"),
        data=[
            {
                "id": reply.pk,
                "provider": reply.provider,
                "provider_message_id": phones.redact(reply.provider_message_id),
                "from": reply.from_masked,
                "to": phones.redact(reply.to),
                "received_at": instant(reply.received_at),
                "body": phones.redact(reply.body),
                "intent": reply.intent,
                "action": reply.action,
                "request": reply.request.reference if reply.request_id and reply.request else None,
            }
            for reply in replies
        ],
        tables=[
            ProofTable(
                [_("Time"), _("From"), _("Text"), _("Understood as"), _("Action taken")],
                [
                    [
                        when(reply.received_at),
                        reply.from_masked,
                        phones.redact(reply.body),
                        reply.get_intent_display(),
                        reply.get_action_display(),
                    ]
                    for reply in replies
                ],
                testid="texts-received",
            )
        ],
    )
