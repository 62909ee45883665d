"""Send logs (issue 17): what senders report, the hub's per-service summary, violations (a send
after an opt-out that covers it), the partner API and import job, the retention purge, and the
person's "I still get messages" report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
import time_machine

from lanzuan import phones
from unsubscribe.models import SendLogEntry, SendViolation, Service
from unsubscribe.sendlogs import services as sendlog_services
from unsubscribe.sendlogs.selectors import ServiceSendSummary, service_send_summary, tenants_sending_to
from unsubscribe.sendlogs.services import SendRecord, send_logs_ingest
from unsubscribe.suppressions.services import suppression_lift

from .pipeline_helpers import E164, NUMBER, file

if TYPE_CHECKING:
    from tenants.models import Tenant

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def digest(tenant: Tenant, e164: str = E164) -> str:
    return phones.tenant_phone_hash(tenant.pk, e164)


def sends(
    tenant: Tenant, *when: tuple[datetime, str], e164: str = E164, engaged: datetime | None = None
) -> list[SendRecord]:
    return [
        SendRecord(phone_hash=digest(tenant, e164), sent_at=at, service_code=code, engaged_at=engaged)
        for at, code in when
    ]


@pytest.fixture
def services_a(tenant_a: Tenant) -> list[Service]:
    return [
        Service.objects.create(tenant=tenant_a, name=code.title(), code=code) for code in ("offers", "club")
    ]


# --- the selectors the hub reads ---------------------------------------------------------------


def test_service_send_summary_counts_per_service_most_messages_first(
    tenant_a: Tenant, tenant_b: Tenant
) -> None:
    # given three offers, one club message and one without a service; one older than the window
    records = sends(
        tenant_a,
        (T0 - timedelta(days=40), "offers"),
        (T0 - timedelta(days=3), "offers"),
        (T0 - timedelta(days=2), "offers"),
        (T0 - timedelta(days=1), "offers"),
        (T0 - timedelta(days=5), "club"),
        (T0 - timedelta(days=4), ""),
    )
    records.append(
        SendRecord(
            phone_hash=digest(tenant_a), sent_at=T0 - timedelta(hours=5), service_code="club", engaged_at=T0
        )
    )
    send_logs_ingest(tenant=tenant_a, records=records)
    # another number and another tenant's sends do not count
    send_logs_ingest(tenant=tenant_a, records=sends(tenant_a, (T0, "offers"), e164="+8613900139000"))
    send_logs_ingest(tenant=tenant_b, records=sends(tenant_b, (T0, "offers")))

    # when
    summary = service_send_summary(
        tenant=tenant_a, phone_hash=digest(tenant_a), since=T0 - timedelta(days=30)
    )

    # then
    assert summary == [
        ServiceSendSummary(
            service_code="offers", messages=3, last_sent_at=T0 - timedelta(days=1), last_engaged_at=None
        ),
        ServiceSendSummary(
            service_code="club", messages=2, last_sent_at=T0 - timedelta(hours=5), last_engaged_at=T0
        ),
        ServiceSendSummary(
            service_code="", messages=1, last_sent_at=T0 - timedelta(days=4), last_engaged_at=None
        ),
    ]
    assert (
        service_send_summary(tenant=tenant_b, phone_hash=digest(tenant_a), since=T0 - timedelta(days=30))
        == []
    )


def test_tenants_sending_to_counts_each_tenant_by_its_own_digest(tenant_a: Tenant, tenant_b: Tenant) -> None:
    send_logs_ingest(
        tenant=tenant_a, records=sends(tenant_a, (T0, "offers"), (T0 + timedelta(hours=1), "club"))
    )
    send_logs_ingest(tenant=tenant_b, records=sends(tenant_b, (T0 - timedelta(days=60), "offers")))

    digests = phones.tenant_phone_hashes(E164, [tenant_a.pk, tenant_b.pk])
    assert tenants_sending_to(digests=digests, since=T0 - timedelta(days=30)) == {tenant_a.pk: 2}
    assert tenants_sending_to(digests=digests, since=T0 - timedelta(days=90)) == {
        tenant_a.pk: 2,
        tenant_b.pk: 1,
    }
    # tenant A's digest at tenant B is no match: digests differ per tenant
    assert tenants_sending_to(digests={tenant_b.pk: digest(tenant_a)}, since=T0 - timedelta(days=90)) == {}
    assert tenants_sending_to(digests={}, since=T0) == {}


def test_a_record_sent_again_is_a_duplicate(tenant_a: Tenant) -> None:
    records = sends(tenant_a, (T0, "offers"), (T0, "offers"))
    first = send_logs_ingest(tenant=tenant_a, records=records)
    again = send_logs_ingest(tenant=tenant_a, records=records)
    by_id = [
        SendRecord(phone_hash=digest(tenant_a), sent_at=T0 + timedelta(minutes=m), message_id="msg-1")
        for m in (0, 1)
    ]
    with_ids = send_logs_ingest(tenant=tenant_a, records=by_id)

    assert (first.accepted, first.duplicates) == (1, 1)
    assert (again.accepted, again.duplicates) == (0, 2)
    assert (with_ids.accepted, with_ids.duplicates) == (1, 1)
    assert SendLogEntry.objects.for_tenant(tenant_a).count() == 2


# --- violations ------------------------------------------------------------------------------


def test_a_send_after_the_opt_out_is_a_violation_before_it_is_not(
    tenant_a: Tenant, services_a: list[Service]
) -> None:
    with time_machine.travel(T0, tick=False):
        request = file(tenant_a, NUMBER)
    counts = send_logs_ingest(
        tenant=tenant_a,
        records=sends(tenant_a, (T0 - timedelta(minutes=1), "offers"), (T0 + timedelta(hours=2), "offers")),
    )

    assert counts.violations == 1
    violation = SendViolation.objects.for_tenant(tenant_a).get()
    assert violation.request == request
    assert violation.sent_at == T0 + timedelta(hours=2)
    assert violation.scope == "*"
    assert violation.suppressed_at == T0


def test_a_service_opt_out_flags_only_that_service(tenant_a: Tenant, services_a: list[Service]) -> None:
    with time_machine.travel(T0, tick=False):
        request = file(tenant_a, NUMBER, services=["offers"])
    later = T0 + timedelta(hours=1)
    counts = send_logs_ingest(
        tenant=tenant_a, records=sends(tenant_a, (later, "club"), (later, ""), (later, "offers"))
    )

    assert counts.violations == 1
    violation = SendViolation.objects.for_tenant(tenant_a).get()
    assert (violation.service_code, violation.scope, violation.request) == ("offers", "offers", request)


def test_a_send_after_the_opt_out_was_lifted_is_no_violation(
    tenant_a: Tenant, services_a: list[Service]
) -> None:
    with time_machine.travel(T0, tick=False):
        file(tenant_a, NUMBER)
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        suppression_lift(
            tenant=tenant_a, phone=NUMBER, channel="sms", verification_method="sms_origin", evidence={}
        )
    counts = send_logs_ingest(
        tenant=tenant_a,
        records=sends(tenant_a, (T0 + timedelta(hours=12), "offers"), (T0 + timedelta(days=2), "offers")),
    )

    assert counts.violations == 1
    assert SendViolation.objects.for_tenant(tenant_a).get().sent_at == T0 + timedelta(hours=12)


def test_the_portable_insert_keeps_the_same_rules(
    tenant_a: Tenant, services_a: list[Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ORM path other databases take (SQLite for `make run`): duplicates and violations alike."""
    monkeypatch.setattr(sendlog_services, "connection", SimpleNamespace(vendor="sqlite"))
    with time_machine.travel(T0, tick=False):
        file(tenant_a, NUMBER)
    records = sends(tenant_a, (T0 - timedelta(hours=1), "offers"), (T0 + timedelta(hours=1), "offers"))

    first = send_logs_ingest(tenant=tenant_a, records=records)
    again = send_logs_ingest(tenant=tenant_a, records=records)

    assert (first.accepted, first.duplicates, first.violations) == (2, 0, 1)
    assert (again.accepted, again.duplicates, again.violations) == (0, 2, 0)
    assert SendViolation.objects.for_tenant(tenant_a).get().sent_at == T0 + timedelta(hours=1)
