"""Celery tasks: thin, idempotent wrappers (ids in, never numbers).

Retry state lives on the rows (WebhookDelivery.next_attempt_at, ScrubJob.lease_until,
SendLogImport.lease_until),
not in Celery, so it survives a lost broker message; the sweep resends what is due.
deliver_webhook runs on the "webhooks" queue, everything else on "pipeline"
(CELERY_TASK_ROUTES in lanzuan/settings.py).
"""

from __future__ import annotations

from celery import shared_task

from . import scrub, sendlog_import, webhooks


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver_webhook(delivery_id: int) -> str:
    return webhooks.webhook_delivery_run(delivery_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_scrub_job(job_id: int) -> None:
    scrub.scrub_job_run(job_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_scrub_chunk(job_id: int, run: str, number: int, chunks: int, column: int) -> None:
    from . import scrub_chunks  # noqa: PLC0415  # it imports this module

    scrub_chunks.scrub_chunk_run(job_id, run, number, chunks, column)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_send_log_import(job_id: int) -> None:
    sendlog_import.send_log_import_run(job_id)


@shared_task(ignore_result=True)
def partner_sweep() -> dict[str, int]:
    return {
        **webhooks.webhook_deliveries_sweep(),
        **scrub.scrub_jobs_sweep(),
        **sendlog_import.send_log_imports_sweep(),
    }
