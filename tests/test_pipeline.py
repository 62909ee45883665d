"""The unsubscribe pipeline end to end: the real database and real HTTP endpoints, with the
workers' tasks run in-process (the `pipeline` fixture); a real Celery worker (another process)
on the configured broker (Redis in CI) where only a worker can show it: a worker killed
mid-task, the broker down."""

from __future__ import annotations

import functools
import shutil
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, TypedDict

import pytest
from django.db import connection
from django.urls import reverse

from lanzuan.signing import verify
from unsubscribe.models import Step, SubscriberProfile, Subscription, UnsubscribeRequest
from unsubscribe.pipeline.services import pipeline_sweep, request_process, step_dispatch
from unsubscribe.requests.selectors import request_for_person
from unsubscribe.requests.services import unsubscribe_request_create
from unsubscribe.suppressions.selectors import suppression_status

from .httpserver import http_endpoint
from .pipeline_helpers import E164, NUMBER, file, http_target, outbox_lines, subscriber, thread_like_the_test
from .workers import ROOT, celery_worker, purge_queue, wait_for, worker_env

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from django.contrib.auth.models import User
    from django.test import Client
    from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

    from tenants.models import Tenant

    from .pipeline_helpers import Pipeline

pytestmark = pytest.mark.django_db


class WorkerTimings(TypedDict):
    """Environment a real worker gets, splatted into celery_worker()/worker_env()."""

    LANZUAN_RETRY_BASE_SECONDS: str
    LANZUAN_INTERNAL_STEP_TIMEOUT_SECONDS: str
    LANZUAN_STEP_LEASE_MARGIN_SECONDS: str


# Leases of seconds: a step held by a killed worker is taken over within the test's patience.
FAST: WorkerTimings = {
    "LANZUAN_RETRY_BASE_SECONDS": "0.3",
    "LANZUAN_INTERNAL_STEP_TIMEOUT_SECONDS": "3",
    "LANZUAN_STEP_LEASE_MARGIN_SECONDS": "2",
}


@pytest.fixture
def fast_pipeline(settings: Settings, outbox: Path) -> None:
    settings.LANZUAN_RETRY_BASE_SECONDS = 0.3
    settings.LANZUAN_INTERNAL_STEP_TIMEOUT_SECONDS = 3
    settings.LANZUAN_STEP_LEASE_MARGIN_SECONDS = 2
    purge_queue()


def state_of(request: UnsubscribeRequest) -> str:
    return UnsubscribeRequest.objects.unscoped(reason="test").get(pk=request.pk).state


def test_request_completes_through_every_step(tenant_a: Tenant, outbox: Path, pipeline: Pipeline) -> None:
    # given a subscriber with two services and a profile (no targets: Lanzuan's own records are built in)
    subscriber(tenant_a)

    with pipeline():
        # when the person unsubscribes from everything
        request = file(tenant_a)
        # then the number is suppressed before any task has run (they run when the block ends)
        assert suppression_status(tenant=tenant_a, phone=NUMBER).suppressed

    assert state_of(request) == "completed"
    request.refresh_from_db()
    assert request.phone == "" and request.phone_masked == "138****8000"
    for field in ("suppressed_at", "terminating_at", "confirming_at", "erasing_at", "completed_at"):
        assert getattr(request, field) is not None, field
    steps = {(s.kind, s.target_name): s for s in request.steps.all()}
    assert {s.status for s in steps.values()} == {"succeeded"}
    assert {kind for kind, _name in steps} == {"terminate", "confirm", "erase"}
    # services ended, personal data gone, one confirmation in the person's language
    assert set(Subscription.objects.unscoped(reason="test").values_list("status", flat=True)) == {"ended"}
    assert set(Subscription.objects.unscoped(reason="test").values_list("phone", flat=True)) == {""}
    assert not SubscriberProfile.objects.unscoped(reason="test").exists()
    messages = outbox_lines(outbox)
    assert len(messages) == 1
    assert messages[0]["to"] == E164 and request.reference in messages[0]["body"]
    assert messages[0]["tenant"] == tenant_a.slug
    # and the number still reads as suppressed, found by its hash
    assert suppression_status(tenant=tenant_a, phone=NUMBER).suppressed


def test_a_first_turn_hands_out_the_confirmation_and_leaves_its_own_steps_to_the_next_turn(
    tenant_a: Tenant, outbox: Path, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    # In a burst, each request's first turn must be short, so that every person's confirmation
    # goes out within minutes rather than after the steps of every request filed before theirs.
    subscriber(tenant_a)
    with django_capture_on_commit_callbacks(execute=False):
        request = file(tenant_a)
    steps = Step.objects.unscoped(reason="test").filter(request=request)

    with django_capture_on_commit_callbacks(execute=False) as handed_out:
        request_process(request.pk)  # the turn the filing queued
    confirm = steps.get(kind="confirm")
    dispatched = [
        (cb.args, cb.keywords)
        for cb in handed_out
        if isinstance(cb, functools.partial) and cb.func is step_dispatch
    ]
    assert dispatched == [((confirm.pk,), {"queue": "confirmations"})]
    assert set(steps.filter(kind="terminate").values_list("status", flat=True)) == {"pending"}

    request_process(request.pk, confirmation_first=False)  # the next turn, queued behind the burst
    assert set(steps.filter(kind="terminate").values_list("status", flat=True)) == {"succeeded"}
    assert steps.get(kind="confirm").status == "pending"  # its own task sends it
    assert outbox_lines(outbox) == []


def test_external_target_failing_twice_is_retried_and_completes(
    tenant_a: Tenant, outbox: Path, pipeline: Pipeline
) -> None:
    subscriber(tenant_a)
    with http_endpoint([(503, 0), (500, 0), (200, 0)]) as endpoint:
        http_target(tenant_a, endpoint.url)
        with pipeline():
            request = file(tenant_a, services=["offers"])
    assert state_of(request) == "completed"

    step = Step.objects.unscoped(reason="test").get(request=request, kind="terminate", target__isnull=False)
    assert step.attempts == 3 and step.status == "succeeded"
    assert "HTTP 200" in step.receipt
    # every call was signed over timestamp and body, and named the scope
    for call in endpoint.received:
        headers = {k.lower(): v for k, v in call.headers.items()}
        assert verify(
            "s3cret-signing-key", headers["x-lanzuan-timestamp"], call.body, headers["x-lanzuan-signature"]
        )
        assert call.json()["scope"] == ["offers"] and call.json()["action"] == "terminate"
        assert call.json()["received_at"] == request.received_at.isoformat()
    assert len(endpoint.received) == 3


def test_target_that_always_fails_ends_in_needs_attention_shown_in_admin(
    tenant_a: Tenant, alice: User, client: Client, outbox: Path, pipeline: Pipeline
) -> None:
    subscriber(tenant_a)
    with http_endpoint([(502, 0)]) as endpoint:
        http_target(tenant_a, endpoint.url, max_attempts=3)
        with pipeline():
            request = file(tenant_a)
    assert state_of(request) == "needs_attention"
    # the confirmation still went out: the number is suppressed whatever the provider says
    assert Step.objects.unscoped(reason="test").get(request=request, kind="confirm").status == "succeeded"

    request.refresh_from_db()
    assert "HTTP 502" in request.attention_reason
    assert len(endpoint.received) == 3
    client.force_login(alice)
    page = client.get(
        reverse("admin:unsubscribe_unsubscriberequest_change", args=[request.pk])
    ).content.decode()
    assert "HTTP 502" in page and request.reference in page
    listing = client.get(
        reverse("admin:unsubscribe_unsubscriberequest_changelist"), {"state__exact": "needs_attention"}
    )
    assert request.reference in listing.content.decode()


def test_retry_action_resumes_a_request_that_needed_attention(
    tenant_a: Tenant, alice: User, client: Client, outbox: Path, pipeline: Pipeline
) -> None:
    subscriber(tenant_a)
    with http_endpoint([(400, 0), (200, 0)]) as endpoint:  # a 400 is permanent: no automatic retry
        http_target(tenant_a, endpoint.url)
        with pipeline():
            request = file(tenant_a)
        assert state_of(request) == "needs_attention"
        assert len(endpoint.received) == 1
        # when the provider fixed their endpoint and an admin retries
        client.force_login(alice)
        with pipeline():
            response = client.post(
                reverse("admin:unsubscribe_unsubscriberequest_changelist"),
                {"action": "retry_requests", "_selected_action": [request.pk]},
            )
        assert response.status_code == 302
        assert state_of(request) == "completed"
    assert len(endpoint.received) == 2


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)  # a worker process sees only what is committed
@pytest.mark.usefixtures("fast_pipeline")
def test_worker_killed_mid_task_is_finished_by_the_next_worker(
    tenant_a: Tenant, tmp_path: Path, outbox: Path
) -> None:
    subscriber(tenant_a)
    # the provider takes 4 s to answer the first call: long enough to kill the worker inside it
    with http_endpoint([(200, 4.0), (200, 0)]) as endpoint:
        http_target(tenant_a, endpoint.url, timeout=5)
        with celery_worker(
            tmp_path, OUTBOX_PATH=str(outbox), CELERY_VISIBILITY_TIMEOUT="3", **FAST
        ) as worker:
            request = file(tenant_a)
            wait_for(lambda: len(endpoint.received) == 1, 30, message=worker.output()[-3000:])
            worker.kill()
        assert state_of(request) != "completed"

        with celery_worker(
            tmp_path, OUTBOX_PATH=str(outbox), CELERY_VISIBILITY_TIMEOUT="3", **FAST
        ) as worker:
            # the periodic sweep (beat runs it every 30 s) re-dispatches what the dead worker held
            def finished() -> bool:
                pipeline_sweep(stale_after=__import__("datetime").timedelta(seconds=1))
                return state_of(request) == "completed"

            wait_for(finished, 90, interval=1, message=worker.output()[-3000:])

    assert len(endpoint.received) >= 2  # called again after the crash…
    assert list(endpoint.effects.values()) == [1]  # …with the same idempotency key: one effect
    assert (
        Step.objects.unscoped(reason="test")
        .get(request=request, kind="terminate", target__isnull=False)
        .status
        == "succeeded"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server to start a throwaway broker"
)
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)  # a worker process sees only what is committed
@pytest.mark.usefixtures("fast_pipeline")
def test_requests_are_accepted_with_the_broker_down_and_complete_after_it_returns(
    tenant_a: Tenant, tmp_path: Path, outbox: Path
) -> None:
    subscriber(tenant_a)
    port = _free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    env = worker_env(CELERY_BROKER_URL=broker, OUTBOX_PATH=str(outbox), **FAST)

    # when a request arrives while the broker is down (the web process files it)
    started = time.monotonic()
    filed = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from tenants.models import Tenant; from unsubscribe.requests.services import unsubscribe_request_create; "
            f"r = unsubscribe_request_create(tenant=Tenant.objects.get(slug='{tenant_a.slug}'), "
            f"phone='{NUMBER}', channel='app', verification_method='partner_assertion').request; print(r.reference)",
        ],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert filed.returncode == 0, filed.stderr
    assert time.monotonic() - started < 30
    request = UnsubscribeRequest.objects.unscoped(reason="test").get(
        reference=filed.stdout.strip().splitlines()[-1]
    )
    # then it is recorded and suppressed, and waits for the sweep
    assert request.state == "suppressed" and request.dispatched_at is None
    assert suppression_status(tenant=tenant_a, phone=NUMBER).suppressed
    assert "broker unavailable" in filed.stderr

    # when the broker comes back, a worker starts and the sweep runs
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: (
                subprocess.run(
                    ["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False
                ).returncode
                == 0
            ),
            20,
        )
        with celery_worker(tmp_path, CELERY_BROKER_URL=broker, OUTBOX_PATH=str(outbox), **FAST) as worker:
            sweep = subprocess.run(
                [
                    sys.executable,
                    "manage.py",
                    "shell",
                    "-c",
                    "from unsubscribe.tasks import pipeline_sweep; print(pipeline_sweep())",
                ],
                check=False,
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert sweep.returncode == 0, sweep.stderr
            assert "'dispatched': 1" in sweep.stdout
            wait_for(lambda: state_of(request) == "completed", 60, message=worker.output()[-3000:])
    finally:
        redis.terminate()
        redis.wait(timeout=10)


def _text_columns() -> Iterator[tuple[str, str]]:
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            for column in connection.introspection.get_table_description(cursor, table):
                yield table, column.name


def test_after_completion_no_table_holds_the_raw_number(
    tenant_a: Tenant, outbox: Path, pipeline: Pipeline
) -> None:
    subscriber(tenant_a)
    with pipeline():
        request = file(tenant_a)
    assert state_of(request) == "completed"

    found = []
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table, column in _text_columns():
            cursor.execute(
                f"SELECT COUNT(*) FROM {qn(table)} WHERE CAST({qn(column)} AS TEXT) LIKE %s",  # noqa: S608
                [f"%{NUMBER}%"],
            )
            if cursor.fetchone()[0]:
                found.append(f"{table}.{column}")
    assert found == [], f"the raw number is still stored in {found}"
    # what remains proves the opt-out when the person gives the number again
    assert request_for_person(tenant=tenant_a, reference=request.reference, phone=NUMBER) == request


@pytest.mark.django_db(transaction=True)  # threads, each with its own connection
def test_concurrent_requests_for_one_number_make_one_suppression(
    tenant_a: Tenant, settings: Settings
) -> None:

    from unsubscribe.models import Suppression

    settings.CELERY_BROKER_URL = settings.CELERY_BROKER_URL  # dispatch is best-effort; nothing to run here
    errors: list[BaseException] = []
    references: list[str] = []

    def one(key: str | None) -> None:
        try:
            filed = unsubscribe_request_create(
                tenant=tenant_a,
                phone=NUMBER,
                channel="app",
                verification_method="partner_assertion",
                idempotency_key=key,
            )
            references.append(filed.request.reference)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [thread_like_the_test(one, None) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(references) == 20
    assert Suppression.objects.for_tenant(tenant_a).count() == 1

    # the same idempotency key, 20 times at once: one request
    references.clear()
    threads = [thread_like_the_test(one, "order-42") for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(references)) == 1
    # the open request for this number and scope absorbs them all (issue 19, item 7): one request in all
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1
