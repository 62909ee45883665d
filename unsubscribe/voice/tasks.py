"""Scheduled voice jobs (django-celery-beat, registered by migration 0003)."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def end_stale_voice_calls() -> int:
    """Calls a caller hung up on mid-menu: mark them abandoned and drop the raw number."""
    return services.voice_calls_end_stale()
