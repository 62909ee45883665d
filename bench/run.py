"""`make bench`: every benchmark with its defaults, then bench/RESULTS.md's rows of issue 13
(bench/results.py) from the hot paths' measurements. The hot paths need PostgreSQL and Redis
(DATABASE_URL, CACHE_URL, CELERY_BROKER_URL); without them they are skipped and say so. The replica's
row (bench_replica.py) starts its own PostgreSQL primary and replica from PostgreSQL's binaries."""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent

if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("\n== bench_hotpaths.py", flush=True)
        argv, sys.argv = sys.argv, [str(BENCH / "bench_hotpaths.py")]
        runpy.run_path(str(BENCH / "bench_hotpaths.py"), run_name="__main__")
        sys.argv = argv
        import results

        results.write(json.loads((BENCH / "hotpaths.json").read_text()))
        print(f"wrote {results.RESULTS_MD}", flush=True)
    else:
        print(
            "\n== bench_hotpaths.py skipped: set DATABASE_URL (PostgreSQL) and CACHE_URL/CELERY_BROKER_URL (Redis)"
        )
    # Needs PostgreSQL's binaries, not DATABASE_URL: it starts its own primary and replica.
    print("\n== bench_replica.py", flush=True)
    argv, sys.argv = sys.argv, [str(BENCH / "bench_replica.py")]
    runpy.run_path(str(BENCH / "bench_replica.py"), run_name="__main__")
    sys.argv = argv
    if (BENCH / "replica.json").exists():
        import results

        results.write_replica(json.loads((BENCH / "replica.json").read_text()))
    for script in ("bench_check.py", "bench_import.py", "bench_intent.py"):
        print(f"\n== {script}", flush=True)
        runpy.run_path(str(BENCH / script), run_name="__main__")
