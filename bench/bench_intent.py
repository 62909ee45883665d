"""Benchmark of the reply-intent classifier (not a test: it prints numbers).

    .venv/bin/python bench/bench_intent.py             # defaults: a few seconds
    .venv/bin/python bench/bench_intent.py --runs 7 --replies 20000

A realistic mix: every reply of the corpus's dev and test splits (codes, short and long Chinese and
English, other languages, pasted marketing texts), each with a fresh suffix so that no cache helps,
and with the tenant keywords of a typical tenant. One process, one core; the median of several runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from unsubscribe.inbound.intent import classify  # noqa: E402
from unsubscribe.inbound.intent.model import shipped  # noqa: E402

DATA = ROOT / "unsubscribe" / "intent" / "data"


def replies(n: int) -> list[tuple[str, str | None]]:
    rows = []
    for name in ("dev", "test"):
        with (DATA / f"{name}.jsonl").open(encoding="utf-8") as fh:
            rows += [json.loads(line) for line in fh]
    out = []
    for i in range(n):
        row = rows[i % len(rows)]
        text = row["text"] if i < len(rows) else f"{row['text']} {i}"  # a new string: no cache helps
        out.append((text, row["context"] or None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    started = time.perf_counter()
    shipped()
    print(f"model load: {(time.perf_counter() - started) * 1000:.0f} ms")
    batch = replies(args.replies)
    keywords = ("QX", "结束推送")
    classify("warm-up", extra_unsubscribe_keywords=keywords)
    rates, cpu_rates = [], []
    for _ in range(args.runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        for text, context in batch:
            classify(text, extra_unsubscribe_keywords=keywords, context=context)
        rates.append(len(batch) / (time.perf_counter() - started))
        cpu_rates.append(len(batch) / (time.process_time() - cpu_started))
    # Per core: replies per second of this process's CPU time (what one core does, even when other
    # processes share the machine); the wall-clock rate is printed next to it.
    print(
        f"classify: {statistics.median(cpu_rates):,.0f} replies/s per core (CPU time; wall clock "
        f"{statistics.median(rates):,.0f}/s), median of {args.runs} runs of {len(batch):,}, one process"
    )


if __name__ == "__main__":
    main()
