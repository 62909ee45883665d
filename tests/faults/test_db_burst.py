"""Issue 19, "database connections terminated during a burst": thirty people are filed
through the partner API at once, by clients that resend a refused or failed call with the
same Idempotency-Key (as real clients do), while another thread terminates every other
connection to the test database, again and again. Then the workers' queued tasks and the
real sweeps run until idle: every request completes, each number got exactly one
confirmation, no request was filed twice, and no raw number is left anywhere.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import pytest
import requests
from django.db import connection, connections

from lanzuan import phones
from unsubscribe.models import UnsubscribeRequest

from ..httpserver import http_endpoint
from ..pipeline_helpers import http_target, subscriber
from ..workers import purge_queue
from .scan import unique_number
from .work import in_thread, work_until_idle

if TYPE_CHECKING:
    from celery import Celery
    from pytest_django import Settings
    from pytest_django.live_server_helper import LiveServer

    from tenants.models import Tenant

    from .conftest import Gateways, RawNumbers
    from .ledger import Ledger

PEOPLE = 30
CLIENTS = 6
KILLS = 5  # rounds of terminations, spread over the burst
RETRYABLE = {409, 429, 500, 502, 503, 504}  # 409: the same key is still being worked on


@dataclass
class Burst:
    url: str
    api_key: str
    references: dict[str, str] = field(default_factory=dict)  # number → reference
    resent: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self) -> int:
        with self.lock:
            return len(self.references) + len(self.failures)

    def file(self, number: str, key: str, deadline: float) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Api-Key {self.api_key}", "Idempotency-Key": key}
        attempt = status = 0
        while time.monotonic() < deadline:
            attempt += 1
            try:
                response = session.post(self.url, json={"phone": number}, headers=headers, timeout=30)
            except requests.ConnectionError:  # refused or reset: resend, same key
                status = 0
            else:
                status = response.status_code
                if status in (200, 201):
                    with self.lock:
                        self.references[number] = response.json()["reference"]
                        self.resent += attempt - 1
                    return
                if status not in RETRYABLE:
                    with self.lock:
                        self.failures.append(f"{phones.mask(number)}: HTTP {status} {response.text[:300]}")
                    return
            time.sleep(min(0.05 * attempt, 0.5))
        with self.lock:
            self.failures.append(f"{phones.mask(number)}: gave up after {attempt} attempts (last: {status})")


def terminate_other_connections(*, wait: float = 2.0) -> int:
    """Wait (up to `wait` seconds) until another connection to this test database is open,
    then terminate every other one; returns how many were terminated."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        (name,) = cursor.fetchone()
        assert name.startswith("test_"), f"refusing to terminate connections to {name}"
        until = time.monotonic() + wait
        while True:
            cursor.execute(
                "SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            (terminated,) = cursor.fetchone()
            if terminated or time.monotonic() > until:
                return int(terminated)
            time.sleep(0.005)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_database_connections_terminated_during_a_burst(
    live_server: LiveServer,
    tenant_a: Tenant,
    api_key_a: str,
    settings: Settings,
    eager_celery: Celery,
    gateways: Gateways,
    raw_numbers: RawNumbers,
    fault_ledger: Ledger,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    assert connection.settings_dict["NAME"].startswith("test_")
    eager_celery.conf.task_always_eager = False  # the burst only queues; its work runs after
    settings.LANZUAN_RETRY_BASE_SECONDS = 0
    settings.LANZUAN_API_RATES = {"partner": "6000/min", "partner_bulk": "60/min"}
    numbers = [unique_number() for _ in range(PEOPLE)]
    for number in numbers:
        subscriber(tenant_a, number)
    gateways.use(tenant_a)
    purge_queue()

    with http_endpoint(answer="echo") as target:
        http_target(tenant_a, target.url)
        # when thirty people are filed at once while every other connection is terminated
        connection.close()  # the test's own is terminated too; it reconnects after the burst
        burst = Burst(url=live_server.url + "/api/v1/unsubscribe-requests", api_key=api_key_a)
        kills: list[int] = []
        deadline = time.monotonic() + 90

        def killer() -> None:
            try:
                for round_ in range(KILLS):
                    # the next round once a share of the people has an answer: kills spread over the burst
                    while burst.answered() < round_ * PEOPLE // (KILLS + 1) and time.monotonic() < deadline:
                        time.sleep(0.005)
                    kills.append(terminate_other_connections())
            finally:
                connections.close_all()

        def client(mine: list[str]) -> None:
            for number in mine:
                burst.file(number, f"burst-{uuid.uuid4()}", deadline)  # one key per person, kept

        threads = [in_thread(killer, "killer")]
        threads += [in_thread(partial(client, numbers[i::CLIENTS]), f"client-{i}") for i in range(CLIENTS)]
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 1) + 5)
        assert not any(thread.is_alive() for thread in threads), "the burst did not end"
        connection.close()
        terminated = sum(kills)
        fault_ledger.count(faults=terminated)

        # then every person got an answer, each their own request
        assert burst.failures == []
        assert sorted(burst.references) == sorted(numbers)
        assert terminated > 0, "no connection was terminated: the burst proved nothing"

        # and once the queued work and the sweeps ran, every request is completed
        eager_celery.conf.task_always_eager = True
        requests_ = UnsubscribeRequest.objects.for_tenant(tenant_a)
        work_until_idle(lambda: not requests_.exclude(state=UnsubscribeRequest.State.COMPLETED).exists())

    filed = list(requests_)
    fault_ledger.count(filed=len(filed), duplicated=len(filed) - len({r.phone_hash for r in filed}))
    assert len(filed) == PEOPLE and {r.reference for r in filed} == set(burst.references.values())
    completed = [r for r in filed if r.state == UnsubscribeRequest.State.COMPLETED]
    fault_ledger.count(lost=PEOPLE - len(completed))
    assert len(completed) == PEOPLE
    # each number got exactly one confirmation (one per idempotency key at the gateway)
    confirmations = {number: len(gateways.sent(number, "unsubscribe_completed")) for number in numbers}
    fault_ledger.count(duplicated=sum(max(n - 1, 0) for n in confirmations.values()))
    assert set(confirmations.values()) == {1}, confirmations
    # and no raw number is left: the database, the files, Redis (the broker's queue included)
    assert raw_numbers(*numbers) == []
    print(f"{terminated} connections terminated, {burst.resent} calls resent")  # noqa: T201
