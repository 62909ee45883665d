"""Partner API v1 through DRF's APIClient with real API keys: filing with
idempotency, reads and isolation, suppression checks (single and bulk), scrub jobs,
subscription imports, problem details, throttling and the OpenAPI schema."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import StreamingHttpResponse
from django.utils import timezone
from rest_framework.test import APIClient

from lanzuan import phones
from unsubscribe.models import ChannelSetting, Service, Subscription, UnsubscribeRequest
from unsubscribe.partner import scrub
from unsubscribe.partner.models import ScrubJob
from unsubscribe.partner.tasks import run_scrub_job
from unsubscribe.partner.views import idempotency_lock_key

if TYPE_CHECKING:
    from django.http.response import HttpResponseBase
    from django.test import Client
    from pytest_django import DjangoAssertNumQueries, DjangoCaptureOnCommitCallbacks, Settings
    from rest_framework.response import _MonkeyPatchedResponse as ApiResponse

    from tenants.models import Tenant

PROBLEM = "application/problem+json"
NUMBER = "+8613800138000"
OTHER = "+8613912345678"


@pytest.fixture(autouse=True)
def partner_settings(settings: Settings) -> None:
    """The settings lines the partner API asks for (until they are in settings.py)."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "EXCEPTION_HANDLER": "unsubscribe.partner.problems.problem_exception_handler",
    }
    settings.LANZUAN_API_RATES = {"partner": "600/min", "partner_bulk": "60/min"}


def client_for(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.fixture
def api_a(api_key_a: str) -> APIClient:
    return client_for(api_key_a)


@pytest.fixture
def api_b(api_key_b: str) -> APIClient:
    return client_for(api_key_b)


@pytest.fixture
def offers(tenant_a: Tenant) -> Service:
    return Service.objects.create(tenant=tenant_a, name="Daily deals", code="daily-deals")


def assert_problem(response: ApiResponse, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:lanzuan:problem:")
    assert body["title"] and body["detail"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body


def file_request(api: APIClient, phone: str = NUMBER, key: str | None = None, **body: Any) -> ApiResponse:
    headers: dict[str, Any] = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api.post("/api/v1/unsubscribe-requests", {"phone": phone, **body}, format="json", **headers)


def streamed(response: HttpResponseBase) -> bytes:
    """The body of a response that must be streamed (results are never built in memory)."""
    assert isinstance(response, StreamingHttpResponse)
    return response.getvalue()  # b"".join(streaming_content), typed as bytes


# --- authentication and problem details ------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer abc", "Api-Key not-a-real-key"])
def test_missing_or_invalid_key_is_a_401_problem(db: None, header: str | None) -> None:
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/unsubscribe-requests")
    body = assert_problem(response, 401)
    assert response["WWW-Authenticate"] == "Api-Key"
    assert body["instance"] == "/api/v1/unsubscribe-requests"


def test_global_handler_makes_other_endpoints_problems_too(db: None) -> None:
    # /api/v1/me is not a partner view: it answers problems through the settings line
    response = APIClient().get("/api/v1/me")
    assert_problem(response, 401)


# --- filing requests -------------------------------------------------------------------


def test_file_request_answers_201_and_the_number_is_suppressed_at_once(
    api_a: APIClient, tenant_a: Tenant
) -> None:
    # when a hotline agent files a request
    response = file_request(
        api_a,
        phone="138 0013 8000",
        channel="hotline",
        scope="all",
        verification={"method": "agent_assertion", "agent_id": "A123"},
    )

    # then it is filed and suppressed, with its steps
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "suppressed" and body["scope"] == "all" and body["channel"] == "hotline"
    assert body["phone_masked"] == "138****8000" and "phone" not in body
    assert body["suppressed_at"] and body["url"].endswith(f"/api/v1/unsubscribe-requests/{body['reference']}")
    assert {s["kind"] for s in body["steps"]} == {"terminate", "confirm", "erase"}  # Lanzuan's own records
    request = UnsubscribeRequest.objects.for_tenant(tenant_a).get(reference=body["reference"])
    assert request.verification_method == "agent_assertion"
    assert request.verification_evidence["agent_id"] == "A123"

    # and the check endpoint says so right away
    check = api_a.get("/api/v1/suppressions/check", {"phone": NUMBER})
    assert check.status_code == 200
    assert check.json()["suppressed"] is True and check.json()["since"]


def test_file_request_for_some_services_defaults_to_partner_assertion(
    api_a: APIClient, offers: Service, tenant_a: Tenant
) -> None:
    response = file_request(api_a, channel="app", scope=["daily-deals"])
    assert response.status_code == 201, response.content
    assert response.json()["scope"] == ["daily-deals"]
    request = UnsubscribeRequest.objects.for_tenant(tenant_a).get()
    assert request.verification_method == "partner_assertion"
    # suppressed for that service, not for everything
    only = api_a.get("/api/v1/suppressions/check", {"phone": NUMBER}).json()
    assert only["suppressed"] is False and only["scopes"] == ["daily-deals"]
    for_service = api_a.get("/api/v1/suppressions/check", {"phone": NUMBER, "service": "daily-deals"})
    assert for_service.json()["suppressed"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "12345"}, "phone"),
        ({"phone": ""}, "phone"),
        ({"phone": NUMBER, "scope": ["no-such-service"]}, "scope"),
        ({"phone": NUMBER, "scope": "everything"}, "scope"),
        ({"phone": NUMBER, "channel": "sms"}, "channel"),
        ({"phone": NUMBER, "verification": {"method": "agent_assertion"}}, "verification.agent_id"),
        ({"phone": NUMBER, "verification": {"method": "admin"}}, "verification.method"),
        ({"phone": NUMBER, "verification": "trust me"}, "verification"),
    ],
)
def test_invalid_requests_are_400_problems_naming_the_field(
    api_a: APIClient, body: dict[str, Any], field: str
) -> None:
    response = api_a.post("/api/v1/unsubscribe-requests", body, format="json")
    assert_problem(response, 400, field)
    assert not UnsubscribeRequest.objects.unscoped(reason="test").exists()


def test_disabled_channel_is_a_403_naming_it(api_a: APIClient, tenant_a: Tenant) -> None:
    ChannelSetting.objects.create(tenant=tenant_a, channel="hotline", enabled=False)
    response = file_request(
        api_a, channel="hotline", verification={"method": "agent_assertion", "agent_id": "7"}
    )
    body = assert_problem(response, 403, "channel")
    assert "Hotline" in body["detail"] or "热线" in body["detail"]
    assert body["code"] == "channel_disabled"


def test_malformed_json_is_a_400_problem(api_a: APIClient) -> None:
    response = api_a.generic(
        "POST", "/api/v1/unsubscribe-requests", "{not json", content_type="application/json"
    )
    assert_problem(response, 400)


# --- idempotency -------------------------------------------------------------------------


def test_same_key_same_body_returns_the_original_request(api_a: APIClient, tenant_a: Tenant) -> None:
    first = file_request(api_a, key="order-1", channel="app")
    again = file_request(api_a, key="order-1", channel="app")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["reference"] == again.json()["reference"]
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1


def test_same_key_other_body_is_422(api_a: APIClient) -> None:
    assert file_request(api_a, key="order-2", channel="app").status_code == 201
    response = file_request(api_a, phone=OTHER, key="order-2", channel="app")
    body = assert_problem(response, 422, "Idempotency-Key")
    assert body["code"] == "idempotency_conflict"


def test_same_key_while_the_first_call_runs_is_409(api_a: APIClient, tenant_a: Tenant) -> None:
    # given a call with this key that has not finished (it holds the lock)
    lock = idempotency_lock_key(tenant_a.pk, "order-3")
    assert cache.add(lock, 1, timeout=30)
    try:
        response = file_request(api_a, key="order-3", channel="app")
    finally:
        cache.delete(lock)
    assert_problem(response, 409, "Idempotency-Key")
    assert not UnsubscribeRequest.objects.unscoped(reason="test").exists()
    # once it is released, the key works
    assert file_request(api_a, key="order-3", channel="app").status_code == 201


def test_keys_are_per_tenant(api_a: APIClient, api_b: APIClient) -> None:
    a = file_request(api_a, key="same", channel="app")
    b = file_request(api_b, key="same", channel="app", phone=OTHER)
    assert (a.status_code, b.status_code) == (201, 201)


# --- reading and isolation -----------------------------------------------------------------


def test_another_tenants_reference_is_404(api_a: APIClient, api_b: APIClient) -> None:
    reference = file_request(api_b, channel="app").json()["reference"]
    assert api_b.get(f"/api/v1/unsubscribe-requests/{reference}").status_code == 200
    assert_problem(api_a.get(f"/api/v1/unsubscribe-requests/{reference}"), 404)
    # typed loosely it still resolves for its owner
    loose = reference.replace("-", "").lower()
    assert api_b.get(f"/api/v1/unsubscribe-requests/{loose}").json()["reference"] == reference


def test_list_filters_and_cursor_paging(
    frozen_clock: datetime,
    api_a: APIClient,
    api_b: APIClient,
    tenant_a: Tenant,
    django_assert_max_num_queries: DjangoAssertNumQueries,
) -> None:
    # given five requests of A at different times, and one of B (at each of the test clocks)
    now = timezone.now()
    for i in range(5):
        channel = "app" if i % 2 == 0 else "hotline"
        verification = {"method": "agent_assertion", "agent_id": "A1"} if channel == "hotline" else None
        body: dict[str, Any] = {
            "channel": channel,
            **({"verification": verification} if verification else {}),
        }
        reference = file_request(api_a, phone=f"+86139000000{i:02d}", **body).json()["reference"]
        UnsubscribeRequest.objects.unscoped(reason="test").filter(reference=reference).update(
            received_at=now - timedelta(days=i)
        )
    file_request(api_b, channel="app")

    # all of A's, newest first, two per page, following next
    seen, url = [], "/api/v1/unsubscribe-requests?page_size=2"
    while url:
        with django_assert_max_num_queries(8):
            page = api_a.get(url).json()
        assert len(page["results"]) <= 2
        seen += [r["received_at"] for r in page["results"]]
        url = page["next"]
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)

    # filters
    apps = api_a.get("/api/v1/unsubscribe-requests", {"channel": "app"}).json()["results"]
    assert len(apps) == 3 and {r["channel"] for r in apps} == {"app"}
    recent = api_a.get(
        "/api/v1/unsubscribe-requests", {"created_after": (now - timedelta(days=1, hours=1)).isoformat()}
    ).json()["results"]
    assert len(recent) == 2
    old = api_a.get(
        "/api/v1/unsubscribe-requests",
        # a bare date is a day where the tenant is: before the day of the one 3 days ago
        {"created_before": timezone.localtime(now - timedelta(days=3), tenant_a.zoneinfo).date().isoformat()},
    ).json()["results"]
    assert len(old) == 1
    assert api_a.get("/api/v1/unsubscribe-requests", {"state": "completed"}).json()["results"] == []
    assert_problem(api_a.get("/api/v1/unsubscribe-requests", {"state": "bogus"}), 400, "state")
    assert_problem(
        api_a.get("/api/v1/unsubscribe-requests", {"created_after": "yesterday"}), 400, "created_after"
    )


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/New_York", "UTC"])
def test_a_bare_date_filter_is_a_day_in_the_tenants_time_zone(
    frozen_clock: datetime, zone: str, api_a: APIClient, tenant_a: Tenant
) -> None:
    # given a tenant in `zone`, and requests one minute either side of its midnights
    tenant_a.time_zone = zone
    tenant_a.save()
    local_now = timezone.localtime(timezone.now(), ZoneInfo(zone))
    today = local_now.date()
    yesterday = today - timedelta(days=1)
    midnight = datetime.combine(today, time.min, tzinfo=ZoneInfo(zone))
    midnight_yesterday = datetime.combine(yesterday, time.min, tzinfo=ZoneInfo(zone))
    at = {
        "before-yesterday": midnight_yesterday - timedelta(minutes=1),
        "yesterday": midnight_yesterday + timedelta(minutes=1),
        "late-yesterday": midnight - timedelta(minutes=1),
        "today": midnight + timedelta(minutes=1),
    }
    reference_at = {}
    for i, (name, received) in enumerate(at.items()):
        reference = file_request(api_a, phone=f"+86139000000{i:02d}", channel="app").json()["reference"]
        UnsubscribeRequest.objects.unscoped(reason="test").filter(reference=reference).update(
            received_at=received
        )
        reference_at[reference] = name

    def listed(**params: str) -> set[str]:
        page = api_a.get("/api/v1/unsubscribe-requests", params).json()
        return {reference_at[r["reference"]] for r in page["results"]}

    # when filtering by bare dates, then the days are the tenant's, whatever the hour in UTC
    assert listed(created_after=today.isoformat()) == {"today"}
    assert listed(created_before=today.isoformat()) == {"before-yesterday", "yesterday", "late-yesterday"}
    assert listed(created_after=yesterday.isoformat(), created_before=today.isoformat()) == {
        "yesterday",
        "late-yesterday",
    }
    # a time without an offset is wall time there; with an offset it is taken as given
    assert listed(created_after=f"{today.isoformat()}T00:00:00") == {"today"}
    utc_midnight = midnight.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert listed(created_after=utc_midnight) == {"today"}
    assert listed(created_after=(midnight - timedelta(minutes=2)).isoformat()) == {"late-yesterday", "today"}


def test_an_impossible_date_filter_is_a_400(api_a: APIClient) -> None:
    assert_problem(
        api_a.get("/api/v1/unsubscribe-requests", {"created_after": "2025-02-30"}), 400, "created_after"
    )
    assert api_a.get("/api/v1/me").json()["time_zone"] == "Asia/Shanghai"


def test_the_schema_says_how_bare_dates_are_read(client: Client) -> None:
    schema = client.get("/api/schema/?format=json").json()
    parameters = schema["paths"]["/api/v1/unsubscribe-requests"]["get"]["parameters"]
    described = {p["name"]: p.get("description", "") for p in parameters}
    assert "tenant's time zone" in described["created_after"]
    assert "offset" in described["created_before"]


# --- suppression checks ----------------------------------------------------------------------


def test_check_get_reports_valid_and_invalid_numbers(api_a: APIClient, offers: Service) -> None:
    file_request(api_a, channel="app")
    suppressed = api_a.get("/api/v1/suppressions/check", {"phone": "13800138000"}).json()
    assert suppressed["valid"] and suppressed["e164"] == NUMBER and suppressed["scopes"] == ["all"]
    free = api_a.get("/api/v1/suppressions/check", {"phone": OTHER}).json()
    assert free == {
        "phone": OTHER,
        "valid": True,
        "e164": OTHER,
        "suppressed": False,
        "since": None,
        "scopes": [],
    }
    invalid = api_a.get("/api/v1/suppressions/check", {"phone": "12345"})
    assert invalid.status_code == 200
    assert invalid.json()["valid"] is False and invalid.json()["error"]
    assert_problem(api_a.get("/api/v1/suppressions/check"), 400, "phone")
    assert_problem(
        api_a.get("/api/v1/suppressions/check", {"phone": NUMBER, "service": "nope"}), 400, "service"
    )


def test_check_post_answers_each_number_in_order(
    api_a: APIClient, api_b: APIClient, offers: Service, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    # given A suppressed NUMBER, and B suppressed OTHER (which A must not see)
    file_request(api_a, channel="app")
    file_request(api_b, channel="app", phone=OTHER)
    numbers = [
        NUMBER,
        "13800138000",
        OTHER,
        "not a number",
        "+1 415 555 2671",
        None,
        13800138000,
        "+86 139 1234 5678",
    ]

    with django_assert_max_num_queries(4):  # the key, its tenant, the suppressions
        response = api_a.post("/api/v1/suppressions/check", {"phones": numbers}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["count"], body["suppressed"], body["invalid"]) == (8, 3, 2)
    results = body["results"]
    assert [r["phone"] for r in results] == numbers
    assert [r.get("suppressed") for r in results] == [True, True, False, None, False, None, True, False]
    assert results[3] == {"phone": "not a number", "valid": False, "error": results[3]["error"]}
    assert results[5]["valid"] is False
    assert results[4]["e164"] == "+14155552671"


def test_check_post_with_10000_numbers_and_a_service(api_a: APIClient, offers: Service) -> None:
    file_request(api_a, channel="app", scope=["daily-deals"])
    numbers = [f"+86137{i:08d}" for i in range(9_998)] + [NUMBER, "12"]
    response = api_a.post(
        "/api/v1/suppressions/check", {"phones": numbers, "service": "daily-deals"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["suppressed"], body["invalid"]) == (10_000, 1, 1)
    assert body["results"][-2]["suppressed"] is True
    assert body["results"][-1]["valid"] is False


def test_check_post_refuses_more_than_10000_numbers(api_a: APIClient) -> None:
    response = api_a.post("/api/v1/suppressions/check", {"phones": ["13800138000"] * 10_001}, format="json")
    body = assert_problem(response, 413, "phones")
    assert "10,000" in body["detail"] and "10,001" in body["detail"]
    assert_problem(api_a.post("/api/v1/suppressions/check", {"numbers": []}, format="json"), 400, "phones")
    assert_problem(api_a.post("/api/v1/suppressions/check", ["13800138000"], format="json"), 400, "phones")


# --- scrub jobs ---------------------------------------------------------------------------------


def upload(name: str, text: str | bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode() if isinstance(text, str) else text, content_type="text/csv")


def test_scrub_job_end_to_end(
    api_a: APIClient,
    api_b: APIClient,
    tenant_a: Tenant,
    offers: Service,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    # given A suppressed NUMBER for everything and OTHER for one service
    file_request(api_a, channel="app")
    file_request(api_a, channel="app", phone=OTHER, scope=["daily-deals"])
    rows = [
        ["name", "Phone"],
        ["Ann", "13700137000"],  # sendable
        ["Bob", "13800138000"],  # suppressed (all)
        ["Cy", "+86 139 1234 5678"],  # suppressed for daily-deals only: sendable without a service
        ["Di", "not-a-number"],  # invalid
        ["", ""],  # blank: not a row
        ["Ed", "+8613700137000"],  # duplicate of Ann
        ["Flo", "+14155552671"],  # sendable, not a CN mobile
        ["Gus", ""],  # invalid: no number
    ]
    text = io.StringIO()
    csv.writer(text).writerows(rows)

    # when it is uploaded
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_a.post(
            "/api/v1/scrub-jobs", {"file": upload("list.csv", text.getvalue())}, format="multipart"
        )
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["state"] == "pending" and job["result_url"] is None and job["original_name"] == "list.csv"
    assert len(callbacks) == 1  # queued after commit

    # and the task runs (as the worker would)
    run_scrub_job(job["id"])

    # then progress and counts add up
    done = api_a.get(f"/api/v1/scrub-jobs/{job['id']}").json()
    assert done["state"] == "done" and done["percent"] == 100 and done["phase"] == "finished"
    assert (done["total_rows"], done["rows_done"]) == (7, 7)
    counts = (done["invalid"], done["duplicate"], done["suppressed"], done["sendable"])
    assert counts == (2, 1, 1, 3)
    # the result lists the sendable numbers in upload order, each once
    result = api_a.get(done["result_url"])
    assert result.status_code == 200 and result["Content-Type"].startswith("text/csv")
    assert streamed(result).decode().splitlines() == [
        "phone",
        "+8613700137000",
        OTHER,
        "+14155552671",
    ]
    # the uploaded list is gone; B sees nothing of it
    assert not ScrubJob.objects.unscoped(reason="test").get(pk=job["id"]).file
    assert_problem(api_b.get(f"/api/v1/scrub-jobs/{job['id']}"), 404)
    assert_problem(api_b.get(f"/api/v1/scrub-jobs/{job['id']}/result"), 404)


def test_scrub_job_without_header_and_with_a_service(api_a: APIClient, offers: Service) -> None:
    file_request(api_a, channel="app", phone=OTHER, scope=["daily-deals"])
    numbers = "\n".join(["13700137000", OTHER, "13700137000", "", "13600136000"]) + "\n"
    job = api_a.post(
        "/api/v1/scrub-jobs", {"file": upload("a.txt", numbers), "service": "daily-deals"}, format="multipart"
    ).json()
    assert api_a.get(f"/api/v1/scrub-jobs/{job['id']}/result").status_code == 404  # not done yet
    run_scrub_job(job["id"])
    done = api_a.get(f"/api/v1/scrub-jobs/{job['id']}").json()
    assert (done["invalid"], done["duplicate"], done["suppressed"], done["sendable"]) == (0, 1, 1, 2)
    lines = streamed(api_a.get(done["result_url"])).decode().splitlines()
    assert lines == ["phone", "+8613700137000", "+8613600136000"]


def test_scrub_job_of_many_rows_crosses_progress_saves(
    api_a: APIClient, tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scrub, "PROGRESS_EVERY", 1000)
    numbers = "".join(f"+86137{i % 20_000:08d}\n" for i in range(25_000))
    job = api_a.post("/api/v1/scrub-jobs", {"file": upload("big.csv", numbers)}, format="multipart").json()
    assert job["total_rows"] == 25_000
    run_scrub_job(job["id"])
    done = api_a.get(f"/api/v1/scrub-jobs/{job['id']}").json()
    assert (done["duplicate"], done["sendable"]) == (5_000, 20_000)
    lines = streamed(api_a.get(done["result_url"])).decode().splitlines()
    assert lines[1:] == [f"+86137{i:08d}" for i in range(20_000)]


def test_scrub_upload_errors(api_a: APIClient, offers: Service) -> None:
    assert_problem(api_a.post("/api/v1/scrub-jobs", {}, format="multipart"), 400, "file")
    assert_problem(
        api_a.post("/api/v1/scrub-jobs", {"file": upload("e.csv", "")}, format="multipart"), 400, "file"
    )
    unknown = api_a.post(
        "/api/v1/scrub-jobs",
        {"file": upload("a.csv", "13700137000\n"), "service": "nope"},
        format="multipart",
    )
    assert_problem(unknown, 400, "service")
    # a file that is not UTF-8 fails as a job, with a reason
    job = api_a.post(
        "/api/v1/scrub-jobs",
        {"file": upload("gbk.csv", "手机号\n13700137000\n".encode("gbk"))},
        format="multipart",
    ).json()
    run_scrub_job(job["id"])
    failed = api_a.get(f"/api/v1/scrub-jobs/{job['id']}").json()
    assert failed["state"] == "failed" and "UTF-8" in failed["error"]


def test_scrub_upload_over_the_row_limit_is_413(api_a: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scrub, "MAX_ROWS", 3)
    response = api_a.post(
        "/api/v1/scrub-jobs", {"file": upload("a.csv", "phone\n1\n2\n3\n4\n")}, format="multipart"
    )
    assert_problem(response, 413, "file")


def test_scrub_sweep_requeues_lost_jobs_and_expires_results(
    api_a: APIClient, tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[int] = []
    monkeypatch.setattr(scrub, "scrub_job_dispatch", queued.append)
    job = api_a.post(
        "/api/v1/scrub-jobs", {"file": upload("a.csv", "13700137000\n")}, format="multipart"
    ).json()
    assert scrub.scrub_jobs_sweep()["scrub_jobs_dispatched"] == 1 and queued == [job["id"]]
    run_scrub_job(job["id"])
    ScrubJob.objects.unscoped(reason="test").filter(pk=job["id"]).update(
        finished_at=timezone.now() - scrub.RESULT_TTL - timedelta(hours=1)
    )
    assert scrub.scrub_jobs_sweep()["scrub_results_expired"] == 1
    assert api_a.get(f"/api/v1/scrub-jobs/{job['id']}").json()["result_url"] is None
    assert_problem(api_a.get(f"/api/v1/scrub-jobs/{job['id']}/result"), 404)


# --- subscriptions import -----------------------------------------------------------------------


def test_subscriptions_import_upserts_and_reports_items(
    api_a: APIClient, tenant_a: Tenant, offers: Service
) -> None:
    items = [
        {
            "phone": NUMBER,
            "service": "daily-deals",
            "consent_source": "app",
            "consent_at": "2025-01-02T10:00:00+08:00",
        },
        {"phone": "12345", "service": "daily-deals"},
        {"phone": OTHER, "service": "unknown"},
        {"phone": OTHER, "service": "daily-deals", "consent_at": "last week"},
        "not an object",
        {"phone": "13912345678", "service": "daily-deals"},
    ]
    response = api_a.post("/api/v1/subscriptions/import", items, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["received"], body["created"], body["updated"], body["invalid"]) == (6, 2, 0, 4)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "phone"),
        (2, "service"),
        (3, "consent_at"),
        (4, None),
    ]
    saved = Subscription.objects.for_tenant(tenant_a).get(phone=NUMBER)
    assert saved.phone_masked == "138****8000" and saved.consent_source == "app"
    assert saved.phone_hash == phones.tenant_phone_hash(tenant_a.pk, NUMBER)

    # importing again updates
    again = api_a.post(
        "/api/v1/subscriptions/import",
        [{"phone": NUMBER, "service": "daily-deals", "consent_source": "crm"}],
        format="json",
    ).json()
    assert (again["created"], again["updated"]) == (0, 1)
    saved.refresh_from_db()
    assert saved.consent_source == "crm"


def test_subscriptions_import_limits(api_a: APIClient) -> None:
    assert_problem(api_a.post("/api/v1/subscriptions/import", {"phone": NUMBER}, format="json"), 400, "body")
    too_many = [{"phone": NUMBER, "service": "x"}] * 10_001
    assert_problem(api_a.post("/api/v1/subscriptions/import", too_many, format="json"), 413, "body")


# --- throttling -----------------------------------------------------------------------------------


def test_throttling_answers_429_with_retry_after(
    api_a: APIClient, api_b: APIClient, settings: Settings
) -> None:
    settings.LANZUAN_API_RATES = {"partner": "3/min", "partner_bulk": "1/min"}
    for _ in range(3):
        assert api_a.get("/api/v1/suppressions/check", {"phone": NUMBER}).status_code == 200
    response = api_a.get("/api/v1/suppressions/check", {"phone": NUMBER})
    body = assert_problem(response, 429)
    assert 0 < int(response["Retry-After"]) <= 60
    assert body["code"] == "throttled"
    # another key has its own budget; bulk calls have theirs
    assert api_b.get("/api/v1/suppressions/check", {"phone": NUMBER}).status_code == 200
    assert api_a.post("/api/v1/suppressions/check", {"phones": [NUMBER]}, format="json").status_code == 200
    assert api_a.post("/api/v1/suppressions/check", {"phones": [NUMBER]}, format="json").status_code == 429


# --- OpenAPI -----------------------------------------------------------------------------------------


def test_openapi_schema_documents_every_partner_endpoint_without_warnings(db: None, client: Client) -> None:
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    GENERATOR_STATS.reset()
    # drf-spectacular leaves these untyped
    schema = SchemaGenerator().get_schema(request=None, public=True)  # type: ignore[no-untyped-call]
    validate_schema(schema)  # type: ignore[no-untyped-call]
    partner_paths = [p for p in schema["paths"] if p != "/api/v1/me"]
    # nine partner endpoints, the channels list, the email link, consents and number events (issue 16),
    # send logs and their imports (issue 17), the audit checkpoints and a request's proof pack (issue 15)
    assert len(partner_paths) == 17
    assert (
        "application/zip"
        in (
            schema["paths"]["/api/v1/unsubscribe-requests/{reference}/proof"]["get"]["responses"]["200"][
                "content"
            ]
        )
    )
    for path in partner_paths:
        for method, operation in schema["paths"][path].items():
            assert operation["security"] == [{"ApiKeyAuth": []}], (path, method)
            has_example = any(
                "examples" in content
                for response in operation["responses"].values()
                for content in response.get("content", {}).values()
            ) or any("examples" in c for c in operation.get("requestBody", {}).get("content", {}).values())
            assert has_example or method == "delete", (path, method)
    assert "hmac.compare_digest" in schema["paths"]["/api/v1/webhooks"]["post"]["description"]
    warnings = [w for w in GENERATOR_STATS._warn_cache if "partner" in str(w).lower()]
    errors = [e for e in GENERATOR_STATS._error_cache if "WhoAmI" not in str(e)]
    assert not warnings and not errors, (warnings, errors)

    # and the served schema and docs render
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


def test_the_record_says_which_api_key_filed_it(api_a: APIClient, tenant_a: Tenant) -> None:
    from unsubscribe.models import UnsubscribeRequest

    response = api_a.post("/api/v1/unsubscribe-requests", {"phone": NUMBER, "channel": "app"}, format="json")
    assert response.status_code == 201
    assert response.json()["filed_by"].startswith("API key ")
    request = UnsubscribeRequest.objects.unscoped(reason="test").get(reference=response.json()["reference"])
    assert request.filed_by.endswith("(tests)")
