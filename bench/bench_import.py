"""Benchmark: the background CSV import of subscriptions (issue 3: 10^5 rows
without timing out). Runs the same service function the Celery task runs.

    .venv/bin/python bench/bench_import.py [ROWS]        # default 100000

Uses the configured database (DATABASE_URL; SQLite under var/ otherwise) and a
throwaway tenant that it deletes afterwards.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanzuan.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from django.core.files.base import ContentFile  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from tenants.models import Tenant  # noqa: E402
from unsubscribe.models import Service, Subscription, SubscriptionImport  # noqa: E402
from unsubscribe.subscriptions.services import subscription_import_run  # noqa: E402


def main(rows: int) -> None:
    call_command("migrate", verbosity=0)
    tenant, _ = Tenant.objects.get_or_create(slug="bench-import", defaults={"name": "Bench import"})
    Subscription.objects.filter(tenant=tenant).delete()
    SubscriptionImport.objects.filter(tenant=tenant).delete()
    Service.objects.filter(tenant=tenant).delete()
    Service.objects.create(tenant=tenant, name="Offers", code="offers")
    lines = ["phone,service,consent_source,consent_at"]
    lines += [f"13{i % 7 + 3}{i:08d},offers,web,2026-01-01T00:00:00+08:00" for i in range(rows)]
    import_ = SubscriptionImport.objects.create(
        tenant=tenant, file=ContentFile("\n".join(lines).encode(), name="bench.csv")
    )
    started = time.perf_counter()
    result = subscription_import_run(import_.pk)
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"database: {connection.vendor}")
    print(f"rows: {rows}, created: {result.created}, invalid: {result.invalid}, status: {result.status}")
    print(f"import: {elapsed:.2f} s, {rows / elapsed:,.0f} rows/s, peak RSS {peak_mb:.0f} MB")
    # a second run over the same file updates every row instead of creating it
    import_2 = SubscriptionImport.objects.create(
        tenant=tenant, file=ContentFile("\n".join(lines).encode(), name="bench.csv")
    )
    started = time.perf_counter()
    result = subscription_import_run(import_2.pk)
    elapsed = time.perf_counter() - started
    print(f"re-import (upsert): {elapsed:.2f} s, {rows / elapsed:,.0f} rows/s, updated: {result.updated}")
    Subscription.objects.filter(tenant=tenant).delete()
    SubscriptionImport.objects.filter(tenant=tenant).delete()
    Service.objects.filter(tenant=tenant).delete()
    tenant.delete()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
