"""Send-log imports: a sender's CSV of what it sent (up to millions of rows), read in the background
in chunks (`POST /api/v1/send-logs` with a CSV; progress at `GET /api/v1/send-logs/imports/{id}`).

Each chunk of CHUNK_ROWS rows is checked (`sendlogs.records.SendRecordReader`: numbers digested with
keys computed once), stored with the duplicates left out and its violations found in SQL
(`sendlogs.services.send_logs_ingest`), and counted on the job, all in one transaction: the progress
a partner reads is what is stored, and a job whose worker died goes on from its last chunk (the
sweep queues it again once its lease has run out). The upload is deleted when the job ends; the file
expiry (registered in apps.py) removes one a job never got to.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from lanzuan.dispatch import dispatch_or_leave_for_sweep
from tenants.models import Tenant
from unsubscribe.sendlogs import services as sendlogs
from unsubscribe.sendlogs.records import SendRecordReader, csv_rows

from . import tasks
from .errors import InvalidUpload, TooManyNumbers
from .models import SendLogImport
from .scrub import UPLOAD_MAX_AGE, abandoned_uploads_expire, count_lines

logger = logging.getLogger(__name__)

MAX_ROWS = 10_000_000
CHUNK_ROWS = 10_000
MAX_ERRORS = 100  # the first errors are kept on the job; the count covers all
LEASE = timedelta(minutes=5)
STALE_DISPATCH = timedelta(minutes=2)


def send_log_import_create(
    *, tenant: Tenant, upload: UploadedFile | None = None, text: str | None = None, submitted_by: str = ""
) -> SendLogImport:
    """Store the CSV (a multipart file, or a text/csv body) and queue the job after commit.
    Raises InvalidUpload (empty) or TooManyNumbers."""
    if upload is None:
        upload = ContentFile((text or "").encode(), name="send-logs.csv")  # type: ignore[assignment]
    assert upload is not None
    if not upload.size:
        raise InvalidUpload(_("The file is empty."))
    lines = count_lines(upload.chunks())
    if lines > MAX_ROWS + 1:
        raise TooManyNumbers(
            _("At most %(max)s rows per file; this one has %(rows)s lines.")
            % {"max": f"{MAX_ROWS:,}", "rows": f"{lines:,}"},
            field="file",
        )
    upload.seek(0)
    with transaction.atomic():
        job = SendLogImport(
            tenant=tenant,
            original_name=(upload.name or "")[:200],
            submitted_by=submitted_by[:200],
            total_rows=max(lines - 1, 0),
        )
        job.file.save("upload.csv", upload, save=False)
        job.save()
        transaction.on_commit(lambda: send_log_import_dispatch(job.pk))
    return job


def send_log_import_dispatch(job_id: int) -> None:
    """Queue the job. Never raises: with the broker down the sweep queues it later."""
    if dispatch_or_leave_for_sweep(tasks.run_send_log_import, job_id, what=f"send log import {job_id}"):
        SendLogImport.objects.unscoped(reason="marks a send log import handed to a worker, by its id").filter(
            pk=job_id
        ).update(dispatched_at=timezone.now())


def send_log_import_run(job_id: int) -> SendLogImport | None:
    """Run a job, from its last stored chunk; idempotent. Claimed with a conditional update, so
    two workers never run it together."""
    now = timezone.now()
    jobs = SendLogImport.objects.unscoped(reason="a worker runs a send log import by its id")
    claimed = (
        jobs.filter(pk=job_id)
        .filter(
            Q(status=SendLogImport.Status.PENDING)
            | Q(status=SendLogImport.Status.RUNNING, lease_until__lt=now)
        )
        .update(status=SendLogImport.Status.RUNNING, lease_until=now + LEASE, started_at=now)
    )
    job = jobs.select_related("tenant").filter(pk=job_id).first()
    if job is None or not claimed:
        return job
    try:
        # The errors a partner reads later: in the tenant's language, as its pages are.
        with translation.override(job.tenant.default_language):
            _import(job)
    except ValueError as exc:  # the file as a whole cannot be read: its message is shown
        _finish(job, status=SendLogImport.Status.FAILED, error=str(exc))
    except Exception as exc:  # a bug: keep the job from hanging in "running"
        logger.exception("send log import %s crashed", job_id)
        _finish(
            job,
            status=SendLogImport.Status.FAILED,
            error=_("Internal error (%(kind)s).") % {"kind": type(exc).__name__},
        )
    else:
        _finish(job, status=SendLogImport.Status.DONE)
    return job


def _chunks(job: SendLogImport) -> Iterator[list[tuple[int, dict[str, str]]]]:
    with job.file.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        try:
            rows = (row for row in csv_rows(text) if row[0] > job.lines_done)
            while chunk := list(islice(rows, CHUNK_ROWS)):
                yield chunk
        except UnicodeDecodeError:
            raise ValueError(_("The file is not UTF-8 text.")) from None


def _import(job: SendLogImport) -> None:
    reader = SendRecordReader(job.tenant)
    jobs = SendLogImport.objects.for_tenant(job.tenant_id).filter(pk=job.pk)
    for chunk in _chunks(job):
        parsed = reader.read(chunk, csv=True)
        with transaction.atomic():
            counts = sendlogs.send_logs_ingest(tenant=job.tenant, records=parsed.records)
            fields: dict[str, Any] = {
                "rows_done": F("rows_done") + len(chunk),
                "lines_done": chunk[-1][0],
                "accepted": F("accepted") + counts.accepted,
                "duplicates": F("duplicates") + counts.duplicates,
                "invalid": F("invalid") + parsed.invalid,
                "violations": F("violations") + counts.violations,
                "lease_until": timezone.now() + LEASE,
            }
            room = MAX_ERRORS - len(job.errors)
            if parsed.errors and room > 0:
                job.errors = [*job.errors, *(e.as_dict() for e in parsed.errors[:room])]
                fields["errors"] = job.errors
            jobs.update(**fields)
        job.lines_done = chunk[-1][0]


def _finish(job: SendLogImport, *, status: str, error: str = "") -> None:
    if job.file:
        job.file.delete(save=False)  # the sender's list: not kept longer than needed
    SendLogImport.objects.for_tenant(job.tenant_id).filter(pk=job.pk).update(
        status=status, error=error[:2000], finished_at=timezone.now(), lease_until=None, file=""
    )
    job.refresh_from_db()
    logger.info("send log import %s %s", job.pk, status)


# --- upkeep -------------------------------------------------------------------------


def send_log_imports_sweep() -> dict[str, int]:
    """Queue jobs nobody picked up (broker down) or whose worker died (lease run out)."""
    now = timezone.now()
    jobs = SendLogImport.objects.unscoped(reason="the sweep requeues every tenant's send log imports")
    lost = list(
        jobs.filter(
            Q(status=SendLogImport.Status.PENDING)
            & (Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=now - STALE_DISPATCH))
            | Q(status=SendLogImport.Status.RUNNING, lease_until__lt=now)
        ).values_list("pk", flat=True)[:100]
    )
    for job_id in lost:
        send_log_import_dispatch(job_id)
    return {"send_log_imports_dispatched": len(lost)}


def send_log_uploads_expire(*, now: datetime | None = None) -> int:
    """The file expiry's part: a job whose upload is still there UPLOAD_MAX_AGE after it came never
    ran (or every worker running it died): it fails, saying so, and the upload goes."""
    return abandoned_uploads_expire(
        SendLogImport.objects.unscoped(reason="the file expiry covers every tenant's send log uploads"),
        now=now or timezone.now(),
        error=_("The file was not read within %(hours)d hours and was deleted; upload it again.")
        % {"hours": UPLOAD_MAX_AGE // timedelta(hours=1)},
    )


def send_log_import_deleted(sender: type, instance: SendLogImport, **kwargs: Any) -> None:
    """post_delete of a job (connected in apps.py): its upload goes with it."""
    if instance.file:
        instance.file.delete(save=False)
