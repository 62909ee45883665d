"""Celery tasks are system work: each runs with every tenant's rows in view of the
database (tenants/db_scope.py); the task's own code still scopes its querysets."""

from __future__ import annotations

from typing import Any

from celery import signals

from . import db_scope

_tokens: dict[str, Any] = {}


def _enter(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    name = getattr(task, "name", "a task")
    _tokens[task_id or ""] = db_scope.enter_system(reason=f"Celery task {name}")


def _leave(task_id: str | None = None, **_: Any) -> None:
    token = _tokens.pop(task_id or "", None)
    if token is not None:
        db_scope.leave(token)


def connect() -> None:
    signals.task_prerun.connect(_enter, dispatch_uid="lanzuan_db_scope_enter", weak=False)
    signals.task_postrun.connect(_leave, dispatch_uid="lanzuan_db_scope_leave", weak=False)
