"""Celery tasks: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def verifications_sweep() -> dict[str, int]:
    return services.verifications_sweep()
