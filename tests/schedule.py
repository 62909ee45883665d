"""The order tests are handed to xdist workers in, so that `make test` ends when the work does.

`--dist worksteal` first gives each worker one contiguous share of the collected tests, then an
idle worker takes the back half of the busiest worker's queue. Tests that take seconds (real
worker processes, gunicorn, Chromium, schemathesis) left where collection puts them pile up in a
share or come last, and the run waits for one worker while the others are done. Here each share
starts with its part of the slow tests, so they run first and in parallel, and the quick tests fill
in behind them and are what gets stolen. A module whose fixtures start a browser stays together
(one launch). Without xdist the order is untouched.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Sequence

# Marks of tests that take seconds of wall time each (pyproject.toml registers them).
SLOW_MARKS = ("integration", "browser", "slow")


def _is_slow(item: pytest.Item) -> bool:
    return any(item.get_closest_marker(mark) for mark in SLOW_MARKS)


def _unit_key(item: pytest.Item) -> str:
    """Tests that must stay together: a browser module shares one Chromium."""
    if item.get_closest_marker("browser"):
        return item.nodeid.split("::", 1)[0]
    return item.nodeid


def _share_sizes(total: int, workers: int) -> list[int]:
    """How many tests xdist's work-stealing scheduler first sends each worker (check_schedule)."""
    sizes, left = [], total
    for i in range(workers):
        size = left // (workers - i)
        sizes.append(size)
        left -= size
    return sizes


def interleave(items: Sequence[pytest.Item], workers: int) -> list[pytest.Item]:
    units: dict[str, list[pytest.Item]] = {}
    quick: list[pytest.Item] = []
    for item in items:
        if _is_slow(item):
            units.setdefault(_unit_key(item), []).append(item)
        else:
            quick.append(item)
    # Deal the slow units, longest first (a browser module is several tests), to the share that has
    # the fewest slow tests so far; the quick tests make up each share to its size.
    slow: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for unit in sorted(units.values(), key=len, reverse=True):
        min(slow, key=len).extend(unit)
    ordered: list[pytest.Item] = []
    for share, size in zip(slow, _share_sizes(len(items), workers), strict=True):
        ordered.extend(share)
        take = max(size - len(share), 0)
        ordered.extend(quick[:take])
        del quick[:take]
    ordered.extend(quick)
    return ordered


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:  # not an xdist worker: keep collection order
        return
    items[:] = interleave(items, int(workerinput["workercount"]))


@pytest.hookimpl(tryfirst=True)  # before xdist's own (one per core)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: half again as many workers as cores (3 on a 2-core machine). Many of the slow tests wait on
    another process (a Celery worker, gunicorn, Chromium) rather than compute, so a core whose
    worker waits takes another worker's tests. PYTEST_XDIST_AUTO_NUM_WORKERS overrides it."""
    if workers := os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(workers)
    return max(2, (os.cpu_count() or 1) * 3 // 2)
