"""Handing work to a Celery worker, or leaving it for the sweep.

Every kind of background work (a request, a step, a message, a webhook delivery, a
scrub job) is a row that says when it is due, and a periodic sweep dispatches due rows
nobody picked up. So queueing never has to succeed: when the broker is unreachable the
row stays due and the sweep queues it later. This is that one rule, for every caller.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

logger = logging.getLogger(__name__)

# A broker that blinks is retried briefly, within the caller's request; one that is down
# is left to the sweep instead of holding up the person who is waiting.
BROKER_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5}


def dispatch_or_leave_for_sweep(
    task: Task[Any, Any], *args: Any, what: str, countdown: float = 0, queue: str | None = None
) -> bool:
    """Queue `task(*args)` (on `queue`, else the task's route); True when queued. Never raises:
    False (and a warning naming `what`, e.g. "request 42") when the broker could not take it."""
    options: dict[str, Any] = {} if queue is None else {"queue": queue}
    try:
        task.apply_async(
            args=args, countdown=countdown, retry=True, retry_policy=BROKER_RETRY_POLICY, **options
        )
    except Exception:  # the broker's errors are many kinds; all mean "later"
        logger.warning("broker unavailable; %s left for the sweep", what, exc_info=True)
        return False
    return True
