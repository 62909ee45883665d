"""Reads for partners: may we send to these numbers (one, or 10,000 at once)?

The bulk path is built for throughput (suppressions/batch.py): numbers in canonical form
are parsed by numpy in one pass (phonenumbers only for the odd ones), keyed in one AES call
(digest version 2) and looked up in the tenant's memory-mapped suppression index. Nothing
goes through a serializer field per number.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db import connection, connections
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from lanzuan import phones, replica
from tenants.models import Tenant
from unsubscribe.consents.selectors import NO_CONSENT, ConsentStatus, consent_statuses
from unsubscribe.models import NumberEvent, Service, UnsubscribeRequest
from unsubscribe.reassignments.selectors import number_event_dates, reassigned_since
from unsubscribe.suppressions import index
from unsubscribe.suppressions.batch import BatchAnswer, batch_check, since_datetime
from unsubscribe.suppressions.selectors import relevant_scopes

MAX_CHECK_NUMBERS = 10_000


@dataclass(frozen=True, slots=True)
class NumberStatus:
    phone: Any  # as the caller wrote it
    e164: str | None = None
    error: str | None = None
    suppressed: bool = False
    since: datetime | None = None
    scopes: tuple[str, ...] = ()
    platform_do_not_market: bool = False  # the person's platform-wide entry: no tenant may market

    @property
    def valid(self) -> bool:
        return self.error is None


def service_exists(*, tenant: Tenant, code: str) -> bool:
    return Service.objects.for_tenant(tenant).filter(code=code).exists()


def normalise_item(raw: Any) -> tuple[str | None, str | None]:
    """(e164, None) or (None, error message) for one item of a JSON list."""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None, _("Must be a string.")
    try:
        return phones.normalise_fast(str(raw)), None
    except phones.InvalidPhoneNumber as exc:
        return None, str(exc)


def suppression_check_many(
    *, tenant: Tenant, numbers: Sequence[Any], service_code: str | None = None
) -> list[NumberStatus]:
    """One status per item, in order; invalid items carry an error instead."""
    return batch_statuses(suppression_check_batch(tenant=tenant, numbers=numbers, service_code=service_code))


def suppression_check_batch(
    *, tenant: Tenant, numbers: Sequence[Any], service_code: str | None = None
) -> BatchAnswer:
    """The bulk check in arrays (suppressions.batch): parsed in one pass, looked up in the
    tenant's suppression index."""
    return batch_check(tenant_id=tenant.pk, parsed=phones.parse_batch(numbers), service_code=service_code)


def tenant_has_number_events(*, tenant: Tenant) -> bool:
    """Any deactivation or reassignment on record (a check then answers `reassigned_since`)."""
    return NumberEvent.objects.for_tenant(tenant).exists()


_NUMBER_EVENTS_SQL = "SELECT 1 FROM unsubscribe_numberevent WHERE tenant_id = %s"
# Tenants this process saw with number events, and when: their bulk checks go straight to the
# full path for a minute. Only a hint: the full path answers every tenant correctly.
_number_events_seen: dict[int, float] = {}
NUMBER_EVENTS_HINT_SECONDS = 60.0


def suppression_check_batch_plain(
    *, tenant: Tenant, numbers: Sequence[Any], service_code: str | None = None
) -> BatchAnswer | None:
    """The bulk check in arrays when the suppressions alone answer it; None when the tenant
    has a deactivation or reassignment on record (its answers carry `reassigned_since`: the
    full path gives them). Whether it has is asked in the look-up's own round trip."""
    seen = _number_events_seen.get(tenant.pk)
    if seen is not None and time.monotonic() - seen < NUMBER_EVENTS_HINT_SECONDS:
        return None
    also_exists = (_NUMBER_EVENTS_SQL, [tenant.pk])
    # PostgreSQL reads the rows changed since the index's mark while the numbers are parsed.
    with index.lookahead(tenant.pk, also_exists) as ahead:
        answer = batch_check(
            tenant_id=tenant.pk,
            parsed=phones.parse_batch(numbers),
            service_code=service_code,
            also_exists=also_exists,
            ahead=ahead,
        )
    has_events = answer.also_exists
    if has_events is None:  # not asked on the way (no index here): its own query
        has_events = tenant_has_number_events(tenant=tenant)
    if has_events:
        if len(_number_events_seen) > 10_000:  # noqa: PLR2004
            _number_events_seen.clear()
        _number_events_seen[tenant.pk] = time.monotonic()
        return None
    return answer


def batch_statuses(answer: BatchAnswer) -> list[NumberStatus]:
    parsed = answer.parsed
    results = []
    e164s = parsed.e164()
    raws = answer.raw
    scopes = answer.scope_tuples
    for i, (e164, suppressed, since, mask, everywhere) in enumerate(
        zip(
            e164s,
            answer.suppressed.tolist(),
            answer.since.tolist(),
            answer.scope_mask.tolist(),
            answer.everywhere.tolist(),
            strict=True,
        )
    ):
        if e164 is None:
            results.append(NumberStatus(raws[i], None, parsed.errors[i]))
            continue
        when = since_datetime(since) if suppressed else None
        results.append(NumberStatus(raws[i], e164, None, suppressed, when, scopes[mask], everywhere))
    return results


# One number in one round trip on PostgreSQL (the hot path, issue 13): its suppressions ("s"), its
# reassignment days ("e") and the person's platform-wide do-not-market entry ("p", by the
# platform digest). The tenant is named in the query as well as by row-level security.
_ONE_NUMBER_SQL = (
    "SELECT 's', scope, created_at, NULL::date FROM unsubscribe_suppression "
    "WHERE tenant_id = %s AND phone_hash = %s "
    "UNION ALL "
    "SELECT 'e', NULL, NULL, occurred_on FROM unsubscribe_numberevent WHERE tenant_id = %s AND phone_hash = %s "
    "UNION ALL "
    "SELECT 'p', NULL, created_at, NULL FROM unsubscribe_platformdonotmarket WHERE phone_hash = %s"
)


def _one_number_rows(tenant_id: int, digest: str, platform_digest: str) -> list[tuple[Any, ...]]:
    params: list[int | str] = [tenant_id, digest, tenant_id, digest, platform_digest]
    # Planned once per connection (tenants.postgresql's execute_prepared): planning this query
    # (row-level security on three tables) costs more than running it. On the replica inside
    # replica.consistent_read (the same backend: it sends the scope too).
    rows: list[tuple[Any, ...]] = connections[replica.read_alias()].execute_prepared(  # type: ignore[attr-defined]
        _ONE_NUMBER_SQL, params
    )
    return rows


def suppression_check_one(
    *,
    tenant: Tenant,
    phone: str,
    service_code: str | None = None,
    consented_at: datetime | None = None,
    include_consent: bool = False,
) -> tuple[NumberStatus, CheckExtras | None]:
    """What suppression_check_many and check_extras answer for one number, in one query
    (plus one for the consent, when asked)."""
    if connection.vendor != "postgresql":  # make run's SQLite: the bulk path's queries, for one number
        (status,) = suppression_check_many(tenant=tenant, numbers=[phone], service_code=service_code)
        (extras,) = check_extras(
            tenant=tenant,
            statuses=[status],
            consented_at=[consented_at],
            include_consent=include_consent,
            service_code=service_code,
        )
        return status, extras
    e164, error = normalise_item(phone)
    if e164 is None:
        return NumberStatus(phone, None, error), None
    digest = phones.tenant_phone_hash(tenant.pk, e164)
    rows = _one_number_rows(tenant.pk, digest, phones.platform_phone_hash(e164))
    found = [(scope, created) for kind, scope, created, _day in rows if kind == "s"]
    days = sorted(day for kind, _scope, _created, day in rows if kind == "e")
    everywhere = [created for kind, _scope, created, _day in rows if kind == "p"]
    wanted = relevant_scopes(service_code)
    since = [created for scope, created in found if scope in wanted] + everywhere
    scopes = tuple(sorted(s for s, _c in found))
    status = NumberStatus(
        phone, e164, None, bool(since), min(since) if since else None, scopes, bool(everywhere)
    )
    consent = (
        consent_statuses(tenant=tenant, digests={digest}, service_code=service_code).get(digest, NO_CONSENT)
        if include_consent
        else None
    )
    extras = CheckExtras(
        reassigned_since=max(days) if days else None,
        reassigned_since_consent=None
        if consented_at is None
        else reassigned_since(days, consented_at, tenant.zoneinfo),
        consent=consent,
    )
    return status, extras


@dataclass(frozen=True, slots=True)
class CheckExtras:
    """What a check adds for one valid number (issue 16)."""

    reassigned_since: date | None  # the latest deactivation or reassignment on record
    reassigned_since_consent: bool | None  # asked with a consented_at: was it reassigned since?
    consent: ConsentStatus | None  # asked with include=consent: the latest consent on record


def check_extras(
    *,
    tenant: Tenant,
    statuses: Sequence[NumberStatus],
    consented_at: Sequence[datetime | None],
    include_consent: bool,
    service_code: str | None = None,
) -> list[CheckExtras | None]:
    """Per status (None for an invalid number): reassignments on record, whether the number was
    reassigned since the caller's consent time, and (when asked) the consent on record."""
    digest_of = phones.tenant_phone_hasher(tenant.pk)
    digests = [digest_of(s.e164) if s.e164 else None for s in statuses]
    known = {d for d in digests if d}
    events = number_event_dates(tenant=tenant, digests=known)
    consents = (
        consent_statuses(tenant=tenant, digests=known, service_code=service_code) if include_consent else {}
    )
    zone = tenant.zoneinfo
    extras: list[CheckExtras | None] = []
    for digest, since in zip(digests, consented_at, strict=True):
        if digest is None:
            extras.append(None)
            continue
        days = events.get(digest, [])
        extras.append(
            CheckExtras(
                reassigned_since=max(days) if days else None,
                reassigned_since_consent=None if since is None else reassigned_since(days, since, zone),
                consent=consents.get(digest, NO_CONSENT) if include_consent else None,
            )
        )
    return extras


def requests_filtered(
    *,
    requests: QuerySet[UnsubscribeRequest],
    state: str | None = None,
    channel: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[UnsubscribeRequest]:
    """A tenant's requests (an already scoped queryset) narrowed by the list filters."""
    if state:
        requests = requests.filter(state=state)
    if channel:
        requests = requests.filter(channel=channel)
    if created_after:
        requests = requests.filter(received_at__gte=created_after)
    if created_before:
        requests = requests.filter(received_at__lt=created_before)
    return requests.prefetch_related("services", "steps", "deadlines")
