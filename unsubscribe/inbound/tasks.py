"""Celery tasks for reply SMS: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def inbound_numbers_sweep() -> dict[str, int]:
    return services.inbound_numbers_sweep()
