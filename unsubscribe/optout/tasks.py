"""Celery tasks: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from notifications.gateways import TransientGatewayError

from . import platform, services


@shared_task(ignore_result=True)
def verifications_sweep() -> dict[str, int]:
    return services.verifications_sweep()


@shared_task(
    ignore_result=True,
    autoretry_for=(TransientGatewayError,),
    retry_backoff=5,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=4,
)
def platform_sms_deliver(ref: str) -> bool:
    """The hub's code SMS; only a cache reference travels through the broker, never the code.
    After the last retry the text expires with the code and the person asks for a new one."""
    return platform.platform_sms_send(ref)
