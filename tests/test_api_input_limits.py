"""Findings F4, F5, F11 of the 11/12 review, through the real endpoints: instants out of
range or malformed (API filters, API and CSV imports), deeply nested and oversized
JSON bodies, and problem documents in one language."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_imports import IMPORT_URL, A, B, api_for, csv_bytes, new_tenant
from unsubscribe.models import Subscription, SubscriptionImport

if TYPE_CHECKING:
    from celery import Celery
    from django.contrib.auth.models import User
    from django.test.client import _MonkeyPatchedWSGIResponse as Response
    from pytest_django import DjangoCaptureOnCommitCallbacks, Settings
    from rest_framework.response import _MonkeyPatchedResponse as ApiResponse

PROBLEM = "application/problem+json"
REQUESTS_URL = "/api/v1/unsubscribe-requests"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CJK = re.compile(r"[\u4e00-\u9fff]")


def problem(response: Response | ApiResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == PROBLEM
    body: dict[str, Any] = response.json()
    return body


# --- F4: instants -----------------------------------------------------------------------------

OUT_OF_RANGE = [
    "0001-01-01",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-12:00",
    "0824-02-25T08:59:27.57-22:49",
    "2025-01-01T00:00:00-22:49",
    "2025-01-01T00:00:00\u0000",
    "2025-W01",
]


@pytest.mark.parametrize("raw", OUT_OF_RANGE)
@pytest.mark.parametrize("field", ["created_after", "created_before"])
def test_a_date_filter_out_of_range_or_malformed_is_a_400_on_that_field(
    field: str, raw: str, db: None
) -> None:
    body = problem(api_for(new_tenant()).get(REQUESTS_URL, {field: raw}), 400)
    assert [e["field"] for e in body["errors"]] == [field]


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    "raw",
    [*OUT_OF_RANGE, "2030-01-01", "9999-01-01", "2026-06-01T12:10:00Z", "2025-03-09T02:30"],
)
def test_an_unacceptable_consent_time_is_an_item_error_of_the_api_import(raw: str, db: None) -> None:
    tenant = new_tenant("America/New_York")
    response = api_for(tenant).post(
        IMPORT_URL,
        [{"phone": A, "service": "offers", "consent_at": raw}, {"phone": B, "service": "offers"}],
        format="json",
    )
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    assert (body["created"], body["invalid"]) == (1, 1)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(0, "consent_at")]


@time_machine.travel(NOW, tick=False)
def test_dst_edges_a_skew_allowance_and_the_first_of_a_repeated_hour(db: None) -> None:
    tenant = new_tenant("America/New_York")
    body = (
        api_for(tenant)
        .post(
            IMPORT_URL,
            [
                {"phone": A, "service": "offers", "consent_at": "2025-11-02T01:30"},  # repeated hour
                {"phone": B, "service": "offers", "consent_at": "2026-06-01T12:03:00Z"},  # skew
                {"phone": A, "service": "news", "consent_at": "2025-03-09"},  # bare date: midnight
            ],
            format="json",
        )
        .json()
    )
    assert (body["created"], body["invalid"]) == (3, 0), body
    saved = {
        (s.phone, s.service.code): s.consent_at
        for s in Subscription.objects.unscoped(reason="test").select_related("service")
    }
    assert saved[(A, "offers")] == datetime(2025, 11, 2, 5, 30, tzinfo=UTC)  # EDT, the first 01:30
    assert saved[(A, "news")] == datetime(2025, 3, 9, 5, 0, tzinfo=UTC)
    # A filter in the spring gap is read as that far after the change (03:30 EDT).
    api = api_for(tenant)
    assert api.get(REQUESTS_URL, {"created_after": "2025-03-09T02:30"}).status_code == 200


@time_machine.travel(NOW, tick=False)
def test_one_out_of_range_row_of_a_csv_import_is_a_row_error_on_its_line_and_the_rest_is_saved(
    db: None,
    root: User,
    client: Client,
    eager_celery: Celery,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    tenant = new_tenant()
    rows = [{"phone": f"+86135{n:08d}", "service": "offers", "consent_at": "2025-01-02"} for n in range(1500)]
    rows.append({"phone": "+8613599999999", "service": "offers", "consent_at": "0001-01-01"})  # line 1502
    rows.append({"phone": "+8613599999998", "service": "offers", "consent_at": "2030-01-01"})  # line 1503
    client.force_login(root)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:unsubscribe_subscription_import"),
            {"tenant": tenant.pk, "file": SimpleUploadedFile("subs.csv", csv_bytes(rows))},
        )
    assert response.status_code == 302
    import_ = SubscriptionImport.objects.for_tenant(tenant).get()
    assert (import_.status, import_.created, import_.invalid) == ("done", 1500, 2), import_.errors
    # row errors are written in the tenant's language ("第 1502 行：…"); the line numbers are what matter
    assert [re.findall(r"\d+", e)[0] for e in import_.errors] == ["1502", "1503"]


_offsets = st.one_of(
    st.just(""),
    st.just("Z"),
    st.builds(
        lambda sign, h, m, colon: f"{sign}{h:02d}{':' if colon else ''}{m:02d}",
        st.sampled_from("+-"),
        st.integers(0, 23),
        st.integers(0, 59),
        st.booleans(),
    ),
)
_stamps = st.builds(
    lambda y, mo, d, h, mi, s, frac, sep, off, bare: (
        f"{y:04d}-{mo:02d}-{d:02d}"
        if bare
        else f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{frac}{off}"
    ),
    st.integers(1, 9999),
    st.integers(1, 12),
    st.integers(1, 31),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
    st.sampled_from(["", ".5", ".57", ".123456"]),
    st.sampled_from(["T", " "]),
    _offsets,
    st.booleans(),
)
_instant_text = st.one_of(_stamps, st.text(max_size=30))


@time_machine.travel(NOW, tick=False)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=_instant_text, zone=st.sampled_from(["Asia/Shanghai", "America/New_York", "Pacific/Kiritimati"]))
def test_random_instants_never_give_a_500_and_every_valid_item_is_saved(
    db: None, raw: str, zone: str
) -> None:
    tenant = new_tenant(zone)
    api = api_for(tenant)
    for field in ("created_after", "created_before"):
        response = api.get(REQUESTS_URL, {field: raw})
        assert response.status_code in (200, 400), (raw, response.content[:300])
    response = api.post(
        IMPORT_URL,
        [{"phone": A, "service": "offers", "consent_at": raw}, {"phone": B, "service": "offers"}],
        format="json",
    )
    assert response.status_code == 200, (raw, response.content[:300])
    body = response.json()
    assert body["created"] + body["invalid"] == 2 and body["created"] >= 1
    assert Subscription.objects.for_tenant(tenant).count() == body["created"]
    for saved in Subscription.objects.for_tenant(tenant):
        assert saved.consent_at is not None
        assert saved.consent_at <= NOW + timedelta(minutes=5)


# --- F5: nesting and size ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (IMPORT_URL, "[" * 50_000 + "]" * 50_000),
        (REQUESTS_URL, '{"phone":' * 20_000 + "1" + "}" * 20_000),
        (IMPORT_URL, "[" * 100 + "]" * 100),
    ],
)
def test_deeply_nested_json_is_a_400_parse_error(url: str, body: str, db: None) -> None:
    response = api_for(new_tenant()).post(url, body, content_type="application/json")
    assert problem(response, 400)["code"] == "parse_error"


def test_a_json_body_over_the_limit_is_a_413_problem(db: None, settings: Settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    items = [{"phone": A, "service": "offers"}] * 1000
    response = api_for(new_tenant()).post(IMPORT_URL, items, format="json")
    assert problem(response, 413)["code"] == "too_large"


# --- F11: one language, no Python text -------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_bad_encoding_or_bad_json_does_not_show_pythons_message(language: str, db: None) -> None:
    api = api_for(new_tenant())
    for raw in (b'{"phone": "\xff"}', b"[{", b'{"phone": NaN}'):
        body = problem(
            api.post(IMPORT_URL, raw, content_type="application/json", HTTP_ACCEPT_LANGUAGE=language), 400
        )
        assert "codec" not in body["detail"] and "Expecting" not in body["detail"], body
        assert "JSON parse error" not in body["detail"]


def test_english_problem_documents_have_no_chinese_and_the_500_title_is_translated(db: None) -> None:
    api = api_for(new_tenant())
    answers = [
        api.get("/api/v1/services/", HTTP_ACCEPT_LANGUAGE="en"),
        api.get(REQUESTS_URL, {"created_after": "0001-01-01"}, HTTP_ACCEPT_LANGUAGE="en"),
        api.post(IMPORT_URL, b"\xff", content_type="application/json", HTTP_ACCEPT_LANGUAGE="en"),
    ]
    for response in answers:
        body = response.json()
        assert not CJK.search(body["title"] + body["detail"]), body
    from unsubscribe.partner import problems

    assert problems._title(500) != "Internal Server Error"
    anonymous = Client()
    body = problem(anonymous.get("/api/v1/no-such-endpoint", HTTP_ACCEPT_LANGUAGE="en"), 404)
    assert not CJK.search(body["title"] + body["detail"])
