"""Issue 14's benchmark: bulk checks and scrubs at 10^7, side by side with PostgreSQL's own join
and the in-memory floor, in one run (not a test: it prints numbers and writes bench/bulk.json).

    .venv/bin/python bench/bench_bulk.py                      # 1M and 10M suppressions, 1M and 10M rows
    .venv/bin/python bench/bench_bulk.py --sizes 1000000 --rows 1000000   # a shorter run

Needs PostgreSQL (DATABASE_URL). For each suppression count (cumulative, in one throwaway tenant):
suppressions are loaded fast (COPY into a temporary table, then one INSERT … SELECT: row-level security
refuses COPY into the table itself) with the project's own digests (phones: version 1 and the lookup
key), the tenant's suppression index is built, then
1. POST /api/v1/suppressions/check with 10,000 numbers through DRF's APIClient (the whole stack),
   median of --repeat calls in each of --check-processes fresh processes (as web workers are: not
   the process that just loaded the rows and built the index), against the old path's SQL alone
   (the 10,000 digests with = ANY) and the floor (numpy searchsorted of the 10,000 keys in the sorted array);
2. scrub jobs of each --rows size, each in a fresh process (`scrub_job_run`, what the Celery task
   calls), with its peak RSS and peak anonymous memory (RssAnon sampled every 20 ms: the heap, not the
   index's page cache), against PostgreSQL's join of the list's digests (COPY-loaded temporary table,
   joined to the tenant's rows) and the floor (searchsorted of the sorted probes).
The tenant and its rows are removed at the end (--keep keeps them for another run).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanzuan.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.files import File  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from lanzuan import phones  # noqa: E402
from tenants import db_scope  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.services import api_key_create, tenant_create  # noqa: E402
from unsubscribe.models import Suppression  # noqa: E402
from unsubscribe.partner.models import ScrubJob  # noqa: E402
from unsubscribe.partner.scrub import scrub_job_run  # noqa: E402
from unsubscribe.suppressions import index  # noqa: E402

SUPPRESSED_PREFIX = 138_0000_0000  # suppressed numbers: +86138xxxxxxxx


def numbers_of(nationals: np.ndarray) -> list[str]:
    return [f"+86{n}" for n in nationals.tolist()]


def load_suppressions(tenant: Tenant, nationals: np.ndarray) -> float:
    """COPY the rows (digest version 1, lookup key, masked number) into a temporary table, then
    one INSERT … SELECT into the tenant's rows."""
    started = time.perf_counter()
    hasher = phones.tenant_phone_hasher(tenant.pk)
    values = (86 * 10**11 + nationals).astype(np.int64)
    with db_scope.tenants_scope([tenant.pk]), connection.cursor() as cursor:
        connection.sync_db_scope()  # type: ignore[attr-defined]
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS bench_load (phone_hash text, lookup_key bytea, phone_masked text)"
        )
        cursor.execute("TRUNCATE bench_load")
        for start in range(0, len(values), 500_000):
            part = values[start : start + 500_000]
            keys = phones.tenant_lookup_keys_from_platform(
                tenant.pk, phones.platform_lookup_keys(phones.e164_blocks(np.full(len(part), 13), part))
            )
            hexes = keys.tobytes().hex()  # not a numpy bytes view: that drops trailing zero bytes
            buffer = io.StringIO()
            for i, value in enumerate(part.tolist()):
                e164 = f"+{value}"
                buffer.write(
                    f"{hasher(e164)}\t\\\\x{hexes[32 * i : 32 * i + 32]}\t{e164[3:6]}****{e164[-4:]}\n"
                )
            with cursor.cursor.copy("COPY bench_load FROM STDIN") as copy:
                copy.write(buffer.getvalue())
        cursor.execute(
            "INSERT INTO unsubscribe_suppression (tenant_id, phone_hash, lookup_key, phone_masked, scope, created_at) "
            # Each row its own time (the last two years), as a real tenant's: the answers' `since` differ.
            "SELECT %s, phone_hash, lookup_key, phone_masked, '*', now() - random() * interval '730 days' "
            "FROM bench_load",
            [tenant.pk],
        )
        cursor.execute("TRUNCATE bench_load")
        cursor.execute("ANALYZE unsubscribe_suppression")
    return time.perf_counter() - started


def sample(rng: np.random.Generator, count: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """`count` distinct national numbers 138xxxxxxxx not in `exclude`."""
    found = np.zeros(0, dtype=np.int64)
    while len(found) < count:
        more = SUPPRESSED_PREFIX + rng.integers(0, 10**8, int((count - len(found)) * 1.3) + 10)
        found = np.unique(np.concatenate([found, more]))
        if exclude is not None:
            found = found[~np.isin(found, exclude)]
    return rng.permutation(found)[:count]


def run_check_child(tenant_id: int, body_path: Path, repeat: int) -> None:
    """In a fresh process: one call to open the index's files, then `repeat` timed calls of
    POST /api/v1/suppressions/check through DRF's APIClient; print the times as JSON."""
    settings.DEBUG = False
    settings.LANZUAN_API_RATES = {"partner": "100000/min", "partner_bulk": "100000/min"}
    setup_test_environment()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {os.environ['BENCH_API_KEY']}")
    body_bytes = body_path.read_bytes()
    times = []
    for _ in range(repeat + 1):  # the first call opens the index's files
        started = time.perf_counter()
        response = client.generic(
            "POST", "/api/v1/suppressions/check", body_bytes, content_type="application/json"
        )
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.content[:300]
    body = json.loads(response.content)
    print(json.dumps({"tenant": tenant_id, "times": times[1:], "suppressed": body["suppressed"]}))


def bench_check(
    api_key: str, tenant: Tenant, suppressed: np.ndarray, free: np.ndarray, *, repeat: int, processes: int
) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    size = 10_000
    picked = np.concatenate(
        [rng.choice(suppressed, size // 5, replace=False), free[: size - size // 5 - 100]]
    )
    numbers = numbers_of(picked) + ["12345"] * 100
    random.Random(7).shuffle(numbers)
    # The body as a client sends it, encoded once: encoding it is the client's work, not the server's.
    body_bytes = json.dumps({"phones": numbers}).encode()
    # In fresh processes, as web workers are (not the one that loaded millions of rows and built
    # the index). Several: on this 2-core machine one process's checks run up to 1.6x slower than
    # another's for its whole life (seen 4.5 to 8 ms), so one process's median is a draw.
    per_process = []
    with tempfile.TemporaryDirectory() as tmp:
        body_path = Path(tmp) / "body.json"
        body_path.write_bytes(body_bytes)
        for _ in range(processes):
            out = subprocess.run(  # noqa: S603
                [
                    sys.executable,
                    __file__,
                    "--check-child",
                    str(tenant.pk),
                    "--body",
                    str(body_path),
                    "--repeat",
                    str(repeat),
                ],
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "BENCH_API_KEY": api_key},
            )
            found = json.loads(out.stdout.strip().splitlines()[-1])
            assert found["suppressed"] == size // 5, found["suppressed"]
            per_process.append(found["times"])
    times = [t for found in per_process for t in found]
    # PostgreSQL alone: the old path's one query of the 10,000 version-1 digests
    hasher = phones.tenant_phone_hasher(tenant.pk)
    digests = [hasher(n) for n in numbers if n.startswith("+")]
    sql_times = []
    with db_scope.tenants_scope([tenant.pk]), connection.cursor() as cursor:
        for _ in range(repeat):
            started = time.perf_counter()
            cursor.execute(
                "SELECT phone_hash, scope, created_at FROM unsubscribe_suppression WHERE tenant_id = %s AND phone_hash = ANY(%s)",
                [tenant.pk, digests],
            )
            cursor.fetchall()
            sql_times.append(time.perf_counter() - started)
    # the floor: searchsorted of the 10,000 keys in the index's sorted array (already mapped)
    gen = index._current(tenant.pk)  # noqa: SLF001
    assert gen is not None
    parsed = phones.parse_batch(numbers)
    keys = phones.tenant_lookup_keys_from_platform(tenant.pk, phones.platform_lookup_keys(parsed.blocks))
    hi, _lo = index.key_halves(keys)
    floor_times = []
    for _ in range(repeat):
        started = time.perf_counter()
        np.searchsorted(gen.hi, np.sort(hi))
        floor_times.append(time.perf_counter() - started)
    result = {
        "numbers": size,
        "median_s": statistics.median(times),
        "best_s": min(times),
        "processes": processes,
        "process_medians_s": [statistics.median(found) for found in per_process],
        "numbers_per_s": size / statistics.median(times),
        "sql_median_s": statistics.median(sql_times),
        "floor_median_s": statistics.median(floor_times),
    }
    print(
        f"  check of {size:,}: median {result['median_s'] * 1000:.1f} ms of {len(times)} in {processes} processes "
        f"(each: {', '.join(f'{m * 1000:.1f}' for m in result['process_medians_s'])}; best {result['best_s'] * 1000:.1f}) "
        f"→ {result['numbers_per_s']:,.0f} numbers/s; PostgreSQL's query alone {result['sql_median_s'] * 1000:.1f} ms; "
        f"floor {result['floor_median_s'] * 1000:.2f} ms",
        flush=True,
    )
    return result


def write_list(
    path: Path, suppressed: np.ndarray, free: np.ndarray, rows: int, rng: np.random.Generator
) -> None:
    """~10% suppressed, ~5% repeats, 1% invalid, the rest free numbers; written in blocks."""
    with path.open("w") as handle:
        handle.write("phone\n")
        for start in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - start)
            kind = rng.random(n)
            nationals = free[(start + np.arange(n)) % len(free)]
            hits = kind < 0.10
            nationals[hits] = rng.choice(suppressed, int(hits.sum()))
            repeats = (kind >= 0.10) & (kind < 0.15)
            nationals[repeats] = nationals[rng.integers(0, max(1, n // 100), int(repeats.sum()))]
            lines = [f"+86{v}" for v in nationals.tolist()]
            for i in np.flatnonzero(kind >= 0.99).tolist():
                lines[i] = "not-a-number"
            handle.write("\n".join(lines) + "\n")


def run_scrub_child(job_id: int, traced: bool) -> None:
    """In a fresh process: run the job, print time and memory as JSON. `traced`: under
    tracemalloc (slower), for the exact peak of what the scrub allocates (numpy's arrays
    included), free of what the allocator keeps and of the sampling of RssAnon."""
    if traced:
        tracemalloc.start()

    def anon_kb() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
        return 0

    peak_anon = [anon_kb()]
    anon_before = peak_anon[0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak_anon[0] = max(peak_anon[0], anon_kb())
            time.sleep(0.002)

    with db_scope.system_scope(reason="benchmark: runs a scrub job by its id"):
        base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.perf_counter()
        job = scrub_job_run(job_id, inline=True)  # every chunk in this process
        elapsed = time.perf_counter() - started
        stop.set()
        watcher.join()
    assert job is not None and job.status == ScrubJob.Status.DONE, job and job.error
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "rows": job.total_rows,
                "suppressed": job.suppressed,
                "duplicate": job.duplicate,
                "invalid": job.invalid,
                "sendable": job.sendable,
                "rss_before_mb": base_rss / 1024,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "peak_anon_mb": peak_anon[0] / 1024,
                "anon_before_mb": anon_before / 1024,
                "traced_peak_mb": tracemalloc.get_traced_memory()[1] / 2**20 if traced else None,
            }
        )
    )


def scrub_in_child(tenant: Tenant, path: Path, *, traced: bool = False) -> dict[str, Any]:
    """A job of the list at `path`, run in a fresh process; what the child printed."""
    with path.open("rb") as handle:
        job = ScrubJob(tenant=tenant, original_name=path.name, total_rows=0)
        job.file.save("bench.csv", File(handle), save=False)
        job.save()
    out = subprocess.run(  # noqa: S603
        [sys.executable, __file__, "--scrub-child", str(job.pk), *(["--traced"] if traced else [])],
        check=True,
        capture_output=True,
        text=True,
    )
    job.refresh_from_db()  # the run stored its result: deleting the row deletes the file
    job.delete()
    found: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def bench_scrub(tenant: Tenant, path: Path, suppressed_count: int) -> dict[str, Any]:
    result = scrub_in_child(tenant, path)
    # Again, traced: the exact heap peak (the first run gives the time and RssAnon).
    result["traced_peak_mb"] = scrub_in_child(tenant, path, traced=True)["traced_peak_mb"]
    # PostgreSQL's own join: the list's distinct version-1 digests COPY-loaded into a temporary table
    hasher = phones.tenant_phone_hasher(tenant.pk)
    with path.open() as handle:
        next(handle)
        digests = {hasher(line.strip()) for line in handle if line.startswith("+")}
    payload = "\n".join(digests) + "\n"
    with db_scope.tenants_scope([tenant.pk]), connection.cursor() as cursor:
        connection.sync_db_scope()  # type: ignore[attr-defined]
        started = time.perf_counter()
        cursor.execute("CREATE TEMP TABLE bench_list (phone_hash text)")
        with cursor.cursor.copy("COPY bench_list FROM STDIN") as copy:
            copy.write(payload)
        cursor.execute("ANALYZE bench_list")
        cursor.execute(
            "SELECT count(*) FROM bench_list l JOIN unsubscribe_suppression s "
            "ON s.tenant_id = %s AND s.phone_hash = l.phone_hash",
            [tenant.pk],
        )
        joined = cursor.fetchone()[0]
        result["postgres_join_s"] = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_list")
    result["postgres_join_matches"] = joined
    # the floor: searchsorted of the sorted probes against the sorted index array
    gen = index._current(tenant.pk)  # noqa: SLF001
    assert gen is not None
    probes = np.random.default_rng(3).integers(0, 2**63, result["rows"], dtype=np.int64).astype(np.uint64)
    hi = np.asarray(gen.hi)
    started = time.perf_counter()
    np.searchsorted(hi, np.sort(probes))
    result["floor_s"] = time.perf_counter() - started
    result["suppressions"] = suppressed_count
    print(
        f"  scrub of {result['rows']:,} rows: {result['seconds']:.2f} s ({result['rows'] / result['seconds']:,.0f} rows/s; "
        f"{result['suppressed']:,} suppressed, {result['duplicate']:,} repeats, {result['invalid']:,} invalid); "
        f"peak RSS {result['peak_rss_mb']:.0f} MB (start {result['rss_before_mb']:.0f}), anonymous memory "
        f"{result['anon_before_mb']:.0f} → peak {result['peak_anon_mb']:.0f} MB, traced heap peak {result['traced_peak_mb']:.1f} MB; PostgreSQL's join {result['postgres_join_s']:.2f} s; floor {result['floor_s']:.3f} s",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000000,10000000", help="suppression counts, cumulative")
    parser.add_argument("--rows", default="1000000,10000000", help="scrub list sizes")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the tenant and its rows")
    parser.add_argument(
        "--check-processes", type=int, default=3, help="fresh processes for the check, --repeat calls each"
    )
    parser.add_argument("--scrub-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--check-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--body", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scrub_child:
        run_scrub_child(args.scrub_child, args.traced)
        return
    if args.check_child:
        run_check_child(args.check_child, args.body, args.repeat)
        return
    with db_scope.system_scope(reason="benchmark: a throwaway tenant and its rows"):
        run(args)


def run(args: argparse.Namespace) -> None:

    settings.DEBUG = False
    settings.LANZUAN_API_RATES = {"partner": "100000/min", "partner_bulk": "100000/min"}
    setup_test_environment()
    call_command("migrate", verbosity=0)
    print(f"database: {connection.settings_dict['NAME']}; load average {os.getloadavg()}", flush=True)
    rng = np.random.default_rng(6)
    tenant = tenant_create(slug=f"bench-bulk-{random.getrandbits(32):08x}", name="Bulk benchmark (throwaway)")
    _key, key = api_key_create(tenant=tenant, name="bench")
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = [int(r) for r in args.rows.split(",") if r]  # "": the checks only
    results: dict[str, Any] = {"load_average": os.getloadavg(), "runs": [], "repeat": args.repeat}
    suppressed = np.zeros(0, dtype=np.int64)
    try:
        for size in sizes:
            more = sample(rng, size - len(suppressed), exclude=suppressed)
            elapsed = load_suppressions(tenant, more)
            suppressed = np.concatenate([suppressed, more])
            started = time.perf_counter()
            with db_scope.tenants_scope([tenant.pk]):
                index.index_refresh(tenant.pk, full=True)
            built = time.perf_counter() - started
            # The index files just written go to disk now, not during the measurements (a server
            # checks against an index built minutes ago, with no write-back pending).
            os.sync()
            print(
                f"{size:,} suppressions: loaded {len(more):,} in {elapsed:.1f} s; index built in {built:.1f} s",
                flush=True,
            )
            free = sample(rng, 1_000_000, exclude=suppressed)
            run: dict[str, Any] = {"suppressions": size, "index_build_s": built}
            run["check"] = bench_check(
                key, tenant, suppressed, free, repeat=args.repeat, processes=args.check_processes
            )
            run["scrubs"] = []
            with tempfile.TemporaryDirectory() as tmp:
                for count in rows:
                    path = Path(tmp) / f"list-{count}.csv"
                    write_list(path, suppressed, free, count, rng)
                    run["scrubs"].append(bench_scrub(tenant, path, size))
                    path.unlink()
            results["runs"].append(run)
            (BENCH / "bulk.json").write_text(json.dumps(results, indent=1))
    finally:
        if not args.keep:
            with db_scope.tenants_scope([tenant.pk]):
                Suppression.objects.for_tenant(tenant).delete()
                tenant.api_keys.all().delete()
                index.index_drop(tenant.pk)
            tenant.delete()
    print(f"wrote {BENCH / 'bulk.json'}")


if __name__ == "__main__":
    main()
