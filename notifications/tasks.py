"""Celery tasks: thin wrappers around services (message ids in, never numbers or codes).

Attempts and the retry time are recorded on the Message row, so the budget
(services.MAX_ATTEMPTS) holds across lost broker messages and sweep re-dispatches.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from . import gateways, services
from .gateways import PermanentGatewayError, TransientGatewayError


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True, max_retries=None)
def deliver_message(self: Any, message_id: int) -> None:
    try:
        services.message_deliver(message_id)
    except services.MessageInFlight:
        pass  # its holder finishes it; a holder that died: messages_sweep takes it over after the lease
    except TransientGatewayError as exc:
        delay = services.message_retry_or_fail(message_id=message_id, error=str(exc))
        if delay is not None:
            raise self.retry(exc=exc, countdown=delay) from None
    except PermanentGatewayError:
        pass  # recorded on the row; retrying cannot help


@shared_task(ignore_result=True)
def messages_sweep() -> dict[str, int]:
    return services.messages_sweep()


@shared_task(ignore_result=True)
def outbox_expire() -> int:
    """Daily (beat): rotate the file gateway's outbox and delete rotated files past
    LANZUAN_OUTBOX_KEEP_DAYS. Returns how many files were deleted."""
    return gateways.outbox_expire()
