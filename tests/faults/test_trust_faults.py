"""Issue 19, items 1, 4, 7, 9 and 10: numbers kept out of stored excerpts, no silent
file-gateway fallback, one request and one confirmation for a burst of identical
requests, confirmations that claim only what is true, and a target contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import requests
import time_machine
from django.db import connection, transaction
from django.urls import reverse
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from lanzuan.phones import mask_digit_runs, redact
from notifications.gateways import FileGateway, OutgoingMessage, outbox_expire
from notifications.models import Message
from unsubscribe.models import Step, UnsubscribeRequest
from unsubscribe.pipeline.services import request_advance
from unsubscribe.requests.services import unsubscribe_request_create

from ..httpserver import http_endpoint
from ..pipeline_helpers import E164, NUMBER, file, http_target, outbox_lines, subscriber
from ..workers import ROOT, wait_for
from .scan import database_findings, unique_number

if TYPE_CHECKING:
    from pathlib import Path

    from django.contrib.auth.models import User
    from django.test import Client
    from pytest_django import Settings
    from pytest_django.live_server_helper import LiveServer

    from tenants.models import Tenant

    from ..pipeline_helpers import Language, Pipeline
    from .conftest import RawNumbers
    from .ledger import Ledger

FORMS = (E164, NUMBER, "138-0013-8000", "138 0013 8000")


def fresh(request: UnsubscribeRequest) -> UnsubscribeRequest:
    return UnsubscribeRequest.objects.unscoped(reason="test").get(pk=request.pk)


# --- item 1: no number in any stored excerpt ---------------------------------------------------


def test_redact_hides_every_number_form_and_keeps_short_numbers() -> None:
    text = "HTTP 400: " + " / ".join(FORMS) + " code 4001 ref T-12"
    masked = redact(text)
    assert all(form not in masked for form in FORMS)
    assert masked.startswith("HTTP 400: ") and "4001" in masked and "T-12" in masked
    # the one helper the inbound replies use too
    assert mask_digit_runs("退订 138 0013 8000") == "退订 *** **** ****"


def test_echoing_target_leaves_no_raw_number_anywhere(
    tenant_a: Tenant, outbox: Path, pipeline: Pipeline, raw_numbers: RawNumbers, fault_ledger: Ledger
) -> None:
    """The every-place scan (tests/faults/scan.py), through the whole pipeline with a target
    that echoes the request back, number and all, also in another format."""
    number = unique_number()
    subscriber(tenant_a, number)
    with http_endpoint(answer="echo") as endpoint:
        http_target(tenant_a, endpoint.url)
        with pipeline():
            request = file(tenant_a, number)
        assert fresh(request).state == "completed"
        assert endpoint.received and endpoint.received[0].json()["phone"] == number
    fault_ledger.count(faults=len(endpoint.received), filed=1)
    step = Step.objects.for_tenant(tenant_a).get(request=request, target__isnull=False)
    assert step.status == "succeeded" and '"status": "done"' in step.receipt
    # the outbox (the file gateway's, development only) holds what was sent, by design
    assert raw_numbers(number, skip_outbox=True) == [], "a raw number is still stored"


def test_completion_scrubs_receipts_errors_and_their_history_rows(
    tenant_a: Tenant, pipeline: Pipeline, fault_ledger: Ledger
) -> None:
    # given a request whose step texts (and their history rows) quote the number, as
    # receipts written by an older code path did
    with pipeline():
        request = file(tenant_a)
    request.refresh_from_db()
    assert request.state == "completed"
    step = Step.objects.for_tenant(tenant_a).filter(request=request).first()
    assert step is not None
    Step.objects.unscoped(reason="test").filter(pk=step.pk).update(receipt=f'HTTP 200: {{"phone": "{E164}"}}')
    Step.history.filter(id=step.pk).update(last_error="HTTP 500: 138 0013 8000 unknown")
    # when a request for the number completes again (a new one: the first is done)
    UnsubscribeRequest.objects.unscoped(reason="test").filter(pk=request.pk).update(
        state="erasing", phone=E164
    )
    with pipeline():
        request_advance(request.pk)
    # then none of it is left, in the steps or in their history
    fault_ledger.count(faults=2, filed=1)
    assert fresh(request).state == "completed"
    findings = database_findings(E164)
    fault_ledger.count(raw_numbers=len(findings))
    assert findings == []


def test_a_failing_gateway_that_echoes_the_number_keeps_it_out_of_the_message(
    tenant_a: Tenant, settings: Settings
) -> None:
    from notifications.services import message_fail

    message = Message.objects.create(
        tenant=tenant_a, channel="sms", event="otp", language="zh-hans", to=E164, body="x"
    )
    message_fail(message_id=message.pk, error=f"HTTP 400: invalid destination {E164} (138 0013 8000)")
    message.refresh_from_db()
    assert message.status == "failed" and "invalid destination" in message.error
    assert all(form not in message.error for form in FORMS)


# --- item 10: a target must answer the contract ----------------------------------------------


def test_garbage_answering_target_fails_the_step_with_the_reason(
    tenant_a: Tenant, pipeline: Pipeline, fault_ledger: Ledger
) -> None:
    subscriber(tenant_a)
    with http_endpoint(answer="garbage") as endpoint:
        http_target(tenant_a, endpoint.url, max_attempts=3)
        with pipeline():
            request = file(tenant_a)
    step = Step.objects.for_tenant(tenant_a).get(request=request, target__isnull=False)
    assert step.status == "failed"
    assert "not JSON" in step.last_error and "status and reference" in step.last_error
    # permanent: the same target answers the same call the same way
    fault_ledger.count(faults=len(endpoint.received), filed=1, duplicated=len(endpoint.received) - 1)
    assert len(endpoint.received) == 1
    assert fresh(request).state == "needs_attention"  # not lost: in the staff's queue


def test_a_hanging_target_times_out_and_its_retry_takes_effect_once(
    tenant_a: Tenant, pipeline: Pipeline, fault_ledger: Ledger
) -> None:
    subscriber(tenant_a)
    # the first call hangs past the target's timeout (and is applied late); the retry answers at once
    with http_endpoint([(200, 2.5), (200, 0.0)]) as endpoint:
        http_target(tenant_a, endpoint.url, max_attempts=3, timeout=1)
        with pipeline():
            request = file(tenant_a)
    step = Step.objects.for_tenant(tenant_a).get(request=request, target__isnull=False)
    assert (step.status, step.attempts) == ("succeeded", 2)
    assert any("timed out after 1 s" in (h.last_error or "") for h in step.history.all())
    # the same call both times (one Idempotency-Key), so the provider applies it once
    keys = {r.headers["Idempotency-Key"] for r in endpoint.received}
    fault_ledger.count(faults=1, filed=1, duplicated=sum(endpoint.effects.values()) - 1)
    assert len(endpoint.received) == 2 and len(keys) == 1 and endpoint.effects == {keys.pop(): 1}
    assert fresh(request).state == "completed"


@pytest.mark.parametrize(
    "answer",
    [{"ok": True}, {"status": "queued", "reference": "X1"}, {"status": "done"}, ["done"]],
    ids=["no-status", "wrong-status", "no-reference", "not-an-object"],
)
def test_a_2xx_that_breaks_the_contract_is_a_failure(
    tenant_a: Tenant,
    pipeline: Pipeline,
    answer: dict[str, bool] | dict[str, str] | list[str],
    fault_ledger: Ledger,
) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    payload = json.dumps(answer).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        http_target(tenant_a, f"http://127.0.0.1:{server.server_address[1]}/x", max_attempts=2)
        with pipeline():
            request = file(tenant_a)
    finally:
        server.shutdown()
        server.server_close()
    fault_ledger.count(faults=1, filed=1)
    step = Step.objects.for_tenant(tenant_a).get(request=request, target__isnull=False)
    assert step.status == "failed" and step.last_error.startswith("HTTP 200 but")


def test_good_answering_target_succeeds_with_its_reference_in_the_receipt(
    tenant_a: Tenant, pipeline: Pipeline
) -> None:
    subscriber(tenant_a)
    with http_endpoint() as endpoint:
        http_target(tenant_a, endpoint.url)
        with pipeline():
            request = file(tenant_a)
    step = Step.objects.for_tenant(tenant_a).get(request=request, target__isnull=False)
    assert step.status == "succeeded" and '"reference": "T-1"' in step.receipt
    assert fresh(request).state == "completed"


# --- item 9: the confirmation claims only what is true -----------------------------------------


def test_confirmation_beside_a_failing_termination_claims_no_ended_services(
    tenant_a: Tenant, pipeline: Pipeline, outbox: Path, fault_ledger: Ledger
) -> None:
    subscriber(tenant_a)
    with http_endpoint(script=[(400, 0.0)]) as endpoint:
        http_target(tenant_a, endpoint.url)
        with pipeline():
            request = file(tenant_a)
    assert fresh(request).state == "needs_attention"
    confirmations = [line["body"] for line in outbox_lines(outbox) if line["to"] == E164]
    fault_ledger.count(faults=1, filed=1, duplicated=len(confirmations) - 1)
    assert len(confirmations) == 1
    confirmation = confirmations[-1]
    assert request.reference in confirmation
    assert "已停止向本号码发送" in confirmation  # suppressed now: true
    assert "正在终止" in confirmation  # services being ended: true
    for claim in ("即日起不再发送", "已终止", "已结束", "已退订营销信息", "已全部删除"):
        assert claim not in confirmation


# --- item 7: one open request and one confirmation per number and scope -------------------------


def test_an_open_request_absorbs_an_identical_one(tenant_a: Tenant, settings: Settings) -> None:
    settings.CELERY_BROKER_URL = settings.CELERY_BROKER_URL  # nothing runs: the first stays open
    first = file(tenant_a)
    with transaction.atomic():
        again = unsubscribe_request_create(
            tenant=tenant_a, phone="138 0013 8000", channel="web", verification_method="otp"
        )
    assert again.created is False and again.request.reference == first.reference
    # another scope is another request
    from unsubscribe.models import Service

    Service.objects.create(tenant=tenant_a, code="club", name="Club")
    other = file(tenant_a, services=["club"])
    assert other.reference != first.reference
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 2


def _completed_today(tenant: Tenant, pipeline: Pipeline) -> UnsubscribeRequest:
    with pipeline():
        request = file(tenant)
    assert fresh(request).state == "completed"
    return request


def _confirmations(tenant: Tenant) -> list[Message]:
    return list(
        Message.objects.for_tenant(tenant).filter(event="unsubscribe_completed").exclude(status="failed")
    )


def test_two_requests_completed_the_same_day_get_one_confirmation(
    tenant_a: Tenant, pipeline: Pipeline
) -> None:
    with time_machine.travel(datetime(2026, 3, 2, 2, 0, tzinfo=UTC), tick=False):
        first = _completed_today(tenant_a, pipeline)
        second = _completed_today(tenant_a, pipeline)
    assert first.pk != second.pk
    assert len(_confirmations(tenant_a)) == 1


def test_a_request_the_next_day_gets_its_own_confirmation(tenant_a: Tenant, pipeline: Pipeline) -> None:
    with time_machine.travel(datetime(2026, 3, 2, 2, 0, tzinfo=UTC), tick=False):
        _completed_today(tenant_a, pipeline)
    with time_machine.travel(datetime(2026, 3, 3, 2, 0, tzinfo=UTC), tick=False):
        _completed_today(tenant_a, pipeline)
        confirmations = _confirmations(tenant_a)
    assert len(confirmations) == 2


@pytest.mark.django_db(transaction=True)
def test_forty_parallel_identical_posts_make_one_request_and_one_sms(
    live_server: LiveServer,
    tenant_a: Tenant,
    api_key_a: str,
    outbox: Path,
    settings: Settings,
    fault_ledger: Ledger,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("40 concurrent writers need PostgreSQL (SQLite serialises them and times out)")
    settings.LANZUAN_RETRY_BASE_SECONDS = 0
    settings.LANZUAN_API_RATES = {"partner": "600/min", "partner_bulk": "60/min"}
    url = live_server.url + "/api/v1/unsubscribe-requests"
    headers = {"Authorization": f"Api-Key {api_key_a}"}
    barrier = threading.Barrier(40)
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    # The test server's listen backlog is small (Django's WSGIServer: 10); on a loaded machine a
    # burst of 40 connects can be reset before it is accepted. A client resends then, as real
    # ones do: a resent identical post must be absorbed like the others.
    session = requests.Session()
    session.mount(
        "http://", HTTPAdapter(max_retries=Retry(total=5, backoff_factor=0.2, allowed_methods=None))
    )

    def post() -> None:
        barrier.wait()
        response = session.post(url, json={"phone": E164}, headers=headers, timeout=60)
        with lock:
            answers.append((response.status_code, response.json().get("reference", response.text[:300])))

    threads = [threading.Thread(target=post) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    created = UnsubscribeRequest.objects.for_tenant(tenant_a).count()
    fault_ledger.count(faults=1, filed=40, lost=40 - len(answers), duplicated=max(created - 1, 0))
    assert len(answers) == 40
    assert {status for status, _ref in answers} <= {200, 201}, answers
    assert len({ref for _status, ref in answers}) == 1
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1
    assert [status for status, _ref in answers].count(201) == 1
    # The pipeline was held (no worker) so that the request stayed open for all 40; now run it.
    from lanzuan.celery import app

    from ..workers import purge_queue

    purge_queue()
    app.conf.task_always_eager = True
    try:
        request_advance(UnsubscribeRequest.objects.for_tenant(tenant_a).get().pk)
    finally:
        app.conf.task_always_eager = False
    wait_for(lambda: fresh(UnsubscribeRequest.objects.for_tenant(tenant_a).get()).state == "completed", 30)
    sms = [line for line in outbox_lines(outbox) if line["to"] == E164]
    fault_ledger.count(duplicated=max(len(sms) - 1, 0))
    assert len(_confirmations(tenant_a)) == 1
    assert len(sms) == 1


# --- item 4: no silent file-gateway fallback ---------------------------------------------------


def test_without_a_gateway_messages_fail_visibly_and_the_request_needs_attention(
    tenant_a: Tenant, pipeline: Pipeline, settings: Settings, outbox: Path, fault_ledger: Ledger
) -> None:
    settings.LANZUAN_FILE_GATEWAY = False
    with pipeline():
        request = file(tenant_a)
    fault_ledger.count(faults=1, filed=1)
    confirm = Step.objects.for_tenant(tenant_a).get(request=request, kind="confirm")
    assert confirm.status == "failed" and confirm.attempts == confirm.max_attempts > 1  # retried first
    assert "no gateway configured" in confirm.last_error
    message = Message.objects.for_tenant(tenant_a).filter(event="unsubscribe_completed").first()
    assert message is not None
    assert message.status == "failed" and message.error.startswith("no gateway configured")
    assert fresh(request).state == "needs_attention"
    assert not outbox.exists()


def test_admin_shows_a_tenant_without_a_gateway_as_not_ready(
    client: Client, root: User, tenant_a: Tenant, settings: Settings
) -> None:
    settings.LANZUAN_FILE_GATEWAY = False
    client.force_login(root)
    english: Language = {"HTTP_ACCEPT_LANGUAGE": "en"}
    home = client.get(reverse("admin:index"), **english).content.decode()
    assert f'data-not-ready="{tenant_a.slug}"' in home and "no SMS gateway configured" in home
    page = client.get(reverse("admin:tenants_tenant_change", args=[tenant_a.pk]), **english).content.decode()
    assert "no SMS gateway configured" in page
    # with the file gateway allowed (development, tests) it is ready
    settings.LANZUAN_FILE_GATEWAY = True
    assert "data-not-ready" not in client.get(reverse("admin:index")).content.decode()


@pytest.mark.slow  # Django started in subprocesses
def test_the_flag_is_read_from_the_environment_with_debug_off() -> None:
    def flag(**env: str) -> str:
        base = {k: v for k, v in os.environ.items() if k not in ("LANZUAN_FILE_GATEWAY", "DEBUG")}
        code = "import django; django.setup(); from django.conf import settings; print(settings.LANZUAN_FILE_GATEWAY)"
        done = subprocess.run(
            [sys.executable, "-c", code],
            check=False,
            cwd=ROOT,
            env={**base, "DJANGO_SETTINGS_MODULE": "lanzuan.settings", **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip()

    assert flag(DEBUG="0") == "False"
    assert flag(DEBUG="0", LANZUAN_FILE_GATEWAY="1") == "True"
    assert flag(DEBUG="1") == "True"


def test_the_outbox_rotates_by_size_and_expires_rotated_files(tmp_path: Path, settings: Settings) -> None:
    settings.LANZUAN_OUTBOX_MAX_BYTES = 400
    path = tmp_path / "outbox.jsonl"
    gateway = FileGateway(path)
    for n in range(6):
        gateway.send(OutgoingMessage(n, "tenant-a", "sms", "otp", "zh-hans", E164, "验证码 1234" * 4))
    rotated = sorted(tmp_path.glob("outbox.jsonl.*"))
    assert rotated and path.stat().st_size <= 400
    lines = [json.loads(line) for p in [*rotated, path] for line in p.read_text().splitlines()]
    assert len(lines) == 6  # nothing lost, every line whole
    # rotated files past the keep period are deleted; the live file is rotated daily
    old = (datetime.now(UTC) - timedelta(days=settings.LANZUAN_OUTBOX_KEEP_DAYS + 1)).timestamp()
    for p in rotated:
        os.utime(p, (old, old))
    assert outbox_expire(path) == len(rotated)
    assert not path.exists() and len(list(tmp_path.glob("outbox.jsonl.*"))) == 1
