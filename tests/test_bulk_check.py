"""The bulk check's one-pass JSON (partner/bulk_json.py, over the suppression index) answers
exactly what the per-number path answers: the same request with each number given as
{"phone": ...} takes that path (it may carry a consent time), so both run side by side."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from lanzuan import phones
from tenants import db_scope
from tenants.models import Tenant
from unsubscribe.donotmarket.services import platform_do_not_market_lift, platform_do_not_market_set
from unsubscribe.models import Service
from unsubscribe.suppressions import index
from unsubscribe.suppressions.services import suppressions_add

from .workers import suppression_added_by_another_process

CHECK = "/api/v1/suppressions/check"
SUPPRESSED = {"+8613800138001": "*", "+8613800138002": "deals", "+8613800138005": "news"}
EVERYWHERE = "+8613800138004"
ITEMS = [
    "+8613800138001",
    "13800138002",
    "8613800138005",
    "+86 138 0013 8001",
    "+8613800138003",
    EVERYWHERE,
    "+14155552671",
    "not a number",
    "13800138000\u2028",
    "号码",
    "",
    13800138001,
    None,
    True,
    ["+8613800138001"],
]


@pytest.fixture
def checked(tenant_a: Tenant) -> Any:
    Service.objects.create(tenant=tenant_a, code="deals", name="Deals")
    Service.objects.create(tenant=tenant_a, code="news", name="News")
    for number, scope in SUPPRESSED.items():
        suppressions_add(
            tenant=tenant_a,
            phone_hash=phones.tenant_phone_hash(tenant_a.pk, number),
            phone_masked=phones.mask(number),
            scopes=[scope],
            channel="api",
            e164=number,
        )
    # one row of digest version 1 only (no lookup key): still found
    suppressions_add(
        tenant=tenant_a,
        phone_hash=phones.tenant_phone_hash(tenant_a.pk, "+8613800138005"),
        phone_masked="138****8005",
        scopes=["*"],
        channel="api",
    )
    platform_do_not_market_set(e164=EVERYWHERE, evidence={"test": True})
    yield
    platform_do_not_market_lift(e164=EVERYWHERE, evidence={"test": True})


def _tokens_only(text: bytes) -> bytes:
    """JSON text without the whitespace between its tokens (inside strings it stays)."""
    out, in_string, escaped = bytearray(), False, False
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == ord("\\"):
                escaped = True
            elif byte == ord('"'):
                in_string = False
        elif byte == ord('"'):
            in_string = True
        elif byte in b" \t\r\n":
            continue
        out.append(byte)
    return bytes(out)


def test_tokens_only_keeps_strings_whole() -> None:
    assert _tokens_only(b'{"a b":  "c \\" d" , "e":[ 1 ]}') == b'{"a b":"c \\" d","e":[1]}'


@pytest.mark.django_db(transaction=True)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=st.lists(st.sampled_from(ITEMS), min_size=1, max_size=30),
    service=st.sampled_from([None, "deals", "news"]),
)
def test_the_one_pass_answer_is_the_per_number_answer(
    api_key_a: str, tenant_a: Tenant, checked: None, items: list[Any], service: str | None
) -> None:
    api = APIClient(HTTP_AUTHORIZATION=f"Api-Key {api_key_a}")
    body: dict[str, Any] = {"phones": items, **({"service": service} if service else {})}
    fast = api.post(CHECK, body, format="json")
    slow = api.post(CHECK, {**body, "phones": [{"phone": item} for item in items]}, format="json")
    assert fast.status_code == slow.status_code == 200, (fast.content, slow.content)
    assert fast["Content-Type"] == slow["Content-Type"]
    assert json.loads(fast.content) == json.loads(slow.content)
    # the same keys in the same order, the same values
    assert json.loads(fast.content, object_pairs_hook=list) == json.loads(
        slow.content, object_pairs_hook=list
    )
    # and the same text but for whitespace between tokens (the one-pass rows are padded to one width)
    assert _tokens_only(fast.content) == slow.content
    # read from the tenant's index (outside a transaction it is built), not the table alone
    assert f"tenant-{tenant_a.pk}" in {path.name for path in index.index_root().iterdir()}


@pytest.mark.django_db(transaction=True)
def test_a_reassignment_reported_after_plain_checks_is_in_the_next_plain_check(
    api_key_a: str, tenant_a: Tenant
) -> None:
    """A list of plain numbers takes the one-pass path while the tenant has no deactivation or
    reassignment on record; the first one reported moves the next check to the full answer."""
    api = APIClient(HTTP_AUTHORIZATION=f"Api-Key {api_key_a}")
    numbers = ["+8613800138077", "13800138078"]
    before = api.post(CHECK, {"phones": numbers}, format="json")
    assert before.status_code == 200 and "reassigned_since" not in before.json()["results"][0]
    reported = api.post(
        "/api/v1/number-events",
        [{"phone": numbers[0], "event": "reassigned", "date": "2025-02-10"}],
        format="json",
    )
    assert reported.status_code in (200, 201), reported.content
    after = api.post(CHECK, {"phones": numbers}, format="json")
    assert after.status_code == 200, after.content
    first, second = after.json()["results"]
    assert first["reassigned_since"] == "2025-02-10" and "reassigned_since" not in second


@pytest.mark.django_db(transaction=True)
def test_the_lean_path_refuses_what_the_full_view_refuses(api_key_a: str, tenant_a: Tenant) -> None:
    """A bare list takes the lean path (fast_check.fast_bulk_check); a body it does not take is
    answered by the full view, as before: the same statuses for odd services and items."""
    api = APIClient(HTTP_AUTHORIZATION=f"Api-Key {api_key_a}")
    odd_services: list[Any] = [0, False, [], {}, "no-such-service", "bad code"]
    for service in odd_services:
        response = api.post(CHECK, {"phones": ["+8613800138000"], "service": service}, format="json")
        assert response.status_code == 400, (service, response.content)
    assert api.post(CHECK, {"phones": ["+8613800138000"], "service": ""}, format="json").status_code == 200
    nested = api.post(CHECK, {"phones": [["+8613800138000"]]}, format="json")
    assert nested.status_code == 200 and nested.json()["results"][0]["valid"] is False
    assert api.post(CHECK, {"phones": ["+8613800138000"], "extra": 1}, format="json").status_code in (
        200,
        400,
    )
    not_json = api.generic("POST", CHECK, '{"phones": [NaN]}', content_type="application/json")
    assert not_json.status_code == 400


@pytest.mark.django_db(transaction=True)
def test_the_lean_bulk_check_sees_a_suppression_committed_by_another_process(
    api_key_a: str, tenant_a: Tenant
) -> None:
    """The lean path asks PostgreSQL for the rows changed since the index's mark before it
    parses the numbers (index.lookahead); a suppression another process commits after the index
    was built is in the next answer."""
    number = "+8613900139077"
    with db_scope.tenants_scope([tenant_a.pk]):
        index.index_refresh(tenant_a.pk, full=True)
        index.index_refresh(index.PLATFORM, full=True)
    api = APIClient(HTTP_AUTHORIZATION=f"Api-Key {api_key_a}")
    before = api.post(CHECK, {"phones": [number, "13900139078"]}, format="json")
    assert before.status_code == 200 and before.json()["suppressed"] == 0
    suppression_added_by_another_process(tenant_a.pk, number)
    after = api.post(CHECK, {"phones": [number, "13900139078"]}, format="json")
    assert after.status_code == 200, after.content
    first, second = after.json()["results"]
    assert first["suppressed"] is True and first["since"] and second["suppressed"] is False
