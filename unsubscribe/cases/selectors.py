"""A number's case: everything a tenant holds about one number, on one timeline across
channels (issue 15's case page in the admin).

The caller passes the number's digest at each tenant it may see (`phones.tenant_phone_hashes`);
each source reads only those tenants' rows, and in each tenant only the rows with that tenant's
own digest. The number itself never reaches this module.

The core's own records (requests, suppression events, subscriptions, consent records, number
deactivations and reassignments) and the messages sent are read here; the channels sit above the
core, so they add theirs at start-up (`case_source_register` in their AppConfig.ready): reply SMS,
voice calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Model, Q
from django.urls import NoReverseMatch, reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from notifications.catalogue import MessageChannel
from notifications.models import Message
from tenants.models import Tenant

from ..models import (
    ConsentRecord,
    NumberEvent,
    RequestChannel,
    Service,
    Subscription,
    SuppressionEvent,
    UnsubscribeRequest,
    scope_label,
)

# What an entry is, by code; the labels are what staff read.
KIND_LABELS: dict[str, Promise] = {
    "request": _("Unsubscribe request"),
    "suppression_added": _("Suppression added"),
    "suppression_lifted": _("Suppression lifted"),
    "reply": _("Reply SMS received"),
    "message": _("Message sent"),
    "call": _("Voice call"),
    "consent_given": _("Consent given"),
    "consent_revoked": _("Consent revoked"),
    "number_event": _("Number deactivated or reassigned"),
    "subscription": _("Subscription"),
    "send_violation": _("Message sent after the opt-out (send log)"),
    "still_receiving": _("Person reports messages still arriving"),
}


@dataclass(frozen=True)
class CaseEntry:
    """One thing that happened to the number at one tenant."""

    at: datetime
    tenant_id: int
    kind: str  # a key of KIND_LABELS
    channel: str  # as staff read it; blank when the record has none
    summary: str  # as staff read it: references, states, scopes; never a number
    url: str  # the record's admin page; blank when it has none

    @property
    def kind_label(self) -> str:
        return str(KIND_LABELS.get(self.kind, self.kind))


@dataclass(frozen=True)
class CaseRow:
    """A CaseEntry with its tenant, as the page shows it."""

    entry: CaseEntry
    tenant: Tenant


# A source: the tenant digests → its entries. Sources read only the tenants given.
CaseSource = Callable[[dict[int, str]], Iterable[CaseEntry]]

_sources: dict[str, CaseSource] = {}


def case_source_register(key: str, source: CaseSource) -> None:
    """Add a channel's records to the case page (called from a channel's AppConfig.ready)."""
    _sources[key] = source


def number_q(digests: dict[int, str], field: str) -> Q:
    """Rows of each tenant with that tenant's own digest in `field` (never another tenant's)."""
    query = Q(pk__in=[])
    for tenant_id, digest in digests.items():
        query |= Q(tenant_id=tenant_id, **{field: digest})
    return query


def admin_url(obj: Model) -> str:
    """The admin change page of a record, or "" if it has none."""
    try:
        return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return ""


def _channel(code: str) -> str:
    return str(dict(RequestChannel.choices).get(code, code))


def _scope(request: UnsubscribeRequest) -> str:
    if request.scope_all:
        return scope_label("*")
    return ", ".join(service.name for service in request.services.all())


def _requests(digests: dict[int, str]) -> Iterable[CaseEntry]:
    rows = (
        UnsubscribeRequest.objects.for_tenants(list(digests))
        .filter(number_q(digests, "phone_hash"))
        .prefetch_related("services")
    )
    for request in rows:
        yield CaseEntry(
            at=request.received_at,
            tenant_id=request.tenant_id,
            kind="request",
            channel=request.get_channel_display(),
            summary=f"{request.reference} · {request.get_state_display()} · {_scope(request)}",
            url=admin_url(request),
        )


def _service_names(tenant_ids: Iterable[int]) -> dict[tuple[int, str], str]:
    names = Service.objects.for_tenants(list(tenant_ids)).values_list("tenant_id", "code", "name")
    return {(tenant_id, code): name for tenant_id, code, name in names}


def _suppression_events(digests: dict[int, str]) -> Iterable[CaseEntry]:
    names = _service_names(digests)
    rows = (
        SuppressionEvent.objects.for_tenants(list(digests))
        .filter(number_q(digests, "phone_hash"))
        .select_related("request")
    )
    for event in rows:
        scope = names.get((event.tenant_id, event.scope)) or scope_label(event.scope)
        reference = f" · {event.request.reference}" if event.request else ""
        yield CaseEntry(
            at=event.created_at,
            tenant_id=event.tenant_id,
            kind=f"suppression_{event.action}",
            channel=_channel(event.channel) if event.channel else "",
            summary=f"{scope}{reference}",
            url=admin_url(event),
        )


def _messages(digests: dict[int, str]) -> Iterable[CaseEntry]:
    rows = Message.objects.for_tenants(list(digests)).filter(number_q(digests, "to_hash"))
    for message in rows:
        yield CaseEntry(
            at=message.sent_at or message.created_at,
            tenant_id=message.tenant_id,
            kind="message",
            channel=str(dict(MessageChannel.choices).get(message.channel, message.channel)),
            summary=f"{message.get_event_display()} · {message.get_status_display()}",
            url=admin_url(message),
        )


def _consents(digests: dict[int, str]) -> Iterable[CaseEntry]:
    rows = (
        ConsentRecord.objects.for_tenants(list(digests))
        .filter(number_q(digests, "phone_hash"))
        .select_related("service", "revoked_by_request")
    )
    for record in rows:
        wording = f" · {_('wording')} {record.wording_sha256}" if record.wording_sha256 else ""
        yield CaseEntry(
            at=record.given_at,
            tenant_id=record.tenant_id,
            kind="consent_given",
            channel="",
            summary=f"{record.service.name} · {record.get_source_display()}{wording}",
            url=admin_url(record),
        )
        if record.revoked_at:
            by = record.revoked_by_request
            yield CaseEntry(
                at=record.revoked_at,
                tenant_id=record.tenant_id,
                kind="consent_revoked",
                channel=by.get_channel_display() if by else "",
                summary=f"{record.service.name}" + (f" · {by.reference}" if by else ""),
                url=admin_url(record),
            )


def _number_events(digests: dict[int, str]) -> Iterable[CaseEntry]:
    rows = (
        NumberEvent.objects.for_tenants(list(digests))
        .filter(number_q(digests, "phone_hash"))
        .select_related("tenant")
    )
    for event in rows:
        yield CaseEntry(
            at=event.tenant.local_midnight(event.occurred_on),
            tenant_id=event.tenant_id,
            kind="number_event",
            channel="",
            summary=f"{event.get_kind_display()} · {event.occurred_on.isoformat()}",
            url=admin_url(event),
        )


def _subscriptions(digests: dict[int, str]) -> Iterable[CaseEntry]:
    rows = (
        Subscription.objects.for_tenants(list(digests))
        .filter(number_q(digests, "phone_hash"))
        .select_related("service")
    )
    for subscription in rows:
        yield CaseEntry(
            at=subscription.ended_at or subscription.consent_at or subscription.updated_at,
            tenant_id=subscription.tenant_id,
            kind="subscription",
            channel="",
            summary=f"{subscription.service.name} · {subscription.get_status_display()}",
            url=admin_url(subscription),
        )


for _key, _source in (
    ("requests", _requests),
    ("suppression_events", _suppression_events),
    ("messages", _messages),
    ("consents", _consents),
    ("number_events", _number_events),
    ("subscriptions", _subscriptions),
):
    case_source_register(_key, _source)


def case_timeline(*, digests: dict[int, str]) -> list[CaseRow]:
    """Every record of the number at the tenants in `digests` (tenant id → that tenant's
    digest of the number), newest first."""
    if not digests:
        return []
    tenants = Tenant.objects.in_bulk(list(digests))
    entries: list[CaseEntry] = []
    for source in _sources.values():
        entries.extend(source(digests))
    entries.sort(key=lambda entry: (entry.at, entry.kind), reverse=True)
    return [CaseRow(entry=entry, tenant=tenants[entry.tenant_id]) for entry in entries]
