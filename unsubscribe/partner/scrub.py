"""Scrub jobs: remove suppressed, invalid and repeated numbers from a list of up
to 10 million, in bounded memory, in the background.

The upload is read as a stream, never held whole. Three passes over files on disk:

1. read: normalise each row (regex fast path, phonenumbers only for odd forms);
   invalid rows are counted, valid ones are written as "<row no.>\\t<E.164>" to one
   of 32 bucket files chosen by the number, so equal numbers share a bucket;
2. scrub: one bucket at a time, a set finds repeats (the first occurrence wins),
   and a pre-keyed HMAC checked against the tenant's suppressed hashes (loaded
   once, as 64-bit prefixes) splits the rest into suppressed and sendable;
3. write: the 32 sendable files, each in row order, are merged (heapq.merge on
   zero-padded row numbers) into the result, so it keeps the upload's order.

Memory is the suppression set (≈60 bytes per suppressed number of the tenant) plus
one bucket's set (≈10 MB at 10 million rows), whatever the list's size. A 64-bit
prefix can only err towards "suppressed" (odds ~1e-13 per number), never towards
sending to an opted-out number.

The uploaded list is deleted when the job ends, done or failed; the result (only the
sendable numbers, nothing else of the upload) is kept for RESULT_TTL after the job
finished, then removed by the sweep. The work files of a job whose worker died are
removed when the job is claimed again. The hourly file expiry
(unsubscribe/retention/files.py, registered in apps.py) is the safety net: a list
still there after UPLOAD_MAX_AGE (a job never run) fails its job and goes, and any
list, result or work file older than its limit goes whether a row names it or not.
"""

from __future__ import annotations

import contextlib
import csv
import heapq
import io
import logging
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from lanzuan import phones
from lanzuan.dispatch import dispatch_or_leave_for_sweep
from tenants.models import Tenant
from unsubscribe.models import PlatformDoNotMarket, Suppression
from unsubscribe.suppressions.selectors import relevant_scopes

from . import tasks, upload_limits  # tasks by module: it imports this one
from .errors import InvalidUpload, TooManyNumbers, UnknownService
from .models import ScrubJob
from .selectors import service_exists

logger = logging.getLogger(__name__)

MAX_ROWS = 10_000_000
BUCKETS = 32
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


def scrub_job_create(*, tenant: Tenant, upload: UploadedFile, service_code: str | None = None) -> ScrubJob:
    """Store the upload (streamed to disk by Django) and queue the job after commit.
    Raises UnknownService, InvalidUpload or TooManyNumbers."""
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


class _Progress:
    """Saves progress now and then, extending the job's lease each time."""

    def __init__(self, job: ScrubJob) -> None:
        self.job = job

    def save(self, **fields: Any) -> None:
        fields["lease_until"] = timezone.now() + LEASE
        ScrubJob.objects.for_tenant(self.job.tenant_id).filter(pk=self.job.pk).update(**fields)

    def reading(self, rows: int, invalid: int) -> None:
        total = max(self.job.total_rows, 1)
        self.save(rows_done=rows, invalid=invalid, percent=min(60, rows * 60 // total))

    def scrubbing(self, buckets_done: int) -> None:
        self.save(phase=ScrubJob.Phase.SCRUBBING, percent=60 + 30 * buckets_done // BUCKETS)


def scrub_job_run(job_id: int) -> ScrubJob | None:
    """Run a job once; idempotent. A job is claimed with a conditional update, so two
    workers never run it together; a job whose worker died is claimed again once its
    lease has run out, and starts over."""
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
    try:
        counts, result_name = _scrub(job)
    except ScrubFailed as exc:
        _finish(job, status=ScrubJob.Status.FAILED, error=str(exc))
    except Exception as exc:  # a bug: keep the job from hanging in "running"
        logger.exception("scrub job %s crashed", job_id)
        _finish(
            job,
            status=ScrubJob.Status.FAILED,
            error=_("Internal error (%(kind)s).") % {"kind": type(exc).__name__},
        )
    else:
        job.result.name = result_name
        _finish(job, status=ScrubJob.Status.DONE, counts=counts)
    return job


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


def _scrub(job: ScrubJob) -> tuple[Counts, str]:
    progress = _Progress(job)
    counts = Counts()
    tmp_root = work_root()
    tmp_root.mkdir(parents=True, exist_ok=True)
    for leftover in tmp_root.glob(f"scrub-{job.pk}-*"):  # a run of this job whose worker died
        shutil.rmtree(leftover, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=tmp_root, prefix=f"scrub-{job.pk}-") as tmp_dir:
        tmp = Path(tmp_dir)
        buckets = _read(job, tmp, counts, progress)
        progress.save(phase=ScrubJob.Phase.SCRUBBING, rows_done=counts.rows, invalid=counts.invalid)
        suppressed = suppressed_keys(tenant=job.tenant, service_code=job.service_code or None)
        digest = phones.tenant_phone_digester(job.tenant_id)
        blocked = platform_blocked_keys()
        sendable = _scrub_buckets(buckets, suppressed, counts, progress, digest, blocked)
        del suppressed, blocked
        progress.save(phase=ScrubJob.Phase.WRITING, percent=95)
        result = tmp / "result.csv"
        _merge(sendable, result)
        name = f"scrub/{job.tenant_id}/results/{job.pk}-{secrets.token_hex(8)}.csv"
        with result.open("rb") as handle:
            stored = job.result.storage.save(name, File(handle, name=name))
    return counts, stored


def work_root() -> Path:
    """Where runs keep their bucket files (numbers, one per line) while they work."""
    return Path(settings.VAR_DIR) / "tmp"


def _key(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "big")


def suppressed_keys(*, tenant: Tenant, service_code: str | None = None) -> set[int]:
    """The tenant's suppressed numbers for this scope as 64-bit hash prefixes: one
    streamed query; ~60 bytes each in memory (a hex string would take ~140)."""
    return {
        int(digest[:16], 16)
        for digest in Suppression.objects.for_tenant(tenant)
        .filter(scope__in=relevant_scopes(service_code))
        .values_list("phone_hash", flat=True)
        .iterator(chunk_size=20_000)
    }


def platform_blocked_keys() -> set[int]:
    """The numbers on the platform-wide do-not-market list, as 64-bit prefixes of their
    platform digest: they are suppressed at every tenant, whatever its own opt-outs."""
    return {
        int(digest[:16], 16)
        for digest in PlatformDoNotMarket.objects.values_list("phone_hash", flat=True).iterator(
            chunk_size=20_000
        )
    }


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


def _read(job: ScrubJob, tmp: Path, counts: Counts, progress: _Progress) -> list[Path]:
    """Pass 1: stream the upload into bucket files of normalised numbers."""
    paths = [tmp / f"in-{i:02d}" for i in range(BUCKETS)]
    mask = BUCKETS - 1
    normalise = phones.normalise_fast
    invalid_number = phones.InvalidPhoneNumber
    with contextlib.ExitStack() as stack:
        buckets = [stack.enter_context(p.open("w", encoding="ascii", buffering=1 << 16)) for p in paths]
        raw = stack.enter_context(job.file.open("rb"))
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.reader(text)
        rows = 0
        try:
            column, first = _column(reader)
            source: Iterable[list[str]] = reader if first is None else _prepend(first, reader)
            for row in source:
                cell = row[column] if column < len(row) else ""
                if not cell.strip():
                    if not any(c.strip() for c in row):
                        continue  # a blank line is not a row
                    counts.invalid += 1
                    rows += 1
                    continue
                rows += 1
                try:
                    e164 = normalise(cell)
                except invalid_number:
                    counts.invalid += 1
                else:
                    buckets[hash(e164) & mask].write(f"{rows:0{ROW_WIDTH}d}\t{e164}\n")
                if rows % PROGRESS_EVERY == 0:
                    if rows > MAX_ROWS:
                        raise ScrubFailed(_("At most %(max)s numbers per list.") % {"max": f"{MAX_ROWS:,}"})
                    progress.reading(rows, counts.invalid)
        except UnicodeDecodeError:
            raise ScrubFailed(_("The file is not UTF-8 text.")) from None
        except csv.Error as exc:
            raise ScrubFailed(
                _("Row %(row)d could not be read: %(error)s") % {"row": rows + 1, "error": exc}
            ) from None
    if rows > MAX_ROWS:
        raise ScrubFailed(_("At most %(max)s numbers per list.") % {"max": f"{MAX_ROWS:,}"})
    counts.rows = rows
    return paths


def _prepend(first: list[str], rest: Iterator[list[str]]) -> Iterator[list[str]]:
    yield first
    yield from rest


def _scrub_buckets(  # noqa: PLR0917
    paths: list[Path],
    suppressed: set[int],
    counts: Counts,
    progress: _Progress,
    digest: Callable[[str], bytes],
    blocked: set[int],
) -> list[Path]:
    """Pass 2: per bucket, drop repeats, then split suppressed from sendable (the tenant's
    opt-outs, then the platform-wide list, whose digest is computed only when it is not empty)."""
    platform_digest = phones.platform_phone_digest
    start = ROW_WIDTH + 1
    outputs = []
    for index, path in enumerate(paths):
        seen: set[str] = set()
        out_path = path.with_name(f"out-{index:02d}")
        with (
            path.open(encoding="ascii") as src,
            out_path.open("w", encoding="ascii", buffering=1 << 16) as dst,
        ):
            for line in src:
                e164 = line[start:-1]
                if e164 in seen:
                    counts.duplicate += 1
                    continue
                seen.add(e164)
                if _key(digest(e164)) in suppressed:
                    counts.suppressed += 1
                elif blocked and _key(platform_digest(e164)) in blocked:
                    counts.suppressed += 1
                    counts.platform_do_not_market += 1
                else:
                    counts.sendable += 1
                    dst.write(line)
        path.unlink()
        outputs.append(out_path)
        progress.scrubbing(index + 1)
    return outputs


def _merge(paths: list[Path], result: Path) -> None:
    """Pass 3: the sendable numbers in upload order, one per line under a header."""
    start = ROW_WIDTH + 1
    with contextlib.ExitStack() as stack:
        sources = [stack.enter_context(p.open(encoding="ascii")) for p in paths]
        with result.open("w", encoding="ascii", newline="") as out:
            out.write("phone\n")
            out.writelines(line[start:] for line in heapq.merge(*sources))


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
    now = now or timezone.now()
    jobs = ScrubJob.objects.unscoped(reason="the file expiry covers every tenant's scrub lists")
    abandoned = Q(status=ScrubJob.Status.PENDING) | Q(status=ScrubJob.Status.RUNNING, lease_until__lt=now)
    expired = 0
    for job in jobs.filter(created_at__lt=now - UPLOAD_MAX_AGE).exclude(file="")[:500]:
        if job.status in (ScrubJob.Status.PENDING, ScrubJob.Status.RUNNING):
            # Taken with a conditional update, like a worker's claim: a worker that claims
            # it meanwhile keeps it (and deletes the list itself when it ends).
            taken = jobs.filter(abandoned, pk=job.pk).update(
                status=ScrubJob.Status.FAILED,
                phase=ScrubJob.Phase.FINISHED,
                error=_("The list was not scrubbed within %(hours)d hours and was deleted; upload it again.")
                % {"hours": UPLOAD_MAX_AGE // timedelta(hours=1)},
                finished_at=now,
                lease_until=None,
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
