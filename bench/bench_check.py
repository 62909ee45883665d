"""Benchmark of the partner API's bulk paths (not a test: it prints numbers).

    .venv/bin/python bench/bench_check.py                 # defaults: under 2 minutes
    .venv/bin/python bench/bench_check.py --suppressions 2000000 --scrub 10000000

Uses the configured database (DATABASE_URL; the SQLite file under var/ otherwise),
migrating it if needed. In a throwaway tenant it creates N suppressions, then times
1. POST /api/v1/suppressions/check with 10,000 numbers through DRF's APIClient (the
   whole stack: authentication, throttling, JSON parsing and rendering), and
2. a scrub job of 1,000,000 generated numbers run through the service function
   (scrub_job_run, what the Celery task calls),
and prints numbers per second and memory: the process's peak RSS before and after
the scrub (the benchmark streams its list to disk, so the growth is the job's), and
with --tracemalloc the peak of Python allocations in a second, traced scrub run.
The tenant and its rows are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
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
from django.test.utils import setup_test_environment  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from lanzuan import phones  # noqa: E402
from tenants import db_scope  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.services import api_key_create, tenant_create  # noqa: E402
from unsubscribe.models import Suppression  # noqa: E402
from unsubscribe.partner.models import ScrubJob  # noqa: E402
from unsubscribe.partner.scrub import scrub_job_run  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def random_numbers(rng: random.Random, count: int, prefix: str) -> list[str]:
    """`count` distinct CN mobile numbers in E.164, all starting with +86<prefix>."""
    span = 10 ** (11 - len(prefix))
    return [f"+86{prefix}{n:0{11 - len(prefix)}d}" for n in rng.sample(range(span), count)]


def create_suppressions(tenant: Tenant, numbers: list[str]) -> float:
    hasher = phones.tenant_phone_hasher(tenant.pk)
    started = time.perf_counter()
    with transaction.atomic():
        for start in range(0, len(numbers), 5000):
            part = numbers[start : start + 5000]
            keys = phones.tenant_lookup_keys_from_platform(
                tenant.pk, phones.platform_lookup_keys(phones.e164_blocks_of(part))
            )
            Suppression.objects.bulk_create(
                [
                    Suppression(
                        tenant=tenant,
                        phone_hash=hasher(n),
                        lookup_key=bytes(key),  # digest version 2: what the bulk look-ups match
                        phone_masked=f"{n[3:6]}****{n[-4:]}",
                    )
                    for n, key in zip(part, keys, strict=True)
                ]
            )
    return time.perf_counter() - started


def bench_check(client: APIClient, suppressed: list[str], rng: random.Random, size: int, repeat: int) -> None:
    # 20% suppressed, 75% free, 4% written oddly (phonenumbers' slow path), 1% invalid
    numbers = rng.sample(suppressed, size // 5) + random_numbers(rng, size * 3 // 4, "137")
    numbers += [f"+86 137 {n[6:10]} {n[10:]}" for n in random_numbers(rng, size // 25, "137")]
    numbers += ["12345"] * (size - len(numbers))
    rng.shuffle(numbers)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.post("/api/v1/suppressions/check", {"phones": numbers}, format="json")
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.content[:500]
    body = response.json()
    assert body["suppressed"] == size // 5, body["suppressed"]
    best, median = min(times), statistics.median(times)
    print(
        f"POST /suppressions/check, {size:,} numbers ({body['suppressed']:,} suppressed, "
        f"{body['invalid']:,} invalid): best {best * 1000:.0f} ms, median {median * 1000:.0f} ms "
        f"over {repeat} calls → {size / median:,.0f} numbers/s"
    )


def write_list(path: Path, suppressed: list[str], rng: random.Random, size: int) -> None:
    """Streamed, so the benchmark itself holds no list of `size` rows: ~10% suppressed,
    ~5% repeats of a recent number, 1% invalid, the rest distinct free numbers."""
    recent: list[str] = []
    free = (rng.randrange(10**8) + i * 7919 for i in range(size))  # distinct modulo 10^8
    with path.open("w", buffering=1 << 16) as handle:
        handle.write("phone\n")
        for _ in range(size):
            roll = rng.random()
            if roll < 0.10:
                row = rng.choice(suppressed)
            elif roll < 0.15 and recent:
                row = rng.choice(recent)
            elif roll < 0.16:
                row = "not-a-number"
            else:
                row = f"+86136{next(free) % 10**8:08d}"
                if len(recent) < 1000:
                    recent.append(row)
                else:
                    recent[rng.randrange(1000)] = row
            handle.write(row + "\n")


def run_scrub(tenant: Tenant, path: Path) -> tuple[ScrubJob, float]:
    with path.open("rb") as handle:
        job = ScrubJob(tenant=tenant, original_name=path.name, total_rows=0)
        job.file.save("bench.csv", File(handle), save=False)
        job.save()
    started = time.perf_counter()
    done = scrub_job_run(job.pk, inline=True)  # every chunk in this process
    elapsed = time.perf_counter() - started
    assert done is not None and done.status == ScrubJob.Status.DONE, done and done.error
    return done, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suppressions", type=int, default=200_000, help="suppressions to create")
    parser.add_argument("--check", type=int, default=10_000, help="numbers per check call (≤ 10,000)")
    parser.add_argument("--repeat", type=int, default=5, help="check calls to time")
    parser.add_argument("--scrub", type=int, default=1_000_000, help="rows of the scrubbed list")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="run the scrub again under tracemalloc (slower: ~8x)"
    )
    args = parser.parse_args()
    # System work, as manage.py does: the throwaway tenant, its rows and its audit record.
    with db_scope.system_scope(reason="benchmark: a throwaway tenant and its rows"):
        run(args)


def run(args: argparse.Namespace) -> None:
    settings.DEBUG = False  # no query log growing in memory
    settings.LANZUAN_API_RATES = {"partner": "100000/min", "partner_bulk": "100000/min"}
    setup_test_environment()  # lets APIClient's "testserver" host in
    print(
        f"database: {connection.vendor} {connection.settings_dict['NAME']}; cache: {settings.CACHES['default']['BACKEND']}"
    )
    call_command("migrate", verbosity=0)

    rng = random.Random(6)
    tenant = tenant_create(slug=f"bench-{rng.getrandbits(32):08x}", name="Benchmark (throwaway)")
    _key_row, key = api_key_create(tenant=tenant, name="bench")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    try:
        suppressed = random_numbers(rng, args.suppressions, "138")
        elapsed = create_suppressions(tenant, suppressed)
        print(f"created {args.suppressions:,} suppressions in {elapsed:.1f} s")

        bench_check(client, suppressed, rng, args.check, args.repeat)

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "list.csv"
            write_list(path, suppressed, rng, args.scrub)
            rss_before = peak_rss_mb()
            job, elapsed = run_scrub(tenant, path)
            print(
                f"scrub job, {job.total_rows:,} rows ({job.suppressed:,} suppressed, {job.duplicate:,} repeats, "
                f"{job.invalid:,} invalid, {job.sendable:,} sendable): {elapsed:.1f} s "
                f"→ {job.total_rows / elapsed:,.0f} rows/s; peak RSS {rss_before:.0f} → {peak_rss_mb():.0f} MB"
            )
            if args.tracemalloc:
                tracemalloc.start()
                job, elapsed = run_scrub(tenant, path)
                _current, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                print(
                    f"scrub job again under tracemalloc: peak Python allocations {peak / 2**20:.1f} MB "
                    f"({elapsed:.1f} s with tracing)"
                )
    finally:
        for job in ScrubJob.objects.for_tenant(tenant):
            job.delete()  # and its files
        Suppression.objects.for_tenant(tenant).delete()
        tenant.api_keys.all().delete()
        tenant.delete()


if __name__ == "__main__":
    main()
