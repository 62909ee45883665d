"""Scrub jobs: remove suppressed, invalid and repeated numbers from a list of up
to 10 million, in bounded memory, in the background, on any number of workers.

The upload is read as a stream, never held whole, in chunks (scrub_chunks.py) that the
Celery workers run side by side, each in arrays (numpy), a batch at a time:

1. each chunk reads its rows (a one-column list without the csv module), parses them with
   `phones.parse_batch` (numpy for canonical forms, phonenumbers only for odd ones), looks
   its distinct numbers up (suppressions/batch.py: lookup keys in one AES call, the tenant's
   memory-mapped suppression index, the platform-wide list) and writes fixed-width records
   grouped by 32 buckets chosen by the number, so equal numbers share a bucket;
2. the last chunk to finish merges: per bucket, across chunks, the first occurrence of a
   number wins (np.unique order: chunk, then row); the sendable ones go, with their global row
   numbers, to 32 files in row order;
3. those are merged a window of rows at a time into the result, in the upload's order.

Memory is one batch, one bucket and one window, whatever the list's or the tenant's size:
the suppressions stay in the index's files (the page cache), never in the heap.

The uploaded list is deleted when the job ends, done or failed; the result (only the
sendable numbers, nothing else of the upload) is kept for RESULT_TTL after the job
finished, then removed by the sweep. The work files of a job whose worker died are
removed when the job is claimed again. The hourly file expiry
(unsubscribe/retention/files.py, registered in apps.py) is the safety net: a list
still there after UPLOAD_MAX_AGE (a job never run) fails its job and goes, and any
list, result or work file older than its limit goes whether a row names it or not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from lanzuan.dispatch import dispatch_or_leave_for_sweep
from lanzuan.iso_times import DIGIT_PAIRS
from tenants.models import Tenant

from . import tasks, upload_limits  # tasks by module: it imports this one
from .errors import InvalidUpload, TooManyNumbers, UnknownService
from .models import ScrubJob
from .selectors import service_exists

logger = logging.getLogger(__name__)

MAX_ROWS = 10_000_000
BUCKETS = 32  # at least
BUCKET_BYTES = 512 * 1024  # of the list, per bucket beyond BUCKETS (scrub_chunks' merge)
PROGRESS_EVERY = 100_000  # rows between progress saves
LEASE = timedelta(minutes=5)
RESULT_TTL = timedelta(days=7)
# A list not scrubbed this long after its upload belongs to a job that never ran (or
# whose every worker died): the file expiry fails the job and deletes the list.
UPLOAD_MAX_AGE = timedelta(hours=24)
WORK_FILES_MAX_AGE = timedelta(hours=24)  # the bucket files of a crashed run, under var/tmp/
STALE_DISPATCH = timedelta(minutes=2)
ROW_WIDTH = 10  # digits of the zero-padded row number in bucket lines
HEADER_NAMES = frozenset(
    {
        "phone",
        "phone_number",
        "mobile",
        "msisdn",
        "number",
        "tel",
        "手机",
        "手机号",
        "手机号码",
        "号码",
        "电话",
    }
)


class ScrubFailed(Exception):
    """The list cannot be scrubbed (not UTF-8 text, too many rows); the message is shown."""


# --- creating and dispatching ---------------------------------------------------


def count_lines(chunks: Iterable[bytes]) -> int:
    lines, last = 0, b""
    for chunk in chunks:
        lines += chunk.count(b"\n")
        if chunk:
            last = chunk[-1:]
    return lines + (1 if last and last != b"\n" else 0)


def scrub_job_create(
    *, tenant: Tenant, upload: UploadedFile, service_code: str | None = None, with_reasons: bool = False
) -> ScrubJob:
    """Store the upload (streamed to disk by Django) and queue the job after commit.
    `with_reasons`: the result lists every row with its reason. Raises UnknownService,
    InvalidUpload or TooManyNumbers."""
    service_code = (service_code or "").strip()
    if service_code and not service_exists(tenant=tenant, code=service_code):
        raise UnknownService(_("Unknown service code(s): %(codes)s") % {"codes": service_code})
    size = upload.size or 0
    if size == 0:
        raise InvalidUpload(_("The file is empty."))
    max_bytes = upload_limits.scrub_max_upload_bytes()
    if size > max_bytes:  # the API refuses it before reading it (upload_limits.py); this is for any caller
        raise upload_limits.upload_too_large(max_bytes)
    lines = count_lines(upload.chunks())
    if lines > MAX_ROWS + 1:  # one header row allowed
        raise TooManyNumbers(
            _("At most %(max)s numbers per list; this file has %(rows)s lines.")
            % {"max": f"{MAX_ROWS:,}", "rows": f"{lines:,}"},
            field="file",
        )
    upload.seek(0)
    with transaction.atomic():
        job = ScrubJob(
            tenant=tenant,
            service_code=service_code,
            original_name=(upload.name or "")[:200],
            total_rows=lines,
            with_reasons=with_reasons,
        )
        job.file.save("upload.csv", upload, save=False)
        job.save()
        transaction.on_commit(lambda: scrub_job_dispatch(job.pk))
    return job


def scrub_job_dispatch(job_id: int) -> None:
    """Queue the job. Never raises: with the broker down the sweep queues it later."""
    if dispatch_or_leave_for_sweep(tasks.run_scrub_job, job_id, what=f"scrub job {job_id}"):
        ScrubJob.objects.unscoped(reason="marks a job handed to a worker, by its id").filter(
            pk=job_id
        ).update(dispatched_at=timezone.now())


# --- running ----------------------------------------------------------------------


@dataclass
class Counts:
    rows: int = 0
    invalid: int = 0
    duplicate: int = 0
    suppressed: int = 0
    platform_do_not_market: int = 0  # of the suppressed: on the person's platform-wide list
    sendable: int = 0


def scrub_job_run(job_id: int, *, inline: bool = False) -> ScrubJob | None:
    """Run a job once; idempotent. A job is claimed with a conditional update, so two
    workers never run it together; a job whose worker died is claimed again once its
    lease has run out, and starts over. Its chunks (scrub_chunks.py) run on the workers,
    or here when `inline` or when the list is one chunk; the last chunk merges."""
    now = timezone.now()
    jobs = ScrubJob.objects.unscoped(reason="a worker runs a job by its id")
    claimed = (
        jobs.filter(pk=job_id)
        .filter(Q(status=ScrubJob.Status.PENDING) | Q(status=ScrubJob.Status.RUNNING, lease_until__lt=now))
        .update(
            status=ScrubJob.Status.RUNNING,
            phase=ScrubJob.Phase.READING,
            lease_until=now + LEASE,
            started_at=now,
            rows_done=0,
            percent=0,
            invalid=0,
            duplicate=0,
            suppressed=0,
            platform_do_not_market=0,
            sendable=0,
            error="",
        )
    )
    job = jobs.select_related("tenant").filter(pk=job_id).first()
    if job is None or not claimed:
        return job
    from . import scrub_chunks  # noqa: PLC0415  # it imports this module

    try:
        scrub_chunks.scrub_job_start(job, inline=inline)
    except ScrubFailed as exc:
        _finish(job, status=ScrubJob.Status.FAILED, error=str(exc))
    except Exception as exc:  # a bug: keep the job from hanging in "running"
        logger.exception("scrub job %s crashed", job_id)
        _finish(
            job,
            status=ScrubJob.Status.FAILED,
            error=_("Internal error (%(kind)s).") % {"kind": type(exc).__name__},
        )
    return jobs.select_related("tenant").filter(pk=job_id).first()


def _finish(job: ScrubJob, *, status: str, counts: Counts | None = None, error: str = "") -> None:
    if job.file:
        job.file.delete(save=False)  # the tenant's raw list: not kept longer than needed
    job.status = status
    job.phase = ScrubJob.Phase.FINISHED
    job.error = error[:2000]
    job.finished_at = timezone.now()
    job.lease_until = None
    if counts is not None:
        job.total_rows = job.rows_done = counts.rows
        job.invalid, job.duplicate = counts.invalid, counts.duplicate
        job.suppressed, job.sendable = counts.suppressed, counts.sendable
        job.platform_do_not_market = counts.platform_do_not_market
        job.percent = 100
    job.save()
    logger.info("scrub job %s %s", job.pk, status)


def work_root() -> Path:
    """Where runs keep their bucket files (numbers, one per line) while they work."""
    return Path(settings.VAR_DIR) / "tmp"


def _column(reader: Iterator[list[str]]) -> tuple[int, list[str] | None]:
    """Which column holds the number, and the first data row if there is no header."""
    for row in reader:
        cells = [cell.strip().lower() for cell in row]
        if not any(cells):
            continue
        for index, cell in enumerate(cells):
            if cell in HEADER_NAMES:
                return index, None
        if not any(ch.isdigit() for cell in cells for ch in cell):
            return 0, None  # a header we do not know: the first column
        return 0, row
    return 0, None


# A bucket file's record: the row number, the number's digit count and digits (E.164 without "+").
RECORD = np.dtype([("row", "<u4"), ("count", "u1"), ("value", "<i8")])
READ_BATCH = 100_000  # rows parsed together (phones.parse_batch)
MERGE_WINDOW = 262_144  # rows of the result written together


def bucket_count(size: int) -> int:
    """Buckets for a list of `size` bytes: BUCKETS, or one per ~512 KiB of list (about 32,000
    rows) for longer lists, a power of two, so that merging a bucket takes the same memory
    however long the list is."""
    return max(BUCKETS, 1 << max(0, -(-size // BUCKET_BYTES) - 1).bit_length())


def _bucket_of(values: Any, buckets: int) -> Any:
    """Equal numbers share a bucket (a multiplicative hash of the digits; `buckets`: a power of two)."""
    mixed = values.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return (mixed >> np.uint64(64 - (buckets.bit_length() - 1))).astype(np.int64)


def _prepend(first: list[str], rest: Iterator[list[str]]) -> Iterator[list[str]]:
    yield first
    yield from rest


def e164_lines(counts: Any, values: Any) -> bytes:
    """ "+<digits>\n" for each number, built in arrays (no string per number): the digits are
    written right-aligned two at a time, the columns before a number's first digit zeroed, and
    every zero dropped."""
    total = len(values)
    out = np.zeros((total, 18), dtype=np.uint8)  # "+", 16 digit columns, "\n"
    out[:, 0], out[:, 17] = ord("+"), ord("\n")
    rest = values.astype(np.int64)
    for column in range(15, 0, -2):  # columns (column, column + 1) hold the next two digits
        out[:, column : column + 2].view(np.uint16)[:, 0] = DIGIT_PAIRS[rest % 100]
        rest = rest // 100
    if total and (counts == counts[0]).all():  # one length (a CN list): the columns it uses, no zeros
        width = int(counts[0])
        lines: bytes = np.ascontiguousarray(out[:, np.r_[0, 17 - width : 18]]).tobytes()
        return lines
    out[:, 1:17][np.arange(16) < (16 - counts.astype(np.int64))[:, None]] = 0
    lines = out[out != 0].tobytes()
    return lines


def _merge(paths: list[Path], result: Path, rows: int) -> None:
    """Pass 3: the sendable numbers in upload order, one per line under a header; a window
    of rows at a time from every bucket (each in row order), so memory stays flat."""
    maps = [np.memmap(p, dtype=RECORD, mode="r") if p.stat().st_size else np.zeros(0, RECORD) for p in paths]
    starts = [0] * len(maps)
    with result.open("wb") as out:
        out.write(b"phone\n")
        for window_end in range(MERGE_WINDOW, rows + MERGE_WINDOW, MERGE_WINDOW):
            parts = []
            for index, records in enumerate(maps):
                end = int(np.searchsorted(records["row"], window_end, side="right"))
                parts.append(np.asarray(records[starts[index] : end]))
                starts[index] = end
            window = np.concatenate(parts) if parts else np.zeros(0, RECORD)
            window = window[np.argsort(window["row"], kind="stable")]
            out.write(e164_lines(window["count"], window["value"]))


# --- upkeep -------------------------------------------------------------------------


def scrub_jobs_sweep() -> dict[str, int]:
    """Queue jobs nobody picked up (broker down, worker died) and delete old results."""
    now = timezone.now()
    jobs = ScrubJob.objects.unscoped(reason="the sweep requeues and expires every tenant's jobs")
    lost = list(
        jobs.filter(
            Q(status=ScrubJob.Status.PENDING)
            & (Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=now - STALE_DISPATCH))
            | Q(status=ScrubJob.Status.RUNNING, lease_until__lt=now)
        ).values_list("pk", flat=True)[:100]
    )
    for job_id in lost:
        scrub_job_dispatch(job_id)
    return {"scrub_jobs_dispatched": len(lost), "scrub_results_expired": scrub_results_expire(now=now)}


def scrub_results_expire(*, now: datetime | None = None) -> int:
    """Delete the results of jobs that finished more than RESULT_TTL ago (they hold numbers)."""
    now = now or timezone.now()
    jobs = ScrubJob.objects.unscoped(reason="the sweep expires every tenant's scrub results")
    expired = 0
    for job in jobs.filter(finished_at__lt=now - RESULT_TTL).exclude(result="")[:500]:
        job.result.delete(save=False)
        job.save(update_fields=["result"])
        expired += 1
    return expired


def scrub_uploads_expire(*, now: datetime | None = None) -> int:
    """The file expiry's part for lists: a job whose list is still there UPLOAD_MAX_AGE after
    the upload never ran (or every worker running it died): it fails, saying so, and the
    list goes. A finished job still naming its list (a deletion that failed) loses it too."""
    return abandoned_uploads_expire(
        ScrubJob.objects.unscoped(reason="the file expiry covers every tenant's scrub lists"),
        now=now or timezone.now(),
        error=_("The list was not scrubbed within %(hours)d hours and was deleted; upload it again.")
        % {"hours": UPLOAD_MAX_AGE // timedelta(hours=1)},
        phase=ScrubJob.Phase.FINISHED,
    )


def abandoned_uploads_expire(jobs: Any, *, now: datetime, error: str, **failed: Any) -> int:
    """Uploads older than UPLOAD_MAX_AGE, of background jobs with the upload-job fields (status
    PENDING/RUNNING/FAILED, lease_until, file, created_at, finished_at, error: scrub jobs, send-log
    imports): a job that never ran, or whose worker died, fails with `error` (and `failed`'s
    fields), and its upload is deleted; a finished job's leftover upload is deleted too."""
    status = jobs.model.Status
    abandoned = Q(status=status.PENDING) | Q(status=status.RUNNING, lease_until__lt=now)
    expired = 0
    for job in jobs.filter(created_at__lt=now - UPLOAD_MAX_AGE).exclude(file="")[:500]:
        if job.status in (status.PENDING, status.RUNNING):
            # Taken with a conditional update, like a worker's claim: a worker that claims
            # it meanwhile keeps it (and deletes the upload itself when it ends).
            taken = jobs.filter(abandoned, pk=job.pk).update(
                status=status.FAILED, error=error, finished_at=now, lease_until=None, **failed
            )
            if not taken:
                continue
        job.file.delete(save=False)
        jobs.filter(pk=job.pk).update(file="")
        expired += 1
    return expired


def scrub_job_deleted(sender: type, instance: ScrubJob, **kwargs: Any) -> None:
    """post_delete of a job (connected in apps.py): its files go with it."""
    scrub_job_files_delete(instance)


def scrub_job_files_delete(job: ScrubJob) -> None:
    """When a job row is deleted, its files go with it."""
    for field in (job.file, job.result):
        if field:
            field.delete(save=False)
