"""`make bench`: every benchmark, with its defaults (each runs in under 2 minutes)."""

from __future__ import annotations

import runpy
from pathlib import Path

if __name__ == "__main__":
    for script in ("bench_check.py", "bench_import.py", "bench_intent.py"):
        print(f"\n== {script}", flush=True)
        runpy.run_path(str(Path(__file__).with_name(script)), run_name="__main__")
