"""Benchmark of issue 13's hot paths on a real server (not a test: it prints numbers and
writes them to a JSON file that `bench/run.py` turns into bench/RESULTS.md).

    .venv/bin/python bench/bench_hotpaths.py                  # all paths, defaults
    .venv/bin/python bench/bench_hotpaths.py --only check --suppressions 1000000

Needs PostgreSQL (DATABASE_URL) and Redis (CACHE_URL, CELERY_BROKER_URL), as production
runs: SQLite and a file broker say nothing about the stack's speed. It migrates the
database, loads a tenant with N suppressions (COPY, once: a later run reuses them), starts
gunicorn with the project's own settings plus one bare JsonResponse view behind the same
middleware (bench/bench_urls.py), and, side by side in one run:

1. single check: `GET /api/v1/suppressions/check?phone=` against `GET /bench/bare`, each at
   full load (wrk, closed loop), alternated `--rounds` times: requests/s and the ratio of
   the medians; then the check alone at a fixed 500 requests/s (open loop): p99 latency.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanzuan.settings")

import django  # noqa: E402

django.setup()

import loadgen  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from lanzuan import phones  # noqa: E402
from tenants import db_scope  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.services import api_key_create, tenant_create  # noqa: E402
from unsubscribe.models import Suppression  # noqa: E402

SLUG = "bench-hot"  # the tenant with N suppressions that single checks read
FLOW_SLUG = "bench-flow"  # the tenant STOP webhooks and the pipeline burst write to
RESULTS_JSON = BENCH / "hotpaths.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def numbers(prefix: str, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    span = 10 ** (11 - len(prefix))
    return [f"+86{prefix}{n:0{11 - len(prefix)}d}" for n in rng.sample(range(span), count)]


def tenant_with_suppressions(count: int) -> tuple[Tenant, list[str]]:
    """The benchmark tenant with `count` suppressions of +86138… numbers (loaded once)."""
    suppressed = numbers("138", count, seed=13)
    tenant = Tenant.objects.filter(slug=SLUG).first()
    if tenant is None:
        tenant = tenant_create(slug=SLUG, name="Benchmark (hot paths)")
    have = Suppression.objects.for_tenant(tenant).count()
    if have != count:
        Suppression.objects.for_tenant(tenant).delete()
        digest = phones.tenant_phone_hasher(tenant.pk)
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            buffer = io.StringIO()
            now = "2026-01-01T00:00:00+00:00"
            for number in suppressed:
                buffer.write(f"{tenant.pk}\t{digest(number)}\t{number[3:6]}****{number[-4:]}\t*\t{now}\n")
            buffer.seek(0)
            # Row-level security refuses COPY into the table itself: COPY into a temporary
            # table, then one INSERT … SELECT.
            cursor.execute(
                "CREATE TEMP TABLE bench_load (tenant_id bigint, phone_hash varchar(64), "
                "phone_masked varchar(24), scope varchar(50), created_at timestamptz) ON COMMIT DROP"
            )
            with cursor.cursor.copy("COPY bench_load FROM STDIN") as copy:  # psycopg 3
                while chunk := buffer.read(1 << 20):
                    copy.write(chunk)
            cursor.execute(
                "INSERT INTO unsubscribe_suppression (tenant_id, phone_hash, phone_masked, scope, created_at) "
                "SELECT * FROM bench_load"
            )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE unsubscribe_suppression")
        print(f"loaded {count:,} suppressions in {time.perf_counter() - started:.1f} s", flush=True)
    return tenant, suppressed


class Server:
    """gunicorn with the project's settings plus the bare view, on a free port."""

    def __init__(self, workers: int, threads: int) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench_settings",
            "PYTHONPATH": f"{BENCH}{os.pathsep}{ROOT}",
            "DEBUG": "0",
            "PUBLIC_BASE_URL": PUBLIC,  # what the Twilio signatures are computed over
        }
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "lanzuan.wsgi",
                f"--workers={workers}",
                f"--threads={threads}",
                "--worker-class=gthread",
                f"--bind=127.0.0.1:{self.port}",
                "--keep-alive=30",
                "--log-level=warning",
            ],
            env=env,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("gunicorn did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def check_requests(key: str, suppressed: list[str], count: int = 2000) -> list[bytes]:
    """Single checks of a mix: a fifth suppressed numbers, the rest free ones."""
    rng = random.Random(7)
    free = numbers("137", count, seed=8)
    picks = [rng.choice(suppressed) if i % 5 == 0 else free[i] for i in range(count)]
    headers = {"Authorization": f"Api-Key {key}"}
    return [
        loadgen.http_request("GET", f"/api/v1/suppressions/check?phone=%2B{n[1:]}", headers) for n in picks
    ]


def bare_requests(suppressed: list[str]) -> list[bytes]:
    return [loadgen.http_request("GET", f"/bench/bare?phone=%2B{n[1:]}") for n in suppressed[:2000]]


def warm(port: int, requests: list[bytes]) -> None:
    loadgen.closed_loop(port, requests, seconds=2, connections=8)


def bench_check(
    server: Server, key: str, suppressed: list[str], rounds: int, seconds: float
) -> dict[str, Any]:
    checks, bare = check_requests(key, suppressed), bare_requests(suppressed)
    warm(server.port, checks)
    warm(server.port, bare)
    bare_rates: list[float] = []
    check_rates: list[float] = []
    for _ in range(rounds):
        for name, requests, rates in (("bare", bare, bare_rates), ("check", checks, check_rates)):
            result = loadgen.closed_loop(server.port, requests, seconds=seconds)
            if result.failed:
                raise SystemExit(f"{name}: {result.failed} of {result.requests} requests failed")
            rates.append(result.rate)
            print(
                f"  {name:5}: {result.rate:7,.0f} req/s  p50 {result.p50_ms:.1f} ms  p99 {result.p99_ms:.1f} ms",
                flush=True,
            )
    ratios = [c / b for c, b in zip(check_rates, bare_rates, strict=True)]
    fixed = loadgen.open_loop(server.port, checks, rate=500, seconds=max(seconds, 10))
    bad = sum(n for status, n in fixed.statuses.items() if status != 200)
    print(
        f"  check at 500 req/s: p50 {fixed.median_ms:.1f} ms, p99 {fixed.percentile(99):.1f} ms, "
        f"{fixed.rate:.0f} answered/s, {bad} not 200",
        flush=True,
    )
    return {
        "bare_rps": bare_rates,
        "check_rps": check_rates,
        "ratio_median": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)],
        "p99_at_500_ms": fixed.percentile(99),
        "p50_at_500_ms": fixed.median_ms,
        "failed_at_500": bad,
    }


TWILIO_TOKEN = "bench-twilio-token"
PUBLIC = "http://bench.test"


def stop_requests(tenant: Tenant, count: int, seed: int) -> tuple[list[bytes], list[str]]:
    """Signed Twilio webhooks, each a "TD" from a new number (the whole opt-out path)."""
    from twilio.request_validator import RequestValidator  # noqa: PLC0415

    path = f"/hooks/sms/{tenant.slug}/twilio/"
    validator = RequestValidator(TWILIO_TOKEN)
    senders = numbers("139", count, seed=seed)
    requests = []
    for n, sender in enumerate(senders):
        params = {
            "From": sender,
            "To": "+14155550100",
            "Body": "TD",
            "MessageSid": f"SMbench{seed:04d}{n:08d}",
            "AccountSid": "AC" + "0" * 32,
        }
        headers = {
            "X-Twilio-Signature": validator.compute_signature(PUBLIC + path, params),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        requests.append(loadgen.http_request("POST", path, headers, urlencode(params).encode()))
    return requests, senders


def bench_stop(server: Server, tenant: Tenant, seconds: float, rate: float) -> dict[str, Any]:
    """The Twilio STOP webhook: the most it carries (closed loop, each message a new number),
    then a fixed `rate` (open loop): p99, and every answered message suppressed."""
    from unsubscribe.inbound.services import inbound_credential_set  # noqa: PLC0415

    inbound_credential_set(tenant=tenant, provider="twilio", secret=TWILIO_TOKEN)
    # Each worker's first replies load the intent model and open connections: not the path's speed.
    warm(server.port, stop_requests(tenant, 800, seed=int(time.time()) % 10_000 + 20_000)[0])
    capacity = int(seconds * 400)  # more distinct messages than the run can send
    flood, _ = stop_requests(tenant, capacity, seed=int(time.time()) % 10_000)
    most = loadgen.closed_loop(server.port, flood, seconds=seconds, connections=8)
    print(
        f"  STOP, full load: {most.rate:,.0f} msg/s  p50 {most.p50_ms:.1f} ms  p99 {most.p99_ms:.1f} ms",
        flush=True,
    )
    steady, senders = stop_requests(tenant, int(rate * seconds), seed=int(time.time()) % 10_000 + 1)
    fixed = loadgen.open_loop(server.port, steady, rate=rate, seconds=seconds)
    answered = fixed.statuses.get(200, 0)
    digest = phones.tenant_phone_hasher(tenant.pk)
    wanted = [digest(n) for n in senders[: len(steady)]]
    suppressed = Suppression.objects.for_tenant(tenant).filter(phone_hash__in=wanted).count()
    print(
        f"  STOP at {rate:.0f} msg/s: p50 {fixed.median_ms:.1f} ms, p99 {fixed.percentile(99):.1f} ms, "
        f"{answered} of {fixed.sent} answered 200, {suppressed} suppressed",
        flush=True,
    )
    return {
        "max_msg_per_s": most.rate,
        "max_p99_ms": most.p99_ms,
        "rate": rate,
        "p99_at_rate_ms": fixed.percentile(99),
        "p50_at_rate_ms": fixed.median_ms,
        "answered": answered,
        "sent": fixed.sent,
        "suppressed": suppressed,
    }


def bench_pipeline(tenant: Tenant, burst: int, concurrency: int, timeout: float) -> dict[str, Any]:
    """A burst of `burst` requests filed at once (as the API files them), worked by one Celery
    worker with `concurrency` processes: requests completed per second, and how long after
    its request each confirmation was sent (from the records: the confirmation step's
    finish time minus the request's receipt time)."""
    from unsubscribe.models import Step, UnsubscribeRequest  # noqa: PLC0415 (after django.setup)
    from unsubscribe.requests.services import unsubscribe_request_create  # noqa: PLC0415

    UnsubscribeRequest.objects.for_tenant(tenant).delete()
    Suppression.objects.for_tenant(tenant).delete()
    Tenant.objects.filter(pk=tenant.pk).update(erasure_delay_hours=0)
    tenant.refresh_from_db()
    subprocess.run(  # a clean queue: nothing of an earlier run
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "lanzuan",
            "purge",
            "-f",
            "-Q",
            "confirmations,pipeline,webhooks",
        ],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "lanzuan",
            "worker",
            "-Q",
            "confirmations,pipeline,webhooks",
            "-l",
            "warning",
            f"--concurrency={concurrency}",
            "-n",
            f"bench-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env={**os.environ, "DEBUG": "0", "LANZUAN_FILE_GATEWAY": "1", "PYTHONPATH": str(ROOT)},
    )
    try:
        free = numbers("135", burst, seed=21)
        started = time.perf_counter()
        for number in free:
            unsubscribe_request_create(
                tenant=tenant,
                phone=number,
                channel="app",
                verification_method="partner_assertion",
                verification_evidence={"bench": True},
            )
        filed = time.perf_counter() - started
        print(f"  filed {burst:,} requests in {filed:.1f} s ({burst / filed:,.0f}/s)", flush=True)
        requests = UnsubscribeRequest.objects.for_tenant(tenant)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = requests.filter(state=UnsubscribeRequest.State.COMPLETED).count()
            if done == burst:
                break
            time.sleep(1)
        elapsed = time.perf_counter() - started
        done = requests.filter(state=UnsubscribeRequest.State.COMPLETED).count()
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    first = requests.order_by("received_at").values_list("received_at", flat=True).first()
    last_done = (
        requests.exclude(completed_at=None)
        .order_by("-completed_at")
        .values_list("completed_at", flat=True)
        .first()
    )
    lags = [
        (finished - received).total_seconds()
        for finished, received in Step.objects.for_tenant(tenant)
        .filter(kind=Step.Kind.CONFIRM, status=Step.Status.SUCCEEDED)
        .values_list("finished_at", "request__received_at")
        if finished is not None
    ]
    span = (last_done - first).total_seconds() if first and last_done else elapsed
    result = {
        "burst": burst,
        "completed": done,
        "completed_per_s": done / span if span else 0.0,
        "confirmations_sent": len(lags),
        "confirmation_lag_max_s": max(lags) if lags else None,
        "confirmation_lag_median_s": statistics.median(lags) if lags else None,
    }
    print(
        f"  {done:,} of {burst:,} completed in {span:.0f} s ({result['completed_per_s']:.1f}/s); "
        f"{len(lags):,} confirmations, lag median {result['confirmation_lag_median_s']} s, "
        f"max {result['confirmation_lag_max_s']} s",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suppressions", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["check", "stop", "pipeline"], help="one path only")
    parser.add_argument("--stop-rate", type=float, default=200, help="STOP webhooks per second (open loop)")
    parser.add_argument("--burst", type=int, default=2000, help="requests of the pipeline burst")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--pipeline-timeout", type=float, default=600)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of each side-by-side pair")
    parser.add_argument("--seconds", type=float, default=8, help="length of each measured run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit(
            "set DATABASE_URL to a PostgreSQL database: the hot paths are measured on the real stack"
        )
    db_scope.enter_system(reason="the benchmark sets up its tenant")
    call_command("migrate", verbosity=0)
    tenant, suppressed = tenant_with_suppressions(args.suppressions)
    tenant.api_keys.all().delete()
    _row, key = api_key_create(tenant=tenant, name="bench")
    # The server's rate limit far above the load: the limiter's cost is measured, not its refusals.
    os.environ["LANZUAN_API_RATE"] = "100000000/min"
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1"
    results: dict[str, Any] = {
        "suppressions": args.suppressions,
        "workers": args.workers,
        "threads": args.threads,
    }
    if args.only in (None, "check"):
        server = Server(args.workers, args.threads)
        try:
            print(f"single check vs bare view ({args.workers} workers × {args.threads} threads)", flush=True)
            results["check"] = bench_check(server, key, suppressed, args.rounds, args.seconds)
        finally:
            server.stop()
    flow = Tenant.objects.filter(slug=FLOW_SLUG).first() or tenant_create(
        slug=FLOW_SLUG, name="Benchmark (flow)"
    )
    if args.only in (None, "stop"):
        server = Server(args.workers, args.threads)
        try:
            print(
                f"STOP webhook ({args.workers} workers × {args.threads} threads; no Celery worker)",
                flush=True,
            )
            results["stop"] = bench_stop(server, flow, args.seconds, args.stop_rate)
        finally:
            server.stop()
    if args.only in (None, "pipeline"):
        print(
            f"pipeline: a burst of {args.burst:,} requests, {args.concurrency} worker processes", flush=True
        )
        results["pipeline"] = bench_pipeline(flow, args.burst, args.concurrency, args.pipeline_timeout)
    previous = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    RESULTS_JSON.write_text(json.dumps({**previous, **results}, indent=2) + "\n")
    print(f"wrote {RESULTS_JSON.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
