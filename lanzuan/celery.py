"""The Celery app, configured from Django settings (the CELERY_ namespace).

A worker rides out a broker outage (issue 19, item 6). Two things stopped it before:
- Celery gives up reconnecting after `broker_connection_max_retries` (100 tries, about
  45 minutes at its 30-second cap) with "Unrecoverable error" and exits; settings.py sets
  it to None: a worker and beat retry for as long as the broker is away.
- On a lost Redis connection the Gossip step closes its fanout channel after kombu has
  already dropped the transport ("Error on restarting Gossip: AttributeError ...
  connection_errors"; on another path `... hostname`, which ends the worker). Gossip and
  Mingle only coordinate several workers (events between them, revoked ids at start);
  Lanzuan uses neither, so `Consumer` below switches both off whatever the command line
  says (the README's `celery -A lanzuan worker` needs no flag for it).
The deployment (docs/deploy.md) restarts a process that stops anyway.
"""

import os
from typing import Any

from celery import Celery, signals
from celery.worker.consumer import Consumer as CeleryConsumer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanzuan.settings")


class Consumer(CeleryConsumer):
    """Celery's consumer without Gossip and Mingle (settings.CELERY_WORKER_CONSUMER)."""

    def __init__(self, *args: Any, worker_options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        options = {**(worker_options or {}), "without_gossip": True, "without_mingle": True}
        super().__init__(*args, **{**kwargs, "worker_options": options})


app = Celery("lanzuan")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect(weak=False, dispatch_uid="lanzuan_close_old_connections")
def _close_old_connections(task: Any = None, **_: Any) -> None:
    """What Django does at the start of every request, at the start of every task: a
    connection that broke, or outlived CONN_MAX_AGE, is closed (and opened again on use).
    Celery's own fix-up would close it every time (settings.CELERY_DB_REUSE_MAX). Not for a
    task run eagerly: it runs inside its caller's transaction."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections  # noqa: PLC0415 (Django loads after this module)

    close_old_connections()
