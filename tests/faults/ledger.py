"""The fault suite's ledger (a pytest plugin, loaded with `-p tests.faults.ledger`).

Fault tests count what they did and what they saw in one ledger per process (the
`fault_ledger` fixture, tests/faults/conftest.py): faults injected, requests filed,
requests lost, duplicated effects and raw numbers found. The terminal summary prints one
line, once a test has used the ledger:

    faults suite: 12 faults injected, 40 requests filed, 0 lost, 0 duplicated, 0 raw numbers found

Under xdist each worker hands its counts to the controller in `workeroutput` (xdist's
channel for that), and the controller adds them up as the workers finish.

A plugin rather than the suite's conftest.py: the controller of an xdist run never collects,
so it never loads tests/faults/conftest.py, and its terminal summary is the one shown.
It imports nothing of Django's: it loads before the settings do.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

_OUTPUT_KEY = "lanzuan_faults_ledger"
_FIELDS = ("faults_injected", "requests_filed", "lost", "duplicated", "raw_numbers_found")


@dataclass
class Ledger:
    faults_injected: int = 0
    requests_filed: int = 0
    lost: int = 0
    duplicated: int = 0
    raw_numbers_found: int = 0
    used: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(
        self,
        *,
        faults: int = 0,
        filed: int = 0,
        lost: int = 0,
        duplicated: int = 0,
        raw_numbers: int = 0,
    ) -> None:
        """Add to the counts (thread-safe: a burst's threads may count as they go)."""
        if min(faults, filed, lost, duplicated, raw_numbers) < 0:
            raise ValueError("counts only grow")
        with self._lock:
            self.used = True
            self.faults_injected += faults
            self.requests_filed += filed
            self.lost += lost
            self.duplicated += duplicated
            self.raw_numbers_found += raw_numbers

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {name: int(getattr(self, name)) for name in _FIELDS}

    def add(self, counts: dict[str, int]) -> None:
        self.count(
            faults=counts["faults_injected"],
            filed=counts["requests_filed"],
            lost=counts["lost"],
            duplicated=counts["duplicated"],
            raw_numbers=counts["raw_numbers_found"],
        )

    def line(self) -> str:
        return (
            f"faults suite: {self.faults_injected} faults injected, {self.requests_filed} requests filed,"
            f" {self.lost} lost, {self.duplicated} duplicated, {self.raw_numbers_found} raw numbers found"
        )


LEDGER = Ledger()  # this process's: a worker's own, or the controller's total


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker: hand the counts over (runs before xdist sends `workeroutput`)."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None and LEDGER.used:
        workeroutput[_OUTPUT_KEY] = LEDGER.counts()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On the xdist controller, as each worker finishes: add its counts."""
    counts = getattr(node, "workeroutput", {}).get(_OUTPUT_KEY)
    if counts:
        LEDGER.add(counts)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not LEDGER.used:
        return
    terminalreporter.write_sep("-", "fault ledger")
    terminalreporter.write_line(LEDGER.line())
