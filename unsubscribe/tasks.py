"""Celery tasks: thin, idempotent wrappers around services (ids in, never numbers).

Retries and backoff are recorded on the Step rows (attempts, next_attempt_at,
last_error) rather than in Celery's retry state, so they survive a lost broker
message and show in the admin; the sweep re-dispatches anything overdue.
"""

from __future__ import annotations

from celery import shared_task

from .audit import services as audit
from .audit import verify as audit_verify
from .consents import services as consents
from .pipeline import services as pipeline
from .retention import files as stored_files
from .retention import services as retention  # by module: retention imports the pipeline, which imports this
from .sendlogs import services as sendlogs
from .subscriptions import services as subscriptions


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def process_request(request_id: int, confirmation_first: bool = True) -> None:
    pipeline.request_process(request_id, confirmation_first=confirmation_first)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_step(step_id: int) -> str:
    return pipeline.step_run(step_id)


@shared_task(ignore_result=True)
def pipeline_sweep() -> dict[str, int]:
    return pipeline.pipeline_sweep()


@shared_task(ignore_result=True)
def purge_expired_records() -> dict[str, int]:
    # First the raw numbers of requests that never completed, past their erasure deadline;
    # then the records of completed requests past their tenant's retention, and the minimised
    # consent records past the tenant's consent retention, and send logs past the send log retention.
    stalled = retention.stalled_requests_erase()
    return {
        "stalled_erased": stalled,
        "purged": retention.records_purge_expired(),
        "consents_purged": consents.consents_purge_expired(),
        "send_logs_purged": sendlogs.send_logs_purge_expired(),
    }


@shared_task(ignore_result=True)
def expire_stored_files() -> dict[str, int]:
    return stored_files.stored_files_expire()


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def import_subscriptions(import_id: int) -> None:
    subscriptions.subscription_import_run(import_id)


@shared_task(ignore_result=True)
def audit_checkpoints() -> int:
    """Sign every tenant's audit chain head that moved since its last checkpoint."""
    return audit.audit_checkpoints_sign()


@shared_task(ignore_result=True)
def audit_verify_daily() -> dict[str, int]:
    """What `manage.py audit_verify` checks, for every tenant; a break raises needs-attention."""
    reports = audit_verify.audit_verify_and_flag()
    return {"tenants": len(reports), "broken": sum(1 for report in reports if not report.ok)}
