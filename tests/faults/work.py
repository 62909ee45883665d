"""Running what the web tier left for the workers, in the test's own process.

`run_queued_tasks()` takes every task message waiting in the broker (the configured one,
under this session's key prefix) and runs it here, eagerly, as a worker would have;
`run_sweeps()` runs every periodic task of CELERY_BEAT_SCHEDULE once, as beat would.
`work_until_idle(done)` alternates the two until `done()` holds, moving the clock on
between rounds so that work handed to a worker and lost (dispatched long ago) is due again.
Both need `task_always_eager` on (the `eager_celery` fixture), so that what a task
dispatches runs at once too.
"""

from __future__ import annotations

import contextvars
import importlib
import threading
from collections.abc import Callable
from datetime import timedelta
from queue import Empty
from typing import Any

import time_machine
from django.conf import settings
from django.utils import timezone

from lanzuan.celery import app


def run_queued_tasks(queue_names: tuple[str, ...] = ("pipeline", "webhooks")) -> int:
    """Run every queued task message here (opt-out work first, as a worker takes it),
    acknowledging each once it ran. Returns how many."""
    return sum(_run_queue(name) for name in queue_names)


def _run_queue(queue_name: str) -> int:
    if not app.conf.task_always_eager:
        raise RuntimeError("run queued tasks with task_always_eager on (the eager_celery fixture)")
    ran = 0
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue(queue_name)
        try:
            while True:
                try:
                    message = queue.get(block=False)
                except Empty:
                    break
                args, kwargs, _embed = message.decode()
                _task(message.headers["task"]).apply(args=args, kwargs=kwargs)
                message.ack()
                ran += 1
        finally:
            queue.close()
    return ran


def _task(name: str) -> Any:
    if name not in app.tasks:  # tasks modules load when a worker starts; import this one now
        importlib.import_module(name.rpartition(".")[0])
    return app.tasks[name]


def run_sweeps() -> None:
    """Every periodic task once, eagerly (the sweeps, purges and expiries)."""
    schedule: dict[str, dict[str, Any]] = settings.CELERY_BEAT_SCHEDULE
    for entry in schedule.values():
        _task(str(entry["task"])).apply(args=entry.get("args", ()), kwargs=entry.get("kwargs", {}))


def work_until_idle(
    done: Callable[[], bool], *, rounds: int = 6, step: timedelta = timedelta(minutes=3)
) -> int:
    """Queued tasks, then the sweeps, until `done()`; each round later than the last by
    `step` (more than the sweeps' staleness and the steps' leases). Returns the rounds it took."""
    for round_ in range(rounds):
        with time_machine.travel(timezone.now() + step * round_, tick=True):
            run_queued_tasks()
            run_sweeps()
            run_queued_tasks()
        if done():
            return round_ + 1
    raise AssertionError(f"the work was not done after {rounds} rounds of tasks and sweeps")


def in_thread(target: Callable[[], Any], name: str) -> threading.Thread:
    """A started thread that runs `target` in a copy of this context (the scoping context
    variables of tenants/scoping.py among them), as the web server's threads do."""
    thread = threading.Thread(target=contextvars.copy_context().run, args=(target,), name=name, daemon=True)
    thread.start()
    return thread
