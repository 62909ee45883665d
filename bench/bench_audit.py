"""Benchmark: what the tamper-evident audit record (issue 15) costs on the hot paths.

    .venv/bin/python bench/bench_audit.py [STOPS] [ROWS] [RUNS]     # defaults 200, 10000, 5

Side by side in one run, the audit on and off (`LANZUAN_AUDIT`, switched in-process; off exists
only for this baseline): the signed Twilio STOP webhook (through the test client and the whole
Django stack: signature, tenant, the reply stored, the request filed and suppressed, its steps
planned, and the audit entries of all that) and a 10,000-row subscription import (the service
function the Celery task runs). Medians of RUNS alternating runs; SQL statements per STOP.

Uses the configured database (DATABASE_URL; SQLite under var/ otherwise) and a tenant of its
own ("bench-audit"), left in place for the next run.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanzuan.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from tenants import db_scope  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from unsubscribe.inbound.services import inbound_credential_set  # noqa: E402
from unsubscribe.models import AuditEntry, Service, Subscription, SubscriptionImport  # noqa: E402
from unsubscribe.subscriptions.services import subscription_import_run  # noqa: E402

TOKEN = "bench-twilio-auth-token"
SLUG = "bench-audit"


def stops(client: Client, tenant: Tenant, count: int, start: int) -> tuple[float, int]:
    """Seconds per STOP (median of `count`), and SQL statements of one STOP."""
    url = f"/hooks/sms/{tenant.slug}/twilio/"
    validator = RequestValidator(TOKEN)
    times = []
    statements = 0
    for i in range(count):
        params = {
            "From": f"+86139{start + i:08d}",
            "To": "+14155550100",
            "Body": "STOP",
            "MessageSid": f"SMbench{start + i}",
            "AccountSid": "AC" + "0" * 32,
        }
        signature = validator.compute_signature(settings.PUBLIC_BASE_URL + url, params)
        with CaptureQueriesContext(connection) as queries:
            began = time.perf_counter()
            response = client.post(url, params, HTTP_X_TWILIO_SIGNATURE=signature, HTTP_HOST="127.0.0.1")
            times.append(time.perf_counter() - began)
        if response.status_code != 200:
            raise SystemExit(f"STOP answered {response.status_code}: {response.content[:300]!r}")
        statements = len(queries)
    return statistics.median(times), statements


def import_rows(tenant: Tenant, rows: int, run: int) -> float:
    Subscription.objects.for_tenant(tenant).delete()
    lines = ["phone,service,consent_source,consent_at"]
    lines += [f"137{run:02d}{i:06d},offers,web,2026-01-01T00:00:00+08:00" for i in range(rows)]
    import_ = SubscriptionImport.objects.create(
        tenant=tenant, file=ContentFile("\n".join(lines).encode(), name="bench.csv")
    )
    began = time.perf_counter()
    result = subscription_import_run(import_.pk)
    elapsed = time.perf_counter() - began
    if result.created != rows:
        raise SystemExit(f"import created {result.created} of {rows}: {result.errors[:3]}")
    return elapsed


def main(count: int, rows: int, runs: int) -> None:
    logging.disable(logging.INFO)  # a log line per STOP would be measured too
    db_scope.enter_system(reason="a benchmark sets up and reads its own tenant's rows")
    call_command("migrate", verbosity=0)
    tenant, _ = Tenant.objects.get_or_create(slug=SLUG, defaults={"name": "Bench audit"})
    Service.objects.for_tenant(tenant).get_or_create(
        tenant=tenant, code="offers", defaults={"name": "Offers"}
    )
    inbound_credential_set(tenant=tenant, provider="twilio", secret=TOKEN)
    client = Client(enforce_csrf_checks=False)
    # A number never seen before for every STOP, in every run: each files a new request.
    base = int(time.time()) % 1_000_000 * 100
    stop_times: dict[bool, list[float]] = {True: [], False: []}
    stop_sql: dict[bool, int] = {}
    import_times: dict[bool, list[float]] = {True: [], False: []}
    stops(client, tenant, 20, base)  # warm caches and connections
    base += 20
    for run in range(runs):
        for audit in (True, False) if run % 2 == 0 else (False, True):
            settings.LANZUAN_AUDIT = audit
            per_stop, statements = stops(client, tenant, count, base)
            base += count
            stop_times[audit].append(per_stop)
            stop_sql[audit] = statements
            import_times[audit].append(import_rows(tenant, rows, run * 2 + int(audit)))
    settings.LANZUAN_AUDIT = True
    print(
        f"database: {connection.vendor}; {runs} runs, alternating; audit entries of the tenant now: "
        f"{AuditEntry.objects.for_tenant(tenant).count()}"
    )
    print(f"{'':34}{'audit on':>14}{'audit off':>14}{'cost':>12}")
    on, off = statistics.median(stop_times[True]) * 1000, statistics.median(stop_times[False]) * 1000
    print(f"{'STOP webhook, ms per message':34}{on:>14.2f}{off:>14.2f}{on - off:>+11.2f}")
    print(
        f"{'STOP webhook, SQL statements':34}{stop_sql[True]:>14}{stop_sql[False]:>14}"
        f"{stop_sql[True] - stop_sql[False]:>+12}"
    )
    on, off = statistics.median(import_times[True]), statistics.median(import_times[False])
    print(f"{f'import of {rows:,} rows, s':34}{on:>14.2f}{off:>14.2f}{on - off:>+11.2f}")
    print(f"{f'import of {rows:,} rows, rows/s':34}{rows / on:>14,.0f}{rows / off:>14,.0f}")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*(args + [200, 10_000, 5][len(args) :]))
