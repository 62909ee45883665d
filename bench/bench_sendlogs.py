"""Benchmark of a send-log import (issue 17; not a test: it prints numbers).

    .venv/bin/python bench/bench_sendlogs.py                      # 1,000,000 rows, 100,000 suppressions
    .venv/bin/python bench/bench_sendlogs.py --rows 100000 --suppressions 10000

Uses the configured database (DATABASE_URL; the SQLite file under var/ otherwise), migrating it if
needed. In a throwaway tenant it creates N opted-out numbers (suppressions and their events, a day
before the sends), writes a CSV of generated send records and runs the import through the service
function (send_log_import_run, what the Celery task calls): read in chunks, numbers digested, stored
with duplicates left out, violations found in SQL per chunk. The CSV: ~2% of the rows to an opted-out
number after its opt-out (violations), ~3% to an opted-out number before it, 1% repeats of an earlier
row, 0.5% invalid numbers, the rest to numbers that never opted out; three services, a template each.
It prints rows per second, the total seconds, the counts, and the process's peak RSS before and after
the import. The tenant and its rows are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanzuan.settings")
if not os.environ.get("SECRET_KEY"):
    os.environ.setdefault("DEBUG", "1")  # a development key under var/, as `make run` does

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.files import File  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from lanzuan import phones  # noqa: E402
from tenants.db_scope import system_scope  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.services import tenant_create  # noqa: E402
from unsubscribe.models import SendLogEntry, SendViolation, Service, Suppression, SuppressionEvent  # noqa: E402
from unsubscribe.partner.models import SendLogImport  # noqa: E402
from unsubscribe.partner.sendlog_import import send_log_import_run  # noqa: E402

SERVICES = ("offers", "club", "news")
OPTED_OUT_AT = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def random_numbers(rng: random.Random, count: int, prefix: str) -> list[str]:
    span = 10 ** (11 - len(prefix))
    return [f"+86{prefix}{n:0{11 - len(prefix)}d}" for n in rng.sample(range(span), count)]


def create_opt_outs(tenant: Tenant, numbers: list[str]) -> float:
    hasher = phones.tenant_phone_hasher(tenant.pk)
    started = time.perf_counter()
    with transaction.atomic():
        for start in range(0, len(numbers), 5000):
            batch = [(hasher(n), f"{n[3:6]}****{n[-4:]}") for n in numbers[start : start + 5000]]
            Suppression.objects.bulk_create(
                [
                    Suppression(tenant=tenant, phone_hash=d, phone_masked=m, created_at=OPTED_OUT_AT)
                    for d, m in batch
                ]
            )
            SuppressionEvent.objects.bulk_create(
                [
                    SuppressionEvent(
                        tenant=tenant,
                        phone_hash=d,
                        phone_masked=m,
                        scope="*",
                        action=SuppressionEvent.Action.ADDED,
                        created_at=OPTED_OUT_AT,
                    )
                    for d, m in batch
                ]
            )
    return time.perf_counter() - started


def write_csv(path: Path, suppressed: list[str], rng: random.Random, rows: int) -> None:
    """Streamed: the benchmark holds no list of `rows` rows."""
    recent: list[str] = []
    free = (rng.randrange(10**8) + i * 7919 for i in range(rows))
    after = OPTED_OUT_AT + timedelta(days=1)
    with path.open("w", buffering=1 << 16) as handle:
        handle.write("phone,sent_at,service,template,message_id\n")
        for i in range(rows):
            roll = rng.random()
            service = SERVICES[i % 3]
            if roll < 0.01 and recent:
                handle.write(rng.choice(recent))
                continue
            if roll < 0.03:
                number, sent = rng.choice(suppressed), after + timedelta(seconds=i)
            elif roll < 0.06:
                number, sent = rng.choice(suppressed), OPTED_OUT_AT - timedelta(days=1, seconds=i)
            elif roll < 0.065:
                number, sent = "not-a-number", after
            else:
                number, sent = f"+86136{next(free) % 10**8:08d}", after + timedelta(seconds=i)
            line = f"{number},{sent.isoformat()},{service},{service}-t1,m{i}\n"
            handle.write(line)
            if len(recent) < 1000:
                recent.append(line)
            else:
                recent[rng.randrange(1000)] = line


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suppressions", type=int, default=100_000, help="opted-out numbers to create")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the imported CSV")
    args = parser.parse_args()

    settings.DEBUG = False  # no query log growing in memory
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    call_command("migrate", verbosity=0)

    rng = random.Random(17)
    tenant = tenant_create(slug=f"bench-{os.urandom(4).hex()}", name="Benchmark (throwaway)")
    try:
        tenant.send_log_retention_days = 180
        tenant.save()
        for code in SERVICES:
            Service.objects.create(tenant=tenant, name=code.title(), code=code)
        suppressed = random_numbers(rng, args.suppressions, "138")
        elapsed = create_opt_outs(tenant, suppressed)
        print(f"created {args.suppressions:,} opt-outs (suppressions and events) in {elapsed:.1f} s")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "sent.csv"
            write_csv(path, suppressed, rng, args.rows)
            with path.open("rb") as handle:
                job = SendLogImport(tenant=tenant, original_name=path.name, total_rows=args.rows)
                job.file.save("bench.csv", File(handle), save=False)
                job.save()
        rss_before = peak_rss_mb()
        started = time.perf_counter()
        done = send_log_import_run(job.pk)
        elapsed = time.perf_counter() - started
        assert done is not None and done.status == SendLogImport.Status.DONE, done and done.error
        print(
            f"send-log import, {done.rows_done:,} rows ({done.accepted:,} accepted, {done.duplicates:,} duplicates, "
            f"{done.invalid:,} invalid, {done.violations:,} violations): {elapsed:.1f} s "
            f"→ {done.rows_done / elapsed:,.0f} rows/s; peak RSS {rss_before:.0f} → {peak_rss_mb():.0f} MB"
        )
        stored = SendViolation.objects.for_tenant(tenant).count()
        assert stored == done.violations, (stored, done.violations)
    finally:
        SendLogImport.objects.for_tenant(tenant).delete()
        SendViolation.objects.for_tenant(tenant).delete()
        SendLogEntry.objects.for_tenant(tenant).delete()
        SuppressionEvent.objects.for_tenant(tenant).delete()
        Suppression.objects.for_tenant(tenant).delete()
        Service.objects.for_tenant(tenant).delete()
        tenant.delete()


if __name__ == "__main__":
    with system_scope(reason="a benchmark sets up and removes its own tenant"):  # as manage.py commands do
        main()
