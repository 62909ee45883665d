"""The send-log API (issue 17): `POST /api/v1/send-logs` with a JSON list (stored at once) or a CSV
(a background import with progress at `GET /api/v1/send-logs/imports/{id}`), duplicates, row errors,
isolation between tenants, and the `suppression.violated` webhook delivered for real."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from lanzuan import phones
from unsubscribe.donotmarket.services import platform_do_not_market_set
from unsubscribe.models import SendLogEntry, SendViolation, Service
from unsubscribe.partner import sendlog_import
from unsubscribe.partner import tasks as partner_tasks
from unsubscribe.partner.models import SendLogImport
from unsubscribe.partner.tasks import run_send_log_import
from unsubscribe.sendlogs import services as sendlog_services

from .pipeline_helpers import E164, NUMBER, file
from .test_partner_webhooks import endpoint_for, receiver, sync_delivery  # noqa: F401  (a fixture)

if TYPE_CHECKING:
    from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

    from tenants.models import Tenant

PROBLEM = "application/problem+json"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
EN: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture(autouse=True)
def generous_rates(settings: Settings) -> None:
    settings.LANZUAN_API_RATES = {"partner": "100000/min", "partner_bulk": "100000/min"}


def api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.fixture
def offers(tenant_a: Tenant) -> Service:
    return Service.objects.create(tenant=tenant_a, name="Offers", code="offers")


def post_json(client: APIClient, body: Any) -> Any:
    return client.post("/api/v1/send-logs", json.dumps(body), content_type="application/json", **EN)


def test_a_json_list_is_stored_with_its_counts(api_key_a: str, tenant_a: Tenant, offers: Service) -> None:
    # given two good records, one repeated, and one with a bad number
    records = [
        {"phone": NUMBER, "sent_at": "2026-03-02T16:00:00+08:00", "service": "offers", "message_id": "m-1"},
        {
            "phone_hash": phones.tenant_phone_hash(tenant_a.pk, "+8613900139000"),
            "sent_at": "2026-03-02T16:00:00",
        },
        {"phone": NUMBER, "sent_at": "2026-03-02T16:05:00+08:00", "service": "offers", "message_id": "m-1"},
        {"phone": "12345", "sent_at": "2026-03-02T08:00:00Z"},
    ]

    # when
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        response = post_json(api(api_key_a), records)

    # then
    assert response.status_code == 201, response.content
    assert response.json() == {
        "received": 4,
        "accepted": 2,
        "duplicates": 1,
        "invalid": 1,
        "violations": 0,
        "errors": [{"row": 3, "field": "phone", "message": "That is not a valid phone number."}],
    }
    stored = SendLogEntry.objects.for_tenant(tenant_a).order_by("sent_at")
    assert sorted((e.service_code, e.sent_at) for e in stored) == [
        ("", T0),
        ("offers", T0),
    ]  # local: Shanghai
    assert {e.phone_hash for e in stored} == {
        phones.tenant_phone_hash(tenant_a.pk, E164),
        phones.tenant_phone_hash(tenant_a.pk, "+8613900139000"),
    }
    # sending the batch again stores nothing new
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        again = post_json(api(api_key_a), records).json()
    assert (again["accepted"], again["duplicates"], again["invalid"]) == (0, 3, 1)


def test_a_send_to_a_number_on_the_platform_do_not_market_list_is_a_violation(
    api_key_a: str, tenant_a: Tenant, offers: Service
) -> None:
    """The person's platform-wide entry (issue 17) binds this tenant although it never had an
    opt-out of its own: a send reported with the number after the entry is a violation, one before
    it is not; the tenant cannot tell from a digest alone, so a send reported by digest is not."""
    with time_machine.travel(T0, tick=False):
        platform_do_not_market_set(e164=E164, evidence={"test": True})
    records = [
        {"phone": NUMBER, "sent_at": (T0 - timedelta(hours=1)).isoformat(), "message_id": "before"},
        {"phone": NUMBER, "sent_at": (T0 + timedelta(hours=1)).isoformat(), "message_id": "after"},
    ]
    by_digest = {
        "phone_hash": phones.tenant_phone_hash(tenant_a.pk, E164),
        "sent_at": (T0 + timedelta(hours=2)).isoformat(),
        "message_id": "by-digest",
    }
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        response = post_json(api(api_key_a), records)
        alone = post_json(api(api_key_a), [by_digest])
    assert response.status_code == 201, response.content
    assert response.json()["violations"] == 1
    assert alone.json()["violations"] == 0
    (violation,) = SendViolation.objects.for_tenant(tenant_a)
    assert violation.sent_at == T0 + timedelta(hours=1) and violation.suppressed_at == T0
    assert violation.scope == "*" and violation.request_id is None


def test_bad_input_is_a_400_problem_naming_the_row_and_field(api_key_a: str, offers: Service) -> None:
    client = api(api_key_a)
    bad = post_json(
        client, [{"phone": NUMBER}, {"phone": NUMBER, "sent_at": "yesterday", "service": "nope"}, 7]
    )
    assert bad.status_code == 400 and bad["Content-Type"] == PROBLEM
    fields = [e["field"] for e in bad.json()["errors"]]
    assert fields == ["[0].sent_at", "[1].sent_at", "[1].service", "[2]"]

    for body in ({"phone": NUMBER}, "text", None):
        response = post_json(client, body)
        assert response.status_code == 400 and response["Content-Type"] == PROBLEM
        assert response.json()["errors"][0]["field"] == "body"
    too_many = post_json(client, [{"phone": NUMBER, "sent_at": "2026-03-02T08:00:00Z"}] * 10_001)
    assert too_many.status_code == 413 and too_many.json()["code"] == "too_many_numbers"
    # in the API's default language, zh-Hans
    zh = client.post("/api/v1/send-logs", json.dumps([{"phone": NUMBER}]), content_type="application/json")
    assert zh.json()["errors"][0]["message"] == "此字段为必填项。"


def test_a_number_and_its_digest_both_or_neither_are_refused(api_key_a: str) -> None:
    both = {"phone": NUMBER, "phone_hash": "a" * 64, "sent_at": "2026-03-02T08:00:00Z"}
    neither = {"sent_at": "2026-03-02T08:00:00Z"}
    future = {"phone": NUMBER, "sent_at": "2999-03-02T08:00:00Z"}
    bad_digest = {"phone_hash": "xyz", "sent_at": "2026-03-02T08:00:00Z"}
    response = post_json(api(api_key_a), [both, neither, future, bad_digest])
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [
        "[0].phone",
        "[1].phone",
        "[2].sent_at",
        "[3].phone_hash",
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "phone",
                        "phone_hash",
                        "sent_at",
                        "service",
                        "category",
                        "template",
                        "message_id",
                        "engaged_at",
                        "x",
                    ]
                ),
                children,
                max_size=6,
            )
        ),
        max_leaves=12,
    )
    | st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "phone": st.sampled_from([NUMBER, "13800138000", "+1 415 555 2671", "", "0", "\x00"])
                | st.text(max_size=20),
                "phone_hash": st.text(alphabet="0123456789abcdefA", min_size=60, max_size=66),
                "sent_at": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
                | st.text(max_size=30),
                "service": st.sampled_from(["offers", "", "nope"]) | st.text(max_size=120),
                "template": st.text(max_size=120),
                "message_id": st.text(max_size=120),
                "engaged_at": st.text(max_size=30),
            },
        ),
        max_size=5,
    )
)
def test_any_body_is_answered_never_a_500(api_key_a: str, offers: Service, body: Any) -> None:
    response = post_json(api(api_key_a), body)
    assert response.status_code in (201, 400, 413), response.content
    if response.status_code != 201:
        assert response["Content-Type"] == PROBLEM


def upload(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("sent.csv", text.encode(), content_type="text/csv")


CSV = (
    "phone,sent_at,service,template,message_id\n"
    f"{NUMBER},2026-03-02T10:00:00Z,offers,t1,a\n"
    "13900139000,2026-03-02T10:00:00Z,,t1,b\n"
    "\n"
    "not-a-number,2026-03-02T10:00:00Z,,t1,c\n"
    f"{NUMBER},2026-03-02T11:00:00Z,offers,t1,a\n"
    f"{NUMBER},2026-03-02T12:00:00Z,offers,t2,d\n"
)


def test_a_csv_is_imported_in_the_background_with_progress(
    api_key_a: str,
    api_key_b: str,
    tenant_a: Tenant,
    offers: Service,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given the number opted out at T0, and imports read two rows a chunk
    with time_machine.travel(T0, tick=False):
        request = file(tenant_a, NUMBER)
    monkeypatch.setattr(sendlog_import, "CHUNK_ROWS", 2)
    client = api(api_key_a)

    # when the CSV is uploaded
    with time_machine.travel(T0 + timedelta(hours=6), tick=True):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = client.post("/api/v1/send-logs", {"file": upload(CSV)}, format="multipart")
        assert response.status_code == 202, response.content
        job = response.json()
        assert job["state"] == "pending" and job["total_rows"] == 6 and job["rows_done"] == 0
        assert len(callbacks) == 1  # queued after commit

        # a chunk at a time: the progress read in between is what is stored
        seen: list[int] = []
        real_ingest = sendlog_services.send_logs_ingest

        def ingest_and_look(**kwargs: Any) -> Any:
            seen.append(client.get(f"/api/v1/send-logs/imports/{job['id']}").json()["rows_done"])
            return real_ingest(**kwargs)

        monkeypatch.setattr(sendlog_services, "send_logs_ingest", ingest_and_look)
        run_send_log_import(job["id"])

    # then
    done = client.get(f"/api/v1/send-logs/imports/{job['id']}", **EN).json()
    assert seen == [0, 2, 4]
    assert done["state"] == "done" and done["percent"] == 100 and done["rows_done"] == 5
    assert (done["accepted"], done["duplicates"], done["invalid"], done["violations"]) == (3, 1, 1, 2)
    # stored in the tenant's language (zh-Hans here), whoever reads them
    assert done["errors"] == [{"row": 5, "field": "phone", "message": "这不是有效的手机号码。"}]
    assert {v.request_id for v in SendViolation.objects.for_tenant(tenant_a)} == {request.pk}
    # the upload is gone; another tenant's key cannot read the import
    assert not SendLogImport.objects.for_tenant(tenant_a).get().file
    other = api(api_key_b).get(f"/api/v1/send-logs/imports/{job['id']}")
    assert other.status_code == 404 and other["Content-Type"] == PROBLEM


def test_a_text_csv_body_is_an_import_too_and_a_bad_header_fails_it(api_key_a: str, tenant_a: Tenant) -> None:
    client = api(api_key_a)
    response = client.post(
        "/api/v1/send-logs", "phone,sent_at\n13800138000,2026-03-02T10:00:00Z\n", content_type="text/csv"
    )
    assert response.status_code == 202, response.content
    run_send_log_import(response.json()["id"])
    assert client.get(response.json()["url"]).json()["accepted"] == 1

    # a body that does not start with a header naming sent_at is refused at once
    bad = client.post("/api/v1/send-logs", "number,when\n13800138000,x\n", content_type="text/csv", **EN)
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "body"
    # one naming no number column fails as a job, saying why
    nameless = client.post(
        "/api/v1/send-logs", "sent_at,service\n2026-03-02T10:00:00Z,x\n", content_type="text/csv"
    )
    run_send_log_import(nameless.json()["id"])
    failed = client.get(nameless.json()["url"], **EN).json()
    assert failed["state"] == "failed" and "phone" in failed["error"] and "sent_at" in failed["error"]

    empty = client.post("/api/v1/send-logs", {"file": upload("")}, format="multipart")
    assert empty.status_code == 400 and empty.json()["errors"][0]["field"] == "file"


def test_a_job_whose_worker_died_goes_on_from_its_last_chunk(
    api_key_a: str, tenant_a: Tenant, offers: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sendlog_import, "CHUNK_ROWS", 2)
    client = api(api_key_a)
    with time_machine.travel(T0 + timedelta(hours=6), tick=True):
        job = client.post("/api/v1/send-logs", {"file": upload(CSV)}, format="multipart").json()
        real_ingest = sendlog_services.send_logs_ingest
        calls: list[int] = []

        def die_on_the_second_chunk(**kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) == 2:
                raise SystemExit("worker killed")  # not an Exception: the job stays claimed
            return real_ingest(**kwargs)

        monkeypatch.setattr(sendlog_services, "send_logs_ingest", die_on_the_second_chunk)
        with pytest.raises(SystemExit):
            run_send_log_import(job["id"])
        halfway = client.get(job["url"]).json()
        assert (halfway["state"], halfway["rows_done"]) == ("running", 2)
    # the lease runs out; the sweep queues it again, and it goes on
    with time_machine.travel(T0 + timedelta(hours=7), tick=True):
        monkeypatch.setattr(sendlog_services, "send_logs_ingest", real_ingest)
        monkeypatch.setattr(
            partner_tasks.run_send_log_import,
            "apply_async",
            lambda args, **kw: run_send_log_import(*args),
        )
        assert sendlog_import.send_log_imports_sweep() == {"send_log_imports_dispatched": 1}
    done = client.get(job["url"]).json()
    assert (done["state"], done["rows_done"], done["accepted"], done["duplicates"], done["invalid"]) == (
        "done",
        5,
        3,
        1,
        1,
    )


def test_a_violation_is_sent_as_the_suppression_violated_webhook(
    api_key_a: str,
    tenant_a: Tenant,
    offers: Service,
    sync_delivery: list[str],  # noqa: F811  (the fixture, imported)
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with time_machine.travel(T0, tick=False):
        request = file(tenant_a, NUMBER, services=["offers"])
    with receiver() as hooks:
        endpoint_for(tenant_a, hooks.url, ["suppression.violated"])
        with (
            time_machine.travel(T0 + timedelta(days=1), tick=True),
            django_capture_on_commit_callbacks(execute=True),
        ):
            response = post_json(
                api(api_key_a),
                [
                    {"phone": NUMBER, "sent_at": "2026-03-02T07:00:00Z", "service": "offers"},  # before: fine
                    {"phone": NUMBER, "sent_at": "2026-03-02T09:00:00Z", "service": "offers"},
                    {"phone": NUMBER, "sent_at": "2026-03-02T10:00:00Z", "service": "offers"},
                ],
            )
        assert response.json()["violations"] == 2
    assert sync_delivery == ["delivered"]
    (delivery,) = hooks.received
    assert delivery["valid"] and delivery["headers"]["X-Lanzuan-Event"] == "suppression.violated"
    body = json.loads(delivery["body"])
    assert body["event"] == "suppression.violated" and body["tenant"] == tenant_a.slug
    data = body["data"]
    assert data["reference"] == request.reference and data["messages"] == 2 and data["scopes"] == ["offers"]
    assert data["phone_hash"] == phones.tenant_phone_hash(tenant_a.pk, E164)
    assert NUMBER not in delivery["body"].decode() and "13800138000" not in delivery["body"].decode()
