"""The consent-evidence ledger and reassigned numbers (issue 16), through their real entry
points: the admin's CSV import and upload, the partner API (imports, /consents,
/number-events, the check), the pipeline (revocation, erasure) and the retention purge.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from lanzuan import phones
from unsubscribe import tasks
from unsubscribe.models import ConsentRecord, ConsentWording, NumberEvent, Service, Subscription
from unsubscribe.reassignments.selectors import void_since
from unsubscribe.suppressions.services import suppression_lift

from .faults.scan import raw_number_findings, unique_number

if TYPE_CHECKING:
    from celery import Celery
    from django.contrib.auth.models import User
    from pytest_django import DjangoCaptureOnCommitCallbacks

    from tenants.models import Tenant

    from .pipeline_helpers import Pipeline

WORDING = "我同意接收每日优惠短信，回复TD退订。"
EN: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture(autouse=True)
def generous_rates(settings: Any) -> None:
    settings.LANZUAN_API_RATES = {"partner": "100000/min", "partner_bulk": "100000/min"}


def api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.fixture
def deals(tenant_a: Tenant) -> Service:
    return Service.objects.create(tenant=tenant_a, name="Daily deals", code="daily-deals")


@pytest.fixture
def deals_b(tenant_b: Tenant) -> Service:
    return Service.objects.create(tenant=tenant_b, name="Daily deals", code="daily-deals")


def check(key: str, number: str, **params: str) -> dict[str, Any]:
    response = api(key).get("/api/v1/suppressions/check", {"phone": number, **params})
    assert response.status_code == 200, response.content
    answer: dict[str, Any] = response.json()
    return answer


def unsubscribe(key: str, number: str, pipeline: Pipeline) -> str:
    with pipeline():
        response = api(key).post(
            "/api/v1/unsubscribe-requests", {"phone": number, "channel": "app"}, format="json"
        )
    assert response.status_code == 201, response.content
    reference: str = response.json()["reference"]
    return reference


def import_csv(client: Client, tenant: Tenant, text: str, capture: DjangoCaptureOnCommitCallbacks) -> None:
    with capture(execute=True):
        response = client.post(
            reverse("admin:unsubscribe_subscription_import"),
            {"tenant": tenant.pk, "file": SimpleUploadedFile("subs.csv", text.encode())},
        )
    assert response.status_code == 302, response.content
    progress = client.get(response["Location"], {"format": "json"}).json()
    assert progress["status"] == "done" and progress["invalid"] == 0, progress


# --- imported, revoked, erased, purged ---------------------------------------------------------


def test_a_consent_imported_by_csv_is_revoked_by_the_opt_out_then_kept_minimised_and_purged(
    tenant_a: Tenant,
    deals: Service,
    alice: User,
    api_key_a: str,
    pipeline: Pipeline,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    number = unique_number()
    staff = Client()
    staff.force_login(alice)
    # given a CSV with the ledger's columns (and an old-style row without them)
    old_style = unique_number()
    import_csv(
        staff,
        tenant_a,
        "phone,service,consent_source,consent_at,consent_method,consent_wording,consent_order_id,"
        "consent_page_version,consent_ip\n"
        f"{number},daily-deals,signup page,2025-01-31T08:00:00+08:00,form,{WORDING},A-1001,signup-v3,203.0.113.7\n"
        f"{old_style},daily-deals,,,,,,,\n",
        django_capture_on_commit_callbacks,
    )
    digest = phones.tenant_phone_hash(tenant_a.pk, number)
    record = ConsentRecord.objects.for_tenant(tenant_a).get()
    assert (record.phone_hash, record.phone_masked) == (digest, phones.mask(number))
    assert record.source == "form" and record.given_at == datetime(2025, 1, 31, 0, 0, tzinfo=UTC)
    assert record.evidence_ip == "203.0.113.7" and record.evidence_order_id == "A-1001"
    assert ConsentWording.objects.for_tenant(tenant_a).get(sha256=record.wording_sha256).text == WORDING
    assert record.captured_by.startswith("CSV import")
    # the subscription's own fields stay filled, for compatibility
    subscription = Subscription.objects.for_tenant(tenant_a).get(phone_hash=digest)
    assert (subscription.consent_source, subscription.consent_at) == ("signup page", record.given_at)
    # the check answers the consent only when asked
    assert "consent" not in check(api_key_a, number)
    consent = check(api_key_a, number, include="consent")["consent"]
    assert consent["on_record"] is True and consent["revoked"] is False and consent["void"] is False

    # when the person opts out (and the pipeline erases the number)
    reference = unsubscribe(api_key_a, number, pipeline)

    # then the record is revoked by that request, and minimised: no evidence that identifies the person
    record.refresh_from_db()
    assert record.revoked_by_request is not None and record.revoked_by_request.reference == reference
    assert record.revoked_at is not None and record.minimised_at is not None
    assert record.evidence_ip is None
    assert (record.evidence_order_id, record.source_detail) == ("", "")
    assert (record.phone_hash, record.wording_sha256, record.evidence_page_version) == (
        digest,
        ConsentWording.objects.for_tenant(tenant_a).get().sha256,
        "signup-v3",
    )
    answer = check(api_key_a, number, include="consent")
    assert answer["suppressed"] is True and answer["consent"]["revoked"] is True
    # the erasure step says so on its receipt, and no raw number is left anywhere
    request_page = staff.get(
        reverse("admin:unsubscribe_unsubscriberequest_change", args=[record.revoked_by_request.pk]), **EN
    ).content.decode()
    assert "Kept 1 consent record minimised" in request_page
    assert "Consents it revoked" in request_page and record.phone_masked in request_page
    assert raw_number_findings(number, skip_outbox=True) == []
    # the subscription page shows the record and the request that revoked it
    page = staff.get(
        reverse("admin:unsubscribe_subscription_change", args=[subscription.pk]), **EN
    ).content.decode()
    assert 'data-testid="consent-records"' in page and reference in page

    # and after the tenant's consent retention the minimised record is purged with the rest
    assert tenant_a.consent_retention_days == 150
    with time_machine.travel(timezone_now() + timedelta(days=149), tick=False):
        tasks.purge_expired_records()
    assert ConsentRecord.objects.for_tenant(tenant_a).exists()
    with time_machine.travel(timezone_now() + timedelta(days=151), tick=False):
        assert tasks.purge_expired_records()["consents_purged"] == 1
    assert not ConsentRecord.objects.for_tenant(tenant_a).exists()


def timezone_now() -> datetime:
    return datetime.now(UTC)


def test_a_consent_imported_through_the_api_and_recorded_by_the_endpoint_is_revoked(
    tenant_a: Tenant, deals: Service, api_key_a: str, pipeline: Pipeline
) -> None:
    number, other = unique_number(), unique_number()
    imported = api(api_key_a).post(
        "/api/v1/subscriptions/import",
        [
            {
                "phone": number,
                "service": "daily-deals",
                "consent_at": "2025-02-01T10:00:00+08:00",
                "consent_method": "sms_keyword",
                "consent_wording": WORDING,
            },
            {"phone": other, "service": "daily-deals", "consent_ip": "not an address"},
        ],
        format="json",
    )
    assert imported.status_code == 200, imported.content
    assert imported.json()["created"] == 1
    assert imported.json()["errors"] == [{"index": 1, "field": "consent_ip", "message": "不是 IP 地址。"}]
    # a second consent, to the same service, recorded through the ledger's own endpoint
    body = {
        "phone": number,
        "service": "daily-deals",
        "source": "contract",
        "given_at": "2025-03-01",
        "wording": WORDING,
        "evidence": {"order_id": "C-77", "ip": "2001:db8::1"},
    }
    created = api(api_key_a).post("/api/v1/consents", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["wording"] == WORDING and created.json()["evidence"]["ip"] == "2001:db8::1"
    assert api(api_key_a).post("/api/v1/consents", body, format="json").status_code == 200  # on record
    assert ConsentWording.objects.for_tenant(tenant_a).count() == 1  # the words stored once
    listed = api(api_key_a).get("/api/v1/consents", {"phone": number}).json()
    assert [r["source"] for r in listed["results"]] == ["contract", "sms_keyword"]
    assert listed["results"][1]["captured_by"].startswith("API key")

    reference = unsubscribe(api_key_a, number, pipeline)

    listed = api(api_key_a).get("/api/v1/consents", {"phone": number}).json()
    assert {r["revoked_by_request"] for r in listed["results"]} == {reference}
    assert {r["evidence"]["ip"] for r in listed["results"]} == {None}
    # a consent older than the opt-out, reported afterwards, is on record already revoked
    late = api(api_key_a).post(
        "/api/v1/consents", {**body, "given_at": "2025-01-01", "evidence": {}}, format="json"
    )
    assert late.status_code == 201 and late.json()["revoked_by_request"] == reference


def test_the_consent_endpoint_refuses_what_is_not_evidence(
    tenant_a: Tenant, deals: Service, api_key_a: str
) -> None:
    client = api(api_key_a)
    base = {"phone": unique_number(), "service": "daily-deals", "source": "form"}
    future = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    for body, field in (
        ({**base, "given_at": future}, "given_at"),
        ({**base, "service": "no-such"}, "service"),
        ({**base, "phone": "12345"}, "phone"),
        ({**base, "source": "rumour"}, "source"),
        ({**base, "evidence": {"ip": "1.2.3"}}, "evidence.ip"),
    ):
        response = client.post("/api/v1/consents", body, format="json", **EN)
        assert response.status_code == 400, (body, response.content)
        assert field in [e["field"] for e in response.json()["errors"]], response.json()
    assert not ConsentRecord.objects.for_tenant(tenant_a).exists()


# --- reassigned numbers ------------------------------------------------------------------------


def test_a_reassignment_voids_older_consents_and_a_consent_after_it_stands(
    tenant_a: Tenant, deals: Service, api_key_a: str, alice: User, pipeline: Pipeline
) -> None:
    number = unique_number()
    # given the previous holder consented, then opted out of one service only … and another one consented
    other = Service.objects.create(tenant=tenant_a, name="Push offers", code="push-offers")
    api(api_key_a).post(
        "/api/v1/subscriptions/import",
        [
            {"phone": number, "service": "daily-deals", "consent_at": "2025-01-10"},
            {"phone": number, "service": "push-offers", "consent_at": "2025-01-10"},
        ],
        format="json",
    )
    with pipeline():
        filed = api(api_key_a).post(
            "/api/v1/unsubscribe-requests",
            {"phone": number, "channel": "app", "scope": ["push-offers"]},
            format="json",
        )
    assert filed.status_code == 201
    # when the operator reports the number reassigned on 1 March
    reported = api(api_key_a).post(
        "/api/v1/number-events",
        [
            {"phone": number, "event": "reassigned", "date": "2025-03-01"},
            {"phone": number, "event": "reassigned", "date": "2025-03-01"},
            {"phone": "12345", "event": "reassigned", "date": "2025-03-01"},
            {"phone": number, "event": "ported", "date": "2099-01-01"},
        ],
        format="json",
        **EN,
    )
    assert reported.status_code == 200, reported.content
    result = reported.json()
    assert (result["received"], result["recorded"], result["duplicates"], result["invalid"]) == (4, 1, 1, 2)
    assert {e["field"] for e in result["errors"]} == {"phone", "event", "date"}

    # then the consent on record is void, the check says since when, and the opt-out stands
    answer = check(api_key_a, number, include="consent", service="daily-deals", consented_at="2025-01-10")
    assert answer["reassigned_since"] == "2025-03-01"
    assert answer["reassigned_since_consent"] is True
    assert answer["consent"]["void"] is True and answer["consent"]["void_since"] == "2025-03-01"
    assert answer["suppressed"] is False
    assert check(api_key_a, number, service="push-offers")["suppressed"] is True  # the previous holder's
    # the staff see which subscriptions were voided, and how many on the report
    staff = Client()
    staff.force_login(alice)
    voided = staff.get(reverse("admin:unsubscribe_subscription_changelist"), {"consent_void": "yes"})
    assert {s.service.code for s in voided.context["cl"].result_list} == {"daily-deals", "push-offers"}
    events = api(api_key_a).get("/api/v1/number-events", {"phone": number}).json()["results"]
    assert [(e["event"], e["date"], e["voided_subscriptions"]) for e in events] == [
        ("reassigned", "2025-03-01", 2)
    ]

    # when the new holder consents after the reassignment
    with time_machine.travel(datetime(2025, 3, 5, 4, 0, tzinfo=UTC), tick=False):
        api(api_key_a).post(
            "/api/v1/subscriptions/import",
            [
                {
                    "phone": number,
                    "service": "daily-deals",
                    "consent_method": "form",
                    "consent_wording": WORDING,
                }
            ],
            format="json",
        )
    # then that consent stands (the check still names the reassignment) and the subscription is no longer void
    answer = check(api_key_a, number, include="consent", service="daily-deals", consented_at="2025-03-05")
    assert answer["consent"]["void"] is False and answer["consent"]["on_record"] is True
    assert answer["reassigned_since"] == "2025-03-01" and answer["reassigned_since_consent"] is False
    voided = staff.get(reverse("admin:unsubscribe_subscription_changelist"), {"consent_void": "yes"})
    assert {s.service.code for s in voided.context["cl"].result_list} == {"push-offers"}
    assert other.pk  # the earlier opt-out of push offers still suppresses the number


def test_the_bulk_check_takes_a_consent_time_per_number(
    tenant_a: Tenant, deals: Service, api_key_a: str
) -> None:
    reassigned, fresh = unique_number(), unique_number()
    api(api_key_a).post(
        "/api/v1/number-events",
        [{"phone": reassigned, "event": "deactivated", "date": "2025-02-10"}],
        format="json",
    )
    response = api(api_key_a).post(
        "/api/v1/suppressions/check",
        {
            "phones": [
                {"phone": reassigned, "consented_at": "2025-02-11"},
                {"phone": reassigned, "consented_at": "2025-02-10T23:00:00+08:00"},
                reassigned,
                fresh,
                {"phone": fresh, "consented_at": "not a date"},
            ],
            "consented_at": "2024-12-31",
            "include": ["consent"],
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r.get("reassigned_since_consent") for r in results[:4]] == [False, True, True, False]
    assert results[0]["reassigned_since"] == "2025-02-10" and "reassigned_since" not in results[3]
    assert results[3]["consent"] == {
        "on_record": False,
        "given_at": None,
        "revoked": False,
        "revoked_at": None,
        "void": False,
        "void_since": None,
    }
    assert results[4]["valid"] is False and "consented_at" in results[4]["error"]
    # without the new parameters the answer is as it always was
    plain = api(api_key_a).post("/api/v1/suppressions/check", {"phones": [fresh]}, format="json").json()
    assert set(plain["results"][0]) == {"phone", "valid", "e164", "suppressed", "since", "scopes"}
    for bad in ({"phones": [fresh], "include": ["everything"]}, {"phones": [fresh], "consented_at": "soon"}):
        assert api(api_key_a).post("/api/v1/suppressions/check", bad, format="json").status_code == 400
    assert (
        api(api_key_a).get("/api/v1/suppressions/check", {"phone": fresh, "include": "x"}).status_code == 400
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    consent_day=st.dates(min_value=date(2024, 1, 1), max_value=date(2025, 12, 31)),
    event_offset=st.integers(min_value=-60, max_value=60),
    hour=st.integers(min_value=0, max_value=23),
)
@example(consent_day=date(2025, 3, 1), event_offset=0, hour=23)  # the same day: void (either holder)
@example(consent_day=date(2025, 3, 2), event_offset=-1, hour=0)  # the day after: stands
def test_a_consent_is_void_exactly_when_the_number_changed_hands_on_or_after_its_day(
    tenant_a: Tenant, deals: Service, api_key_a: str, consent_day: date, event_offset: int, hour: int
) -> None:
    number = unique_number()
    event_day = consent_day + timedelta(days=event_offset)
    given_at = f"{consent_day.isoformat()}T{hour:02d}:30:00"  # the tenant's wall time (Asia/Shanghai)
    with time_machine.travel(datetime(2026, 6, 1, tzinfo=UTC), tick=False):
        created = api(api_key_a).post(
            "/api/v1/consents",
            {"phone": number, "service": "daily-deals", "source": "form", "given_at": given_at},
            format="json",
        )
        assert created.status_code == 201, created.content
        reported = api(api_key_a).post(
            "/api/v1/number-events",
            [{"phone": number, "event": "reassigned", "date": event_day.isoformat()}],
            format="json",
        )
        assert reported.json()["recorded"] == 1
        answer = check(api_key_a, number, include="consent", consented_at=given_at)
    void = event_day >= consent_day
    assert answer["consent"]["void"] is void
    assert answer["reassigned_since_consent"] is void
    assert answer["reassigned_since"] == event_day.isoformat()
    record = ConsentRecord.objects.for_tenant(tenant_a).get(
        phone_hash=phones.tenant_phone_hash(tenant_a.pk, number)
    )
    assert (void_since(record.given_at, [event_day], tenant_a.zoneinfo) is not None) is void
    subscription_void = Subscription.objects.for_tenant(tenant_a).filter(phone_hash=record.phone_hash)
    assert not subscription_void.exists()  # the ledger records evidence; it makes no subscription


# --- the CSV upload of reports and tenant isolation --------------------------------------------


def test_staff_upload_reports_as_a_csv(tenant_a: Tenant, alice: User, charlie: User, deals: Service) -> None:
    number = unique_number()
    staff = Client()
    staff.force_login(alice)
    csv_text = (
        f"phone,event,date\n{number},deactivated,2025-04-01\n{number},deactivated,2025-04-01\n12345,x,y\n"
    )
    response = staff.post(
        reverse("admin:unsubscribe_numberevent_upload"),
        {"tenant": tenant_a.pk, "file": SimpleUploadedFile("events.csv", csv_text.encode())},
        follow=True,
        **EN,
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "1 recorded, 1 already on record, 1 invalid." in page
    event = NumberEvent.objects.for_tenant(tenant_a).get()
    assert (event.kind, event.occurred_on, event.phone_masked) == (
        "deactivated",
        date(2025, 4, 1),
        phones.mask(number),
    )
    assert raw_number_findings(number) == []
    missing = staff.post(
        reverse("admin:unsubscribe_numberevent_upload"),
        {"tenant": tenant_a.pk, "file": SimpleUploadedFile("events.csv", b"number,when\n1,2\n")},
        **EN,
    )
    assert "The header row must name the columns phone, event, date." in missing.content.decode()
    # another tenant's staff cannot report for this tenant, nor see its reports
    other = Client()
    other.force_login(charlie)
    refused = other.post(
        reverse("admin:unsubscribe_numberevent_upload"),
        {"tenant": tenant_a.pk, "file": SimpleUploadedFile("events.csv", csv_text.encode())},
        **EN,
    )
    assert refused.status_code == 200 and "tenant" in refused.context["form"].errors
    listed = other.get(reverse("admin:unsubscribe_numberevent_changelist"))
    assert list(listed.context["cl"].result_list) == []
    assert NumberEvent.objects.for_tenant(tenant_a).count() == 1


def test_an_operator_feed_posts_reports_as_csv(tenant_a: Tenant, api_key_a: str, deals: Service) -> None:
    number = unique_number()
    body = f"\ufeffphone,event,date\n{number},reassigned,2025-03-01\n{number},reassigned,2025-03-01\n1,x,y\n"
    response = api(api_key_a).post("/api/v1/number-events", body, content_type="text/csv", **EN)
    assert response.status_code == 200, response.content
    assert response.json() | {"errors": []} == {
        "received": 3,
        "recorded": 1,
        "duplicates": 1,
        "invalid": 1,
        "errors": [],
    }
    assert check(api_key_a, number)["reassigned_since"] == "2025-03-01"
    assert raw_number_findings(number) == []
    # a CSV without the columns is a 400 problem that names them
    refused = api(api_key_a).post(
        "/api/v1/number-events", "number,when\n1,2\n", content_type="text/csv", **EN
    )
    assert refused.status_code == 400
    assert (
        refused.json()["errors"][0]["message"] == "The header row must name the columns phone, event, date."
    )
    unreadable = api(api_key_a).post(
        "/api/v1/number-events", "phone,event,date\n" + "1" * 200_000, content_type="text/csv", **EN
    )
    assert unreadable.status_code == 400
    assert unreadable.json()["errors"][0]["message"] == "The file is not a readable CSV."


def test_another_tenants_key_sees_none_of_it(
    tenant_a: Tenant, tenant_b: Tenant, deals: Service, deals_b: Service, api_key_a: str, api_key_b: str
) -> None:
    number = unique_number()
    a = api(api_key_a)
    assert (
        a.post(
            "/api/v1/consents",
            {"phone": number, "service": "daily-deals", "source": "form", "given_at": "2025-01-01"},
            format="json",
        ).status_code
        == 201
    )
    a.post(
        "/api/v1/number-events",
        [{"phone": number, "event": "reassigned", "date": "2025-02-01"}],
        format="json",
    )
    b = api(api_key_b)
    assert b.get("/api/v1/consents", {"phone": number}).json()["results"] == []
    assert b.get("/api/v1/consents", {"phone": number}).json()["reassigned_since"] is None
    assert b.get("/api/v1/number-events", {"phone": number}).json()["results"] == []
    answer = check(api_key_b, number, include="consent", consented_at="2025-01-01")
    assert answer["consent"]["on_record"] is False and "reassigned_since" not in answer
    assert answer["reassigned_since_consent"] is False
    # the digests differ: nothing in B's answers links to A's rows
    assert (
        b.get("/api/v1/consents", {"phone": number}).json()["phone_hash"]
        != (a.get("/api/v1/consents", {"phone": number}).json()["phone_hash"])
    )
    # and B's own records stay B's
    assert (
        b.post(
            "/api/v1/consents",
            {"phone": number, "service": "daily-deals", "source": "import", "given_at": "2025-01-01"},
            format="json",
        ).status_code
        == 201
    )
    assert len(a.get("/api/v1/consents", {"phone": number}).json()["results"]) == 1
    assert ConsentRecord.objects.for_tenant(tenant_b).get().service == deals_b


def test_the_tenant_sets_the_consent_retention(tenant_a: Tenant, alice: User, eager_celery: Celery) -> None:
    staff = Client()
    staff.force_login(alice)
    page = staff.get(reverse("admin:tenants_tenant_change", args=[tenant_a.pk]), **EN).content.decode()
    assert "Consent evidence retention (days)" in page and "2020 MIIT draft" in page


def test_a_verified_re_subscribe_is_a_consent_on_record(
    tenant_a: Tenant, deals: Service, api_key_a: str, pipeline: Pipeline
) -> None:
    number = unique_number()
    api(api_key_a).post(
        "/api/v1/subscriptions/import",
        [{"phone": number, "service": "daily-deals", "consent_at": "2025-01-31"}],
        format="json",
    )
    unsubscribe(api_key_a, number, pipeline)
    assert check(api_key_a, number, include="consent")["consent"]["revoked"] is True
    # when the person replies to receive the offers again (verified: the SMS came from the number)
    lift = suppression_lift(
        tenant=tenant_a, phone=number, channel="sms", verification_method="sms_origin", evidence={}
    )
    assert lift.reactivated == 1
    # then the new consent is the one on record, and it stands
    consent = check(api_key_a, number, include="consent", service="daily-deals")["consent"]
    assert consent["on_record"] is True and consent["revoked"] is False and consent["void"] is False
    records = api(api_key_a).get("/api/v1/consents", {"phone": number}).json()["results"]
    assert [(r["source"], r["revoked_by_request"] is None) for r in records] == [
        ("sms_keyword", True),
        ("import", False),
    ]


def _list_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url, **EN).status_code == 200
    return len(queries)


def test_the_ledger_lists_read_event_days_once_per_page_not_once_per_row(
    tenant_a: Tenant, root: User, deals: Service
) -> None:
    staff = Client()
    staff.force_login(root)
    pages = [
        reverse("admin:unsubscribe_consentrecord_changelist"),
        reverse("admin:unsubscribe_numberevent_changelist"),
        reverse("admin:unsubscribe_subscription_changelist"),
    ]

    def add(count: int) -> None:
        for _ in range(count):
            number = unique_number()
            digest = phones.tenant_phone_hash(tenant_a.pk, number)
            given = datetime(2025, 1, 10, tzinfo=UTC)
            Subscription.objects.create(
                tenant=tenant_a, service=deals, phone=number, phone_hash=digest,
                phone_masked=phones.mask(number), consent_at=given,
            )  # fmt: skip
            ConsentRecord.objects.create(
                tenant=tenant_a, service=deals, phone_hash=digest, phone_masked=phones.mask(number),
                source="form", given_at=given,
            )  # fmt: skip
            NumberEvent.objects.create(
                tenant=tenant_a, phone_hash=digest, phone_masked=phones.mask(number), kind="reassigned",
                occurred_on=date(2025, 3, 1),
            )  # fmt: skip

    add(2)
    few = [_list_queries(staff, url) for url in pages]
    add(10)
    many = [_list_queries(staff, url) for url in pages]
    assert many == few
    # and what they show is still each row's own
    listed = staff.get(pages[1], **EN).content.decode()
    assert listed.count('<td class="field-voided_count">1</td>') == 12
