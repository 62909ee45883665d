"""Subscription imports through their real entry points (the admin's CSV upload run
by the Celery task, and POST /api/v1/subscriptions/import): opted-out numbers,
ended subscriptions, duplicates, consent times in the tenant's zone, counts; the
problem documents of every API error; the OpenAPI examples against their schemas."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path, reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from lanzuan import phones
from lanzuan.urls import urlpatterns as site_urlpatterns
from tenants.models import Tenant
from tenants.services import api_key_create
from unsubscribe.models import SCOPE_ALL, Service, Subscription, SubscriptionImport, Suppression
from unsubscribe.subscriptions import services as imports

if TYPE_CHECKING:
    from celery import Celery
    from django.contrib.auth.models import User
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse
    from pytest_django import DjangoCaptureOnCommitCallbacks, Settings
    from rest_framework.response import _MonkeyPatchedResponse as ApiResponse

PROBLEM = "application/problem+json"
IMPORT_URL = "/api/v1/subscriptions/import"


# --- a URLconf with views that fail, for the problem-document fallback ---------------------------


def _boom_django(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in a plain Django view")


class _BoomDRF(APIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    def get(self, request: Request) -> Response:
        raise KeyError("a bug in a DRF view")


urlpatterns = [
    path("api/v1/test-boom-django", _boom_django),
    path("api/v1/test-boom-drf", _BoomDRF.as_view()),
    path("not-api/test-boom", _boom_django),
    *site_urlpatterns,
]


# --- helpers ---------------------------------------------------------------------------------------

_tenant_numbers = itertools.count(1)


def new_tenant(time_zone: str = "Asia/Shanghai", services: tuple[str, ...] = ("offers", "news")) -> Tenant:
    """A fresh tenant per hypothesis example: examples share one test transaction."""
    n = next(_tenant_numbers)
    tenant = Tenant.objects.create(slug=f"imp-{n}", name=f"Import {n}", time_zone=time_zone)
    for code in services:
        Service.objects.create(tenant=tenant, code=code, name=code.title())
    return tenant


def api_for(tenant: Tenant) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_create(tenant=tenant, name='imp')[1]}")
    return client


def subscription(tenant: Tenant, code: str, e164: str, *, ended: bool = False) -> Subscription:
    return Subscription.objects.create(
        tenant=tenant,
        service=Service.objects.for_tenant(tenant).get(code=code),
        phone="" if ended else e164,  # an ended subscription's number is erased
        phone_hash=phones.tenant_phone_hash(tenant.pk, e164),
        phone_masked=phones.mask(e164),
        status=Subscription.Status.ENDED if ended else Subscription.Status.ACTIVE,
        consent_source="before",
    )


def suppress(tenant: Tenant, e164: str, scope: str) -> None:
    Suppression.objects.create(
        tenant=tenant,
        phone_hash=phones.tenant_phone_hash(tenant.pk, e164),
        phone_masked=phones.mask(e164),
        scope=scope,
    )


def csv_bytes(rows: list[dict[str, str]]) -> bytes:
    lines = ["phone,service,consent_source,consent_at"]
    lines += [
        f"{r['phone']},{r['service']},{r.get('consent_source', '')},{r.get('consent_at', '')}" for r in rows
    ]
    return ("\n".join(lines) + "\n").encode()


def import_csv(
    client: Client, tenant: Tenant, rows: list[dict[str, str]], capture: DjangoCaptureOnCommitCallbacks
) -> dict[str, Any]:
    """Upload through the admin page; the task runs when the upload commits."""
    with capture(execute=True):
        response = client.post(
            reverse("admin:unsubscribe_subscription_import"),
            {"tenant": tenant.pk, "file": SimpleUploadedFile("subs.csv", csv_bytes(rows))},
        )
    assert response.status_code == 302, response.content
    progress = client.get(response["Location"], {"format": "json"})
    assert progress.status_code == 200
    state: dict[str, Any] = progress.json()
    return state


def import_api(tenant: Tenant, items: list[Any]) -> dict[str, Any]:
    response = api_for(tenant).post(IMPORT_URL, items, format="json")
    assert response.status_code == 200, response.content
    counts: dict[str, Any] = response.json()
    return counts


@pytest.fixture
def admin_client(root: User, client: Client, eager_celery: Celery) -> Client:
    client.force_login(root)
    return client


# --- item 2: the KeyError, and what an import does with numbers that opted out ----------------------

A = "+8613800138000"
B = "+8613900139000"


def test_api_import_of_a_number_that_opted_out_of_another_service_in_the_batch_is_not_an_error(
    db: None,
) -> None:
    # given: A opted out of "news" (ended, erased, suppressed); B is new
    tenant = new_tenant()
    subscription(tenant, "news", A, ended=True)
    suppress(tenant, A, "news")
    # when: one call brings A for "offers" and B for "news" (the KeyError of issue 11)
    body = import_api(tenant, [{"phone": A, "service": "offers"}, {"phone": B, "service": "news"}])
    # then
    assert (body["created"], body["updated"], body["skipped_opted_out"], body["invalid"]) == (2, 0, 0, 0)
    assert Subscription.objects.for_tenant(tenant).filter(status="active").count() == 2
    ended = Subscription.objects.for_tenant(tenant).get(
        service__code="news", phone_hash=phones.tenant_phone_hash(tenant.pk, A)
    )
    assert ended.status == "ended" and ended.phone == ""


def test_csv_import_of_3004_rows_with_an_opt_out_of_another_service_saves_every_valid_row(
    db: None, admin_client: Client, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    tenant = new_tenant()
    subscription(tenant, "news", A, ended=True)
    suppress(tenant, A, "news")
    rows = [{"phone": f"1370000{i:04d}", "service": "offers"} for i in range(3000)]
    rows += [
        {"phone": A, "service": "offers"},  # allowed: A stopped only "news"
        {"phone": B, "service": "news"},
        {"phone": A, "service": "news"},  # opted out: skipped, counted
        {"phone": "12", "service": "offers"},  # line 3005
    ]
    progress = import_csv(admin_client, tenant, rows, django_capture_on_commit_callbacks)
    assert progress["status"] == "done", progress
    assert (progress["created"], progress["skipped_opted_out"], progress["invalid"]) == (3002, 1, 1)
    assert progress["rows_done"] == progress["total_rows"] == 3004
    assert any("3005" in e for e in progress["errors"])
    assert Subscription.objects.for_tenant(tenant).filter(status="active").count() == 3002
    assert not Subscription.objects.for_tenant(tenant).filter(phone=A, service__code="news").exists()


def test_a_suppressed_number_without_a_subscription_is_not_stored_by_an_import(db: None) -> None:
    # given: A stopped all marketing and was erased (no subscription row left); B stopped "offers"
    tenant = new_tenant()
    suppress(tenant, A, SCOPE_ALL)
    suppress(tenant, B, "offers")
    body = import_api(
        tenant,
        [
            {"phone": A, "service": "offers"},
            {"phone": A, "service": "news"},
            {"phone": B, "service": "offers"},
            {"phone": B, "service": "news"},
        ],
    )
    assert (body["created"], body["skipped_opted_out"], body["errors"]) == (1, 3, [])
    assert not Subscription.objects.for_tenant(tenant).filter(phone=A).exists()
    assert list(
        Subscription.objects.for_tenant(tenant).filter(phone=B).values_list("service__code", flat=True)
    ) == ["news"]


def test_a_batch_the_database_refuses_is_reported_and_the_other_batches_are_saved(
    db: None,
    admin_client: Client,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given: the database refuses the second of three batches
    tenant = new_tenant()
    monkeypatch.setattr(imports, "BATCH", 10)
    real_upsert = imports.subscriptions_upsert
    calls = itertools.count(1)

    def refuse_second(**kwargs: Any) -> imports.Upserted:
        if next(calls) == 2:
            raise DatabaseError("value too long")
        return real_upsert(**kwargs)

    monkeypatch.setattr(imports, "subscriptions_upsert", refuse_second)
    rows = [{"phone": f"1370000{i:04d}", "service": "offers"} for i in range(25)]
    # when
    progress = import_csv(admin_client, tenant, rows, django_capture_on_commit_callbacks)
    # then: batches 1 and 3 are saved, and the error names the lines of batch 2
    assert progress["status"] == "failed"
    assert progress["created"] == 15 and progress["rows_done"] == 25
    assert any("12" in e and "21" in e for e in progress["errors"]), progress["errors"]
    assert Subscription.objects.for_tenant(tenant).count() == 15


# --- item 2: the property ------------------------------------------------------------------------------

NUMBERS = ["+8613700000001", "+8613700000002", "+8613700000003", "+8613700000004"]
CODES = ("offers", "news")
VALID_CONSENT = {
    "": None,
    "2025-01-02T10:00:00+08:00": datetime(2025, 1, 2, 2, 0, tzinfo=UTC),
    "2025-07-01 09:30": datetime(2025, 7, 1, 9, 30),  # noqa: DTZ001 — naive: in the tenant's zone, attached below
}


@dataclass(frozen=True)
class Row:
    number: int  # index into NUMBERS, or -1 for an invalid number
    service: str
    source: str
    consent_at: str

    def item(self) -> dict[str, str]:
        phone = NUMBERS[self.number] if self.number >= 0 else "not-a-number"
        if self.number >= 0 and self.number % 2:
            phone = phone.removeprefix("+86")  # the national form is the same number
        return {
            "phone": phone,
            "service": self.service,
            "consent_source": self.source,
            "consent_at": self.consent_at,
        }

    @property
    def valid(self) -> bool:
        return self.number >= 0 and self.service in CODES and self.consent_at in VALID_CONSENT


rows_strategy = st.builds(
    Row,
    number=st.integers(min_value=-1, max_value=len(NUMBERS) - 1),
    service=st.sampled_from([*CODES, "unknown"]),
    source=st.sampled_from(["web", "app", "crm"]),
    consent_at=st.sampled_from([*VALID_CONSENT, "last week", "2025-13-01T00:00:00"]),
)
# Per number: what it opted out of ("" nothing, "*" all marketing, or a service),
# and per (number, service) the subscription there is before the import.
state_strategy = st.tuples(
    st.lists(st.sampled_from(["", SCOPE_ALL, *CODES]), min_size=len(NUMBERS), max_size=len(NUMBERS)),
    st.lists(
        st.sampled_from(["none", "active", "ended"]),
        min_size=len(NUMBERS) * len(CODES),
        max_size=len(NUMBERS) * len(CODES),
    ),
)


def _given_state(tenant: Tenant, opted_out: list[str], subs: list[str]) -> dict[tuple[str, str], str]:
    before: dict[tuple[str, str], str] = {}
    for (n, code), state in zip(itertools.product(range(len(NUMBERS)), CODES), subs, strict=True):
        e164 = NUMBERS[n]
        # an opt-out ends the subscriptions it covers
        kind = "ended" if state == "active" and opted_out[n] in (SCOPE_ALL, code) else state
        if kind != "none":
            subscription(tenant, code, e164, ended=kind == "ended")
        before[(e164, code)] = kind
    for n, scope in enumerate(opted_out):
        if scope:
            suppress(tenant, NUMBERS[n], scope)
    return before


def _check_import(
    tenant: Tenant,
    opted_out: list[str],
    before: dict[tuple[str, str], str],
    rows: list[Row],
    counts: dict[str, Any],
) -> None:
    valid = [r for r in rows if r.valid]
    last: dict[tuple[str, str], Row] = {}
    for r in valid:
        last[(NUMBERS[r.number], r.service)] = r
    expected = {"created": 0, "updated": 0, "skipped_opted_out": 0}
    for (e164, code), _row in last.items():
        scope = opted_out[NUMBERS.index(e164)]
        if scope in (SCOPE_ALL, code) or before[(e164, code)] == "ended":
            expected["skipped_opted_out"] += 1
        elif before[(e164, code)] == "active":
            expected["updated"] += 1
        else:
            expected["created"] += 1
    assert {k: counts[k] for k in expected} == expected, (counts, rows)
    assert counts["invalid"] == len(rows) - len(valid)
    assert counts["duplicates"] == len(valid) - len(last)

    zone = ZoneInfo(tenant.time_zone)
    saved = {
        (s.phone_hash, s.service.code): s
        for s in Subscription.objects.for_tenant(tenant).select_related("service")
    }
    for (e164, code), kind in before.items():
        row = saved.get((phones.tenant_phone_hash(tenant.pk, e164), code))
        scope = opted_out[NUMBERS.index(e164)]
        if kind == "ended":  # never revived, the number never stored again
            assert row is not None and row.status == "ended" and row.phone == ""
        if scope in (SCOPE_ALL, code):  # no raw number for an opted-out person
            assert row is None or row.phone == ""
        winner = last.get((e164, code))
        if winner is not None and kind != "ended" and scope not in (SCOPE_ALL, code):
            assert row is not None and row.status == "active" and row.phone == e164
            assert row.consent_source == winner.source
            wanted = VALID_CONSENT[winner.consent_at]
            if wanted is not None:
                aware = wanted if wanted.tzinfo else wanted.replace(tzinfo=zone)
                assert row.consent_at == aware
        elif winner is None and kind == "none":
            assert row is None


@pytest.mark.parametrize("entry", ["csv", "csv in batches of 3", "api"])
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    state=state_strategy,
    rows=st.lists(rows_strategy, min_size=1, max_size=12),
    time_zone=st.sampled_from(["Asia/Shanghai", "America/New_York"]),
)
# The case of issue 11 (an opt-out of "news" while the batch has "news" for another number),
# always tried first.
@example(
    state=(["news", "", "", ""], ["none", "ended", "none", "none", "none", "none", "none", "none"]),
    rows=[Row(0, "offers", "web", ""), Row(1, "news", "app", "2025-07-01 09:30")],
    time_zone="America/New_York",
)
def test_imports_never_revive_an_opt_out_and_count_every_row(
    entry: str,
    state: tuple[list[str], list[str]],
    rows: list[Row],
    time_zone: str,
    db: None,
    admin_client: Client,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given: a tenant with numbers in every state
    if entry == "csv in batches of 3":  # duplicates across batches are counted once too
        monkeypatch.setattr(imports, "BATCH", 3)
    opted_out, subs = state
    tenant = new_tenant(time_zone)
    before = _given_state(tenant, opted_out, subs)
    items = [r.item() for r in rows]
    # when
    if entry.startswith("csv"):
        progress = import_csv(admin_client, tenant, items, django_capture_on_commit_callbacks)
        assert progress["status"] == "done", progress
        assert progress["rows_done"] == len(rows)
    else:
        progress = import_api(tenant, items)
        assert progress["received"] == len(rows)
    # then
    _check_import(tenant, opted_out, before, rows, progress)


# --- item 20: consent_at ---------------------------------------------------------------------------------


def test_an_unreadable_consent_time_is_a_row_error_not_the_import_time(
    db: None, admin_client: Client, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    tenant = new_tenant()
    rows = [
        {"phone": A, "service": "offers", "consent_at": "2025-01-02T10:00:00+08:00"},
        {"phone": B, "service": "offers", "consent_at": "yesterday"},  # line 3
        {"phone": "13700000001", "service": "offers", "consent_at": "2025-02-30T10:00:00"},  # line 4
    ]
    progress = import_csv(admin_client, tenant, rows, django_capture_on_commit_callbacks)
    assert progress["status"] == "done"
    assert (progress["created"], progress["invalid"]) == (1, 2)
    # row errors are written in the uploader's language (zh-Hans, the default, here)
    assert [e.split("：")[0] for e in progress["errors"]] == ["第 3 行", "第 4 行"]
    assert all("consent_at" in e for e in progress["errors"])
    assert not Subscription.objects.for_tenant(tenant).filter(phone=B).exists()

    body = import_api(tenant, [{"phone": B, "service": "offers", "consent_at": "yesterday"}])
    assert body["invalid"] == 1 and body["errors"][0]["field"] == "consent_at"


def test_opted_out_numbers_are_counted_in_both_imports_and_shown_on_the_import_page(
    db: None, admin_client: Client, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    tenant = new_tenant()
    suppress(tenant, A, SCOPE_ALL)
    body = import_api(tenant, [{"phone": A, "service": "offers"}])
    assert (body["created"], body["skipped_opted_out"], body["errors"]) == (0, 1, [])

    progress = import_csv(
        admin_client, tenant, [{"phone": A, "service": "news"}], django_capture_on_commit_callbacks
    )
    assert progress["skipped_opted_out"] == 1
    import_ = SubscriptionImport.objects.for_tenant(tenant).get()
    assert import_.skipped_opted_out == 1
    page = admin_client.get(reverse("admin:unsubscribe_subscription_import_progress", args=[import_.pk]))
    assert 'id="skipped_opted_out">1<' in page.content.decode()
    listing = admin_client.get(reverse("admin:unsubscribe_subscriptionimport_changelist"))
    assert "skipped_opted_out" in listing.content.decode()


# --- naive consent times are in the tenant's zone ---------------------------------------------------------------


@pytest.mark.parametrize("entry", ["csv", "api"])
def test_a_naive_consent_time_is_read_in_the_tenants_time_zone(
    entry: str,
    db: None,
    admin_client: Client,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    tenant = new_tenant("America/New_York")
    items = [
        {"phone": A, "service": "offers", "consent_at": "2025-01-15T09:00:00"},  # EST, UTC-5
        {"phone": B, "service": "offers", "consent_at": "2025-07-15 09:00"},  # EDT, UTC-4
        {"phone": A, "service": "news", "consent_at": "2025-03-09"},  # the DST day: midnight EST
    ]
    if entry == "csv":
        import_csv(admin_client, tenant, items, django_capture_on_commit_callbacks)
    else:
        import_api(tenant, items)
    saved = {
        (s.phone, s.service.code): s.consent_at
        for s in Subscription.objects.for_tenant(tenant).select_related("service")
    }
    assert saved[(A, "offers")] == datetime(2025, 1, 15, 14, 0, tzinfo=UTC)
    assert saved[(B, "offers")] == datetime(2025, 7, 15, 13, 0, tzinfo=UTC)
    assert saved[(A, "news")] == datetime(2025, 3, 9, 5, 0, tzinfo=UTC)


# --- every API error is a problem document ---------------------------------------------------------------


def assert_problem(response: TestResponse | ApiResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("urn:lanzuan:problem:")
    assert body["title"] and body["detail"] and "<" not in body["detail"]
    return body


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("debug", [False, True])
def test_every_api_error_is_a_problem_document_even_with_debug_on(
    debug: bool, db: None, settings: Settings
) -> None:
    settings.DEBUG = debug
    tenant = new_tenant()
    api = api_for(tenant)
    anonymous = Client(raise_request_exception=False)
    # an unexpected exception in a plain Django view and in a DRF view
    assert assert_problem(anonymous.get("/api/v1/test-boom-django"), 500)["code"] == "server_error"
    assert_problem(anonymous.get("/api/v1/test-boom-drf"), 500)
    # Django's own 404 for a path nothing answers
    assert assert_problem(api.get("/api/v1/no-such-endpoint"), 404)["instance"] == "/api/v1/no-such-endpoint"
    assert_problem(anonymous.get("/api/nothing-here/"), 404)
    # DRF's 405, 415 and parse errors
    response = api.get(IMPORT_URL)
    assert_problem(response, 405)
    assert "POST" in response["Allow"]
    assert_problem(api.post(IMPORT_URL, "phone=1", content_type="text/plain"), 415)
    assert_problem(api.post(IMPORT_URL, "[{", content_type="application/json"), 400)
    # the error pages of the rest of the site are not touched
    assert "problem" not in anonymous.get("/not-api/test-boom")["Content-Type"]


def test_problem_documents_follow_the_request_language(db: None) -> None:
    body = assert_problem(Client().get("/api/v1/no-such-endpoint", HTTP_ACCEPT_LANGUAGE="zh-hans"), 404)
    assert body["title"] != "Not found"  # once the catalog has it; the shape is what matters here
    assert body["code"] == "not_found"


# --- item 21: the examples of the OpenAPI schema match their schemas ---------------------------------------


def _json_schema(node: Any, direction: str) -> Any:
    """OpenAPI 3.0 in JSON Schema terms: `nullable`, and `required` not applying to
    read-only properties in a request nor to write-only ones in a response."""
    if isinstance(node, list):
        return [_json_schema(n, direction) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _json_schema(v, direction) for k, v in node.items()}
    if "required" in node and isinstance(node.get("properties"), dict):
        skip = "readOnly" if direction == "request" else "writeOnly"
        node["required"] = [p for p in node["required"] if not node["properties"].get(p, {}).get(skip)]
    if node.pop("nullable", False):
        if "type" in node:
            node["type"] = [node["type"], "null"]
        else:
            return {"anyOf": [node, {"type": "null"}]}
    return node


def test_every_example_of_the_api_schema_is_valid_for_its_own_schema(db: None, client: Client) -> None:
    schema = client.get("/api/schema/", {"format": "json"}).json()
    checked, wrong = 0, []
    for route, operations in schema["paths"].items():
        for method, operation in operations.items():
            bodies = [("request", operation.get("requestBody", {}).get("content", {}))]
            bodies += [
                (f"response {code}", r.get("content", {})) for code, r in operation["responses"].items()
            ]
            for where, content in bodies:
                for media_type, media in content.items():
                    for name, sample in media.get("examples", {}).items():
                        if "schema" not in media:
                            continue
                        direction = "request" if where == "request" else "response"
                        root = {
                            **_json_schema(copy.deepcopy(media["schema"]), direction),
                            "components": _json_schema(schema["components"], direction),
                        }
                        try:
                            jsonschema.Draft202012Validator(root).validate(sample["value"])
                        except jsonschema.ValidationError as exc:
                            wrong.append(
                                f"{method.upper()} {route} {where} {media_type} {name!r}: {exc.message}"
                            )
                        checked += 1
    assert not wrong, "\n".join(wrong)
    assert checked >= 20  # every operation has examples; make sure they were found
    import_body = schema["paths"][IMPORT_URL]["post"]["requestBody"]["content"]["application/json"]
    assert all(isinstance(e["value"][0], dict) for e in import_body["examples"].values())
