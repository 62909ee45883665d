"""Issue 13's replica row: checks read from a streaming replica never miss a committed suppression.

    .venv/bin/python bench/bench_replica.py                  # defaults: 300 rounds, 300 timed checks
    .venv/bin/python bench/bench_replica.py --rounds 100 --timed 100

Starts a PostgreSQL primary and a real streaming replica of it (`pg_basebackup -R`) on this machine
as tests/test_replica.py does (tests/pg_replica.py; PostgreSQL 15 binaries, root runs them as the
`postgres` OS user), migrates the schema onto the primary as an ordinary role, and runs two
processes of the application (tests/replica_driver.py): one with `DATABASE_REPLICA_URL` (the
checker), one without (the writer, and the primary-only baseline).

1. Rounds: the writer commits a suppression of a new number on the primary, then the checker checks
   that number (it must be suppressed: a miss is counted), an old suppressed one and a free one.
   Replay on the replica is paused and resumed every `--switch` rounds, so about half the rounds
   run against a lagging replica. Reported: checks served by the replica, fallbacks by reason, misses.
2. Latency of one check through the whole Django stack (test client, in-process): the checker with a
   caught-up replica, the writer on the primary alone, and the checker while replay is paused (the
   fallback: the wait, then the primary), alternated `--alternations` times; medians and p90.

Writes bench/replica.json (bench/results.py turns it into bench/RESULTS.md's replica row).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from tests import pg_replica  # noqa: E402

RESULTS_JSON = BENCH / "replica.json"


def _phone(n: int) -> str:
    return f"+86139{n:08d}"


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _served(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def _rounds(pair: pg_replica.Pair, checker: Any, writer: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Commits on the primary and checks of them, replay paused every other `--switch` rounds."""
    old, free = _phone(0), _phone(1)
    before = checker("counts")
    misses = wrong = paused_rounds = 0
    with pair.superuser(pair.replica_port) as replica:
        paused = False
        for n in range(args.rounds):
            if n % args.switch == 0 and n:
                paused = not paused
                replica.execute(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()")
            paused_rounds += paused
            fresh = _phone(1000 + n)
            writer("suppress", phone=fresh)  # committed before the check below begins
            misses += not checker("check", phone=fresh)["suppressed"]
            wrong += not checker("check", phone=old)["suppressed"]
            wrong += checker("check", phone=free)["suppressed"]
        replica.execute("SELECT pg_wal_replay_resume()")
    served = _served(checker("counts"), before)
    print(
        f"rounds: {args.rounds} ({paused_rounds} with replay paused), {3 * args.rounds} checks: "
        f"{served}; misses {misses}, other wrong answers {wrong}",
        flush=True,
    )
    return {
        "rounds": args.rounds,
        "paused_rounds": paused_rounds,
        "checks": 3 * args.rounds,
        "served": served,
        "misses": misses,
        "wrong": wrong,
    }


def _latency(pair: pg_replica.Pair, checker: Any, writer: Any, args: argparse.Namespace) -> dict[str, Any]:
    """One check's wall time: replica caught up, primary alone, replica paused (the fallback)."""
    old = _phone(0)
    samples: dict[str, list[float]] = {"replica": [], "primary": [], "fallback": []}
    served: dict[str, dict[str, int]] = {"replica": {}, "fallback": {}}
    for _ in range(args.alternations):
        pair.wait_replayed()
        before = checker("counts")
        samples["replica"] += checker("time", phone=old, n=args.timed)["ms"]
        samples["primary"] += writer("time", phone=old, n=args.timed)["ms"]
        middle = checker("counts")
        with pair.superuser(pair.replica_port) as replica:
            replica.execute("SELECT pg_wal_replay_pause()")
            writer("suppress", phone=_phone(900_000 + len(samples["fallback"])))
            samples["fallback"] += checker("time", phone=old, n=max(args.timed // 5, 10))["ms"]
            replica.execute("SELECT pg_wal_replay_resume()")
        after = checker("counts")
        for name, (start, end) in {"replica": (before, middle), "fallback": (middle, after)}.items():
            for reason, count in _served(end, start).items():
                served[name][reason] = served[name].get(reason, 0) + count
    latency = {
        name: {"median_ms": statistics.median(ms), "p90_ms": _quantile(ms, 0.9), "n": len(ms)}
        | ({"served": served[name]} if name in served else {})
        for name, ms in samples.items()
    }
    for name, row in latency.items():
        print(
            f"one check, {name}: median {row['median_ms']:.2f} ms, p90 {row['p90_ms']:.2f} ms "
            f"(n={row['n']}; served {row.get('served', 'by the primary alone')})",
            flush=True,
        )
    return latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--switch", type=int, default=25, help="rounds between pausing and resuming replay")
    parser.add_argument("--timed", type=int, default=300, help="checks per latency sample")
    parser.add_argument("--alternations", type=int, default=3)
    args = parser.parse_args()
    why_not = pg_replica.available()
    if why_not:
        print(f"bench_replica.py skipped: {why_not}")
        return

    started = time.monotonic()
    logs = Path(tempfile.mkdtemp(prefix="lanzuan-bench-replica-"))
    with pg_replica.replica_pair() as pair:
        pg_replica.migrate(pair, pg_replica.app_env(pair))
        print(
            f"primary :{pair.primary_port}, replica :{pair.replica_port}, migrated in "
            f"{time.monotonic() - started:.0f} s",
            flush=True,
        )
        checker = pg_replica.Driver(pg_replica.app_env(pair), logs / "checker.log")
        writer = pg_replica.Driver(pg_replica.app_env(pair, replica=False), logs / "writer.log")
        try:
            key = checker("setup")["key"]
            writer("login", key=key)
            writer("suppress", phone=_phone(0))
            pair.wait_replayed()
            result = _rounds(pair, checker, writer, args)
            result["latency"] = _latency(pair, checker, writer, args)
        finally:
            checker.close()
            writer.close()
    shutil.rmtree(logs)  # kept after a failure: the processes' logs
    result["wait_ms"] = int(os.environ.get("DATABASE_REPLICA_WAIT_MS") or "10")
    result["load_average"] = os.getloadavg()[0]
    result["seconds"] = time.monotonic() - started
    RESULTS_JSON.write_text(json.dumps(result, indent=2))
    print(f"load average {result['load_average']:.1f}; wrote {RESULTS_JSON}", flush=True)


if __name__ == "__main__":
    main()
