"""Issue 13's hot paths behave exactly like the full ones: the lean single check answers what
the full DRF view answers, a key revoked anywhere is refused on every process within a second,
a suppression made through a webhook is seen by the next check from another process, and the
rate limit's local leases never let a key past its budget. Speed is measured in bench/, not here."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.error import HTTPError
from urllib.parse import urlencode

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from twilio.request_validator import RequestValidator

from lanzuan import phones
from tenants.services import api_key_create
from unsubscribe.donotmarket.services import platform_do_not_market_set
from unsubscribe.inbound.services import inbound_credential_set
from unsubscribe.models import Service, Suppression
from unsubscribe.partner import throttling
from unsubscribe.suppressions.services import suppressions_add

from .workers import free_port, process, worker_env

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pytest_django import Settings

    from tenants.models import Tenant

CHECK = "/api/v1/suppressions/check"
PUBLIC = "http://lz.test"
TWILIO_TOKEN = "twilio-auth-token-for-hot-path-tests"
# Asked for something besides JSON, the full DRF view answers (the lean path steps aside).
FULL_VIEW: dict[str, Any] = {"HTTP_ACCEPT": "application/json, text/html;q=0.1"}


def _body(response: Any) -> Any:
    return json.loads(response.content)


# --- the lean check answers as the full view does ------------------------------------------------


@pytest.fixture
def api_a(api_key_a: str) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Api-Key {api_key_a}")


@pytest.fixture
def checked_numbers(tenant_a: Tenant) -> dict[str, str]:
    """A number suppressed for everything, one for one service, one free, and one on the
    person's platform-wide do-not-market list (no suppression at this tenant)."""
    Service.objects.create(tenant=tenant_a, code="deals", name="Deals")
    Service.objects.create(tenant=tenant_a, code="news", name="News")
    numbers = {
        "all": "+8613800138001",
        "deals": "+8613800138002",
        "free": "+8613800138003",
        "everywhere": "+8613800138004",
    }
    platform_do_not_market_set(e164=numbers["everywhere"], evidence={"test": True})
    for which, scope in (("all", "*"), ("deals", "deals")):
        number = numbers[which]
        suppressions_add(
            tenant=tenant_a,
            phone_hash=phones.tenant_phone_hash(tenant_a.pk, number),
            phone_masked=phones.mask(number),
            scopes=[scope],
            channel="api",
        )
    return numbers


@pytest.mark.parametrize("service", [None, "deals", "news"])
@pytest.mark.parametrize("which", ["all", "deals", "free", "everywhere"])
def test_the_lean_check_answers_what_the_full_view_answers(
    api_a: APIClient, checked_numbers: dict[str, str], which: str, service: str | None
) -> None:
    query = {"phone": checked_numbers[which], **({"service": service} if service else {})}
    lean = api_a.get(CHECK, query)
    full = api_a.get(CHECK, query, **FULL_VIEW)
    assert lean.status_code == full.status_code == 200
    assert _body(lean) == _body(full)
    assert lean["Content-Type"] == full["Content-Type"] == "application/json"
    answer = _body(lean)
    assert answer["suppressed"] is (
        which in ("all", "everywhere") or (which == "deals" and service == "deals")
    )
    assert answer.get("platform_do_not_market", False) is (which == "everywhere")


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    phone=st.one_of(
        st.text(min_size=1, max_size=30), st.from_regex(r"\+?(86)?1[3-9][0-9]{9}", fullmatch=True)
    )
)
def test_any_phone_gets_the_same_answer_from_both_paths(api_a: APIClient, phone: str) -> None:
    lean = api_a.get(CHECK, {"phone": phone})
    full = api_a.get(CHECK, {"phone": phone}, **FULL_VIEW)
    assert lean.status_code == full.status_code
    assert lean.status_code in (200, 400)
    assert _body(lean) == _body(full)


def test_errors_still_come_from_the_full_view_as_problem_documents(
    api_a: APIClient, tenant_a: Tenant, settings: Settings
) -> None:
    unknown = api_a.get(CHECK, {"phone": "+8613800138000", "service": "nope"})
    assert unknown.status_code == 400 and unknown["Content-Type"] == "application/problem+json"
    anonymous = APIClient().get(CHECK, {"phone": "+8613800138000"})
    assert anonymous.status_code == 401 and anonymous["Content-Type"] == "application/problem+json"
    wrong = APIClient(HTTP_AUTHORIZATION="Api-Key nope.nope").get(CHECK, {"phone": "+8613800138000"})
    assert wrong.status_code == 401
    settings.LANZUAN_API_RATES = {"partner": "2/min", "partner_bulk": "1/min"}
    throttling.forget_leases()
    _row, key = api_key_create(tenant=tenant_a, name="small budget")
    api = APIClient(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert [api.get(CHECK, {"phone": "+8613800138000"}).status_code for _ in range(3)] == [200, 200, 429]


def test_a_revoked_key_is_refused_at_once_in_the_process_that_revoked_it(
    api_a: APIClient, tenant_a: Tenant
) -> None:
    _row, key = api_key_create(tenant=tenant_a, name="soon revoked")
    api = APIClient(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert api.get(CHECK, {"phone": "+8613800138000"}).status_code == 200  # now remembered
    _row.revoked = True
    _row.save()
    assert api.get(CHECK, {"phone": "+8613800138000"}).status_code == 401
    tenant_a.is_active = False
    tenant_a.save()
    assert api_a.get(CHECK, {"phone": "+8613800138000"}).status_code == 401


def test_leases_never_let_a_key_past_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four processes share one budget in Redis, each spending leases of its own: together
    they are never allowed past the budget, and lose at most one lease each to the others."""
    from django.core.cache import cache  # noqa: PLC0415 (the test's own cache)

    cache.clear()
    limit, period = 1000, 60
    lease = limit // throttling.LEASE_SHARE
    now = (time.time() // period) * period + 1  # inside one window, whatever the clock says
    processes: list[dict[Any, Any]] = [{} for _ in range(4)]
    allowed = 0
    for call in range(1500):
        monkeypatch.setattr(throttling, "_leases", processes[call % 4])  # this call's process
        if throttling.take("throttle:partner:shared", limit=limit, period=period, now=now) is None:
            allowed += 1
    assert limit - 4 * lease <= allowed <= limit
    # the next window starts a new budget
    assert throttling.take("throttle:partner:shared", limit=limit, period=period, now=now + period) is None


# --- across processes: a real server ----------------------------------------------------------------


def _get(url: str, key: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Api-Key {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (a local test server)
            return response.status, json.loads(response.read())
    except HTTPError as exc:
        return exc.code, None


def _post_twilio(base: str, path: str, params: dict[str, str]) -> int:
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC + path, params)
    request = urllib.request.Request(
        base + path,
        data=urlencode(params).encode(),
        headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (a local test server)
            return int(response.status)
    except HTTPError as exc:
        return exc.code


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """gunicorn with two worker processes on the test database."""
    port = free_port()
    env = worker_env(ALLOWED_HOSTS="127.0.0.1", PUBLIC_BASE_URL=PUBLIC)
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    args = [gunicorn, "lanzuan.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "2"]
    with process(args, env, tmp_path / "gunicorn.log", "Booting worker") as web:
        web.wait_ready()
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/hub/", timeout=2):  # noqa: S310 (a local test server)
                    break
            except HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield base


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_key_revoked_elsewhere_is_refused_by_every_server_process_within_a_second(
    server: str, tenant_a: Tenant
) -> None:
    row, key = api_key_create(tenant=tenant_a, name="revoked elsewhere")
    url = f"{server}{CHECK}?phone=%2B8613800138000"
    # enough calls that both worker processes have verified (and now remember) the key
    assert {_get(url, key)[0] for _ in range(40)} == {200}
    with transaction.atomic():
        row.revoked = True
        row.save()
    revoked_at = time.monotonic()
    while time.monotonic() - revoked_at < 1.0:
        _get(url, key)  # may still pass on a process that verified it moments ago
    assert {_get(url, key)[0] for _ in range(40)} == {401}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_stop_is_seen_by_the_next_check_from_another_process(
    server: str, tenant_a: Tenant, api_key_a: str
) -> None:
    inbound_credential_set(tenant=tenant_a, provider="twilio", secret=TWILIO_TOKEN)
    path = f"/hooks/sms/{tenant_a.slug}/twilio/"
    for n in range(15):
        number = f"+86138001{n:05d}"
        assert _get(f"{server}{CHECK}?phone=%2B{number[1:]}", api_key_a)[1]["suppressed"] is False
        params = {"From": number, "To": "+14155550100", "Body": "TD", "MessageSid": f"SMhot{n:04d}"}
        params["AccountSid"] = "AC" + "0" * 32
        assert _post_twilio(server, path, params) == 200
        # the webhook answered: a check through another server process, and one from this
        # process's own database connection, both see the suppression
        status, body = _get(f"{server}{CHECK}?phone=%2B{number[1:]}", api_key_a)
        assert status == 200 and body["suppressed"] is True, body
        digest = phones.tenant_phone_hash(tenant_a.pk, number)
        assert Suppression.objects.for_tenant(tenant_a).filter(phone_hash=digest).exists()
