"""A scrub job split into chunks that Celery workers run on any number of hosts, then merged.

The job's worker (`run_scrub_job`) claims the job, finds the number column in the list's first
rows, and splits the upload into byte ranges of LANZUAN_SCRUB_CHUNK_BYTES ending on a line break (the
boundaries depend on the file alone, so every worker computes the same ones). Each chunk
(`run_scrub_chunk`) reads its rows, parses them in batches, looks the distinct numbers up
(suppressions/batch.py) and writes its records (chunk row, digits, status) sorted by bucket,
then adds its rows to the job's live counts. The chunk that finds every chunk written claims the
merge (a conditional update of the phase, so exactly one does): per bucket, across chunks, the
first occurrence of a number wins (by chunk, then row), the global row numbers come from the
chunks' row counts, and the result is written in upload order (scrub._merge). The output does
not depend on how many workers ran the chunks.

The work files live under scrub.work_root() (LANZUAN_VAR_DIR/tmp, which must be one directory
shared by the workers' hosts when they are several), in a directory named by the run: a worker
of an earlier run (the job was claimed again after its lease ran out) finds its directory gone
and stops. A list with quotes (a CSV field may then hold a line break) is read as one chunk.
"""

from __future__ import annotations

import csv
import ctypes
import ctypes.util
import io
import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files import File
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from lanzuan import phones
from lanzuan.dispatch import dispatch_or_leave_for_sweep
from unsubscribe.suppressions.batch import batch_check

from . import scrub, tasks
from .models import ScrubJob

logger = logging.getLogger(__name__)

# A chunk's record: its own row number, the number's digits, and what the look-up said.
SENDABLE, SUPPRESSED, PLATFORM, DUPLICATE = 0, 1, 2, 3
REASONS = {
    SENDABLE: "sendable",
    SUPPRESSED: "suppressed",
    PLATFORM: "platform_do_not_market",
    DUPLICATE: "duplicate",
}
# A row of the result with reasons: its global row number, the number, why.
REASON_RECORD = np.dtype([("row", "<u4"), ("count", "u1"), ("value", "<i8"), ("reason", "u1")])
CHUNK_RECORD = np.dtype([("row", "<u4"), ("count", "u1"), ("value", "<i8"), ("status", "u1")])


def _jobs() -> Any:
    return ScrubJob.objects.unscoped(reason="a worker runs a scrub job's chunk by the job's id")


def run_dir(job_id: int, run: str) -> Path:
    return scrub.work_root() / f"scrub-{job_id}-{run}"


def chunk_bytes() -> int:
    """settings.SCRUB_CHUNK_BYTES (8 MiB: about 550,000 rows of "+86…" numbers)."""
    return max(4096, int(settings.SCRUB_CHUNK_BYTES))  # at most 5 digits of chunk numbers (200 MB lists)


def chunk_count(size: int) -> int:
    return max(1, -(-size // chunk_bytes()))


def _boundary(handle: Any, k: int, size: int) -> int:
    """Where chunk k starts: the first line start at or after k × chunk_bytes()."""
    step = chunk_bytes()
    if k <= 0:
        return 0
    if k * step >= size:
        return size
    handle.seek(k * step - 1)
    handle.readline()
    return int(handle.tell())


def scrub_job_start(job: ScrubJob, *, inline: bool = False) -> None:
    """After the claim: plan the chunks and run them (here when `inline` or one chunk; else
    on the workers). Raises ScrubFailed."""
    root = scrub.work_root()
    root.mkdir(parents=True, exist_ok=True)
    for leftover in root.glob(f"scrub-{job.pk}-*"):  # an earlier run of this job
        shutil.rmtree(leftover, ignore_errors=True)
    run = secrets.token_hex(6)
    run_dir(job.pk, run).mkdir()
    size = job.file.size
    with job.file.open("rb") as raw:
        head = raw.read(min(size, 1 << 20))
        quoted = b'"' in head
        if not quoted:
            raw.seek(0)
            quoted = any(b'"' in block for block in iter(lambda: raw.read(1 << 22), b""))
    column = _column_of(head)
    chunks = 1 if quoted else chunk_count(size)
    if inline or chunks == 1:
        for number in range(chunks):
            scrub_chunk_run(job.pk, run, number, chunks, column)
        return
    for number in range(chunks):
        dispatch_or_leave_for_sweep(
            tasks.run_scrub_chunk,
            job.pk,
            run,
            number,
            chunks,
            column,
            what=f"scrub job {job.pk} chunk {number}",
        )


def _column_of(head: bytes) -> int:
    text = head.decode("utf-8-sig", errors="replace")
    lines = text.splitlines()[:-1] if len(text) == (1 << 20) else text.splitlines()
    column, _first = scrub._column(csv.reader(lines))  # noqa: SLF001
    return column


def scrub_chunk_run(job_id: int, run: str, number: int, chunks: int, column: int) -> None:
    """Run one chunk of a job's run; idempotent (a chunk written already is not redone)."""
    logger.info("scrub job %s chunk %s of %s in process %s", job_id, number + 1, chunks, os.getpid())
    job = _jobs().select_related("tenant").filter(pk=job_id, status=ScrubJob.Status.RUNNING).first()
    work = run_dir(job_id, run)
    if job is None or not work.is_dir():
        return  # finished, failed, or claimed again since (another run)
    meta = work / f"c{number:05d}.json"
    try:
        if not meta.exists():
            _chunk(job, work, number, column)
            _return_freed_memory()
        done = sum(1 for _ in work.glob("c[0-9][0-9][0-9][0-9][0-9].json"))
        if done == chunks and (
            _jobs()
            .filter(pk=job_id, status=ScrubJob.Status.RUNNING, phase=ScrubJob.Phase.READING)
            .update(phase=ScrubJob.Phase.WRITING, percent=95, lease_until=timezone.now() + scrub.LEASE)
        ):
            _merge_run(job, work, chunks)
    except scrub.ScrubFailed as exc:
        _fail(job, str(exc), work)
    except Exception as exc:
        logger.exception("scrub job %s chunk %s crashed", job_id, number)
        _fail(job, _("Internal error (%(kind)s).") % {"kind": type(exc).__name__}, work)


def _return_freed_memory() -> None:
    """Give the heap a chunk freed back to the system (glibc keeps it otherwise, fragmented, and
    a worker that ran ten chunks would start the next one, or the merge, with more of it)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (musl, macOS): nothing to trim
        return None


_LIBC = _glibc()


def _fail(job: ScrubJob, error: str, work: Path) -> None:
    if _jobs().filter(pk=job.pk, status=ScrubJob.Status.RUNNING).update(status=ScrubJob.Status.FAILED):
        job.status = ScrubJob.Status.RUNNING  # _finish writes the whole row
        scrub._finish(job, status=ScrubJob.Status.FAILED, error=error)  # noqa: SLF001
    shutil.rmtree(work, ignore_errors=True)


def _chunk_text(job: ScrubJob, number: int) -> str:
    size = job.file.size
    with job.file.open("rb") as raw:
        start, end = _boundary(raw, number, size), _boundary(raw, number + 1, size)
        raw.seek(start)
        data = raw.read(end - start)
    try:
        return str(data.decode("utf-8-sig" if number == 0 else "utf-8"))
    except UnicodeDecodeError:
        raise scrub.ScrubFailed(_("The file is not UTF-8 text.")) from None


PIECE_CHARS = 1 << 20  # a one-column chunk is split into lines a piece at a time


def _one_column(text: str, number: int) -> Iterator[phones.ParsedBatch] | None:
    """A list of one column without quotes (the usual export): its rows parsed about a megabyte
    of text at a time, straight from the bytes where the text is ASCII (no string per row);
    None to read it as CSV. Blank lines are not rows, as in CSV."""
    if "," in text or '"' in text or "\x00" in text:
        return None
    return _pieces(text, number)


def _pieces(text: str, number: int) -> Iterator[phones.ParsedBatch]:
    start = 0
    if number == 0:  # the header, if any, from the first lines
        head_end = text.find("\n", min(len(text), 4096))
        head_end = len(text) if head_end < 0 else head_end + 1
        lines = iter(text[:head_end].splitlines())
        _column, first = scrub._column(csv.reader(lines))  # noqa: SLF001  # consumes the header, if any
        rest = [line for line in lines if line and not line.isspace()]
        yield phones.parse_batch([first[0], *rest] if first else rest)
        start = head_end
    while start < len(text):
        end = text.find("\n", start + PIECE_CHARS)
        end = len(text) if end < 0 else end + 1
        piece = text[start:end]
        parsed = phones.parse_lines(piece.encode("ascii")) if piece.isascii() else None
        yield parsed or phones.parse_batch(
            [line for line in piece.splitlines() if line and not line.isspace()]
        )
        start = end


def _chunk(job: ScrubJob, work: Path, number: int, column: int) -> None:
    """Read, parse and look up one chunk; write its records (by bucket) and its counts."""
    text = _chunk_text(job, number)
    plain = _one_column(text, number) if column == 0 else None
    if plain is not None:
        _write_chunk(job, work, number, plain)
        return
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = invalid = 0
    reported = [0, 0]  # rows and invalid rows already added to the job's live counts
    invalid_rows: list[tuple[int, str]] | None = [] if job.with_reasons else None

    def report() -> None:
        _jobs().filter(pk=job.pk, status=ScrubJob.Status.RUNNING).update(
            rows_done=F("rows_done") + (rows - reported[0]),
            invalid=F("invalid") + (invalid - reported[1]),
            lease_until=timezone.now() + scrub.LEASE,
        )
        reported[:] = [rows, invalid]

    cells: list[str] = []
    row_numbers: list[int] = []
    parts: list[Any] = []
    try:
        if number == 0:
            column, first = scrub._column(reader)  # noqa: SLF001  # the header, if any, is consumed
            source: Any = reader if first is None else scrub._prepend(first, reader)  # noqa: SLF001
        else:
            source = reader
        for row in source:
            cell = row[column] if column < len(row) else ""
            if not cell or cell.isspace():
                if not any(c.strip() for c in row):
                    continue  # a blank line is not a row
                invalid += 1
                rows += 1
                if invalid_rows is not None:
                    invalid_rows.append((rows, cell))
                continue
            rows += 1
            cells.append(cell)
            row_numbers.append(rows)
            if len(cells) == scrub.READ_BATCH:
                invalid += _parse(cells, row_numbers, parts, invalid_rows)
            if rows % scrub.PROGRESS_EVERY == 0:
                report()
    except csv.Error as exc:
        raise scrub.ScrubFailed(
            _("Row %(row)d could not be read: %(error)s") % {"row": rows + 1, "error": exc}
        ) from None
    invalid += _parse(cells, row_numbers, parts, invalid_rows)
    _write_records(job, work, number, parts, rows=rows, invalid=invalid, invalid_rows=invalid_rows)
    report()


def _write_chunk(job: ScrubJob, work: Path, number: int, pieces: Iterator[phones.ParsedBatch]) -> None:
    """A chunk whose every cell is a row (one column, no blank cells), a piece at a time."""
    parts: list[Any] = []
    rows = invalid = 0
    invalid_rows: list[tuple[int, str]] | None = [] if job.with_reasons else None
    for parsed in pieces:
        count = len(parsed.valid)
        invalid += _add_records(parsed, np.arange(rows + 1, rows + count + 1), parts, invalid_rows)
        rows += count
    _write_records(job, work, number, parts, rows=rows, invalid=invalid, invalid_rows=invalid_rows)
    _jobs().filter(pk=job.pk, status=ScrubJob.Status.RUNNING).update(
        rows_done=F("rows_done") + rows,
        invalid=F("invalid") + invalid,
        lease_until=timezone.now() + scrub.LEASE,
    )


def _write_records(  # noqa: PLR0913
    job: ScrubJob,
    work: Path,
    number: int,
    parts: list[Any],
    *,
    rows: int,
    invalid: int,
    invalid_rows: list[tuple[int, str]] | None,
) -> None:
    records = np.concatenate(parts) if parts else np.zeros(0, CHUNK_RECORD)
    distinct = _look_up(job, records)
    # Live counts: the chunk's own repeats and suppressed numbers (repeats across chunks are
    # found by the merge, which sets the final counts).
    status = records["status"][distinct]
    _jobs().filter(pk=job.pk, status=ScrubJob.Status.RUNNING).update(
        duplicate=F("duplicate") + (len(records) - len(distinct)),
        suppressed=F("suppressed") + int((status != SENDABLE).sum()),
        platform_do_not_market=F("platform_do_not_market") + int((status == PLATFORM).sum()),
    )
    buckets = scrub.bucket_count(job.file.size)  # the same in every chunk of the job
    bucket = scrub._bucket_of(records["value"], buckets).astype(np.uint16)  # noqa: SLF001
    order = np.argsort(bucket, kind="stable")  # row order kept within a bucket (a radix sort: 16 bits)
    bounds = np.searchsorted(bucket[order], np.arange(buckets + 1)).tolist()
    np.save(work / f"c{number:05d}.npy", records[order])
    if invalid_rows is not None:  # asked for every row with its reason: the invalid ones as written
        (work / f"c{number:05d}-invalid.json").write_text(json.dumps(invalid_rows, ensure_ascii=False))
    partial = work / f".c{number:05d}.json"
    partial.write_text(json.dumps({"rows": rows, "invalid": invalid, "bounds": bounds}))
    partial.rename(work / f"c{number:05d}.json")  # last: the chunk is done


def _parse(
    cells: list[str], row_numbers: list[int], parts: list[Any], invalid_rows: list[tuple[int, str]] | None
) -> int:
    """Parse a batch of cells into records; returns how many were invalid."""
    if not cells:
        return 0
    bad = _add_records(
        phones.parse_batch(cells), np.asarray(row_numbers, dtype=np.int64), parts, invalid_rows
    )
    cells.clear()
    row_numbers.clear()
    return bad


def _add_records(
    parsed: phones.ParsedBatch, row_numbers: Any, parts: list[Any], invalid_rows: list[tuple[int, str]] | None
) -> int:
    """The valid numbers of a parsed batch as records (their rows: `row_numbers`); returns how
    many were invalid (and adds them, as written, to `invalid_rows` when given)."""
    valid = parsed.valid
    if invalid_rows is not None:
        invalid_rows.extend((int(row_numbers[i]), parsed.raw[i]) for i in np.flatnonzero(~valid).tolist())
    records = np.zeros(int(valid.sum()), dtype=CHUNK_RECORD)
    records["row"] = row_numbers[valid].astype(np.uint32)
    records["count"] = parsed.counts[valid]
    records["value"] = parsed.values[valid]
    parts.append(records)
    return len(valid) - len(records)


LOOK_UP_AT_ONCE = 1 << 17  # distinct numbers per look-up: its arrays stay small (a chunk has ~1M)


def _look_up(job: ScrubJob, records: Any) -> Any:
    """Each record's status, by look-ups of the chunk's distinct numbers, a slice at a time;
    returns the positions of their first occurrences."""
    values, first, inverse = np.unique(records["value"], return_index=True, return_inverse=True)
    status = np.empty(len(values), dtype=np.uint8)
    for start in range(0, len(values), LOOK_UP_AT_ONCE):
        end = start + LOOK_UP_AT_ONCE
        ones = np.ones(len(values[start:end]), dtype=bool)
        parsed = phones.ParsedBatch(
            (), values[start:end], records["count"][first[start:end]], ones, {}, ~ones
        )
        answer = batch_check(tenant_id=job.tenant_id, parsed=parsed, service_code=job.service_code or None)
        status[start:end] = np.where(
            answer.tenant_suppressed, SUPPRESSED, np.where(answer.suppressed, PLATFORM, SENDABLE)
        )
    records["status"] = status[inverse.ravel()]
    return first


def _merge_run(job: ScrubJob, work: Path, chunks: int) -> None:
    """Across chunks, per bucket: the first occurrence of each number wins; then the result in
    upload order, and the job's final counts."""
    metas = [json.loads((work / f"c{n:05d}.json").read_text()) for n in range(chunks)]
    offsets = np.cumsum([0] + [m["rows"] for m in metas])
    counts = scrub.Counts(rows=int(offsets[-1]), invalid=sum(m["invalid"] for m in metas))
    if counts.rows > scrub.MAX_ROWS:
        raise scrub.ScrubFailed(_("At most %(max)s numbers per list.") % {"max": f"{scrub.MAX_ROWS:,}"})
    stored = [np.load(work / f"c{n:05d}.npy", mmap_mode="r") for n in range(chunks)]
    outputs = []
    for bucket in range(len(metas[0]["bounds"]) - 1 if metas else 0):  # scrub.bucket_count() of the list
        records, owner = _bucket(stored, metas, bucket)
        first = np.ones(len(records), dtype=bool)
        first[1:] = records["value"][1:] != records["value"][:-1]
        counts.duplicate += int((~first).sum())
        path = work / f"out-{bucket:02d}"
        if job.with_reasons:  # every row, with its reason, in row order
            every = np.empty(len(records), dtype=REASON_RECORD)
            every["row"] = (offsets[owner] + records["row"]).astype(np.uint32)
            every["count"], every["value"] = records["count"], records["value"]
            every["reason"] = np.where(first, records["status"], DUPLICATE)
            every[np.argsort(every["row"], kind="stable")].tofile(path)
            outputs.append(path)
        records, owner = records[first], owner[first]
        status = records["status"]
        counts.suppressed += int((status != SENDABLE).sum())
        counts.platform_do_not_market += int((status == PLATFORM).sum())
        keep = status == SENDABLE
        out = np.empty(int(keep.sum()), dtype=scrub.RECORD)
        out["row"] = (offsets[owner[keep]] + records["row"][keep]).astype(np.uint32)
        out["count"] = records["count"][keep]
        out["value"] = records["value"][keep]
        out = out[np.argsort(out["row"], kind="stable")]
        counts.sendable += len(out)
        if not job.with_reasons:
            out.tofile(path)
            outputs.append(path)
    del stored
    result = work / "result.csv"
    if job.with_reasons:
        _write_reasons(outputs, _invalid_rows(work, chunks, offsets), result, counts.rows)
    else:
        scrub._merge(outputs, result, counts.rows)  # noqa: SLF001
    name = f"scrub/{job.tenant_id}/results/{job.pk}-{secrets.token_hex(8)}.csv"
    with result.open("rb") as handle:
        job.result.name = job.result.storage.save(name, File(handle, name=name))
    shutil.rmtree(work, ignore_errors=True)
    scrub._finish(job, status=ScrubJob.Status.DONE, counts=counts)  # noqa: SLF001


def _bucket(stored: list[Any], metas: list[dict[str, Any]], bucket: int) -> tuple[Any, Any]:
    """One bucket's records of every chunk, with their chunk numbers, by (number, chunk, row)."""
    parts, owners = [], []
    for n, (records, meta) in enumerate(zip(stored, metas, strict=True)):
        part = np.asarray(records[meta["bounds"][bucket] : meta["bounds"][bucket + 1]])
        parts.append(part)
        owners.append(np.full(len(part), n, dtype=np.int64))
    records = np.concatenate(parts) if parts else np.zeros(0, CHUNK_RECORD)
    owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
    order = np.lexsort((records["row"], owner, records["value"]))
    return records[order], owner[order]


def _invalid_rows(work: Path, chunks: int, offsets: Any) -> list[tuple[int, str]]:
    """Every chunk's invalid rows (as written), with their global row numbers, in order."""
    found: list[tuple[int, str]] = []
    for n in range(chunks):
        base = int(offsets[n])
        found.extend(
            (base + row, text) for row, text in json.loads((work / f"c{n:05d}-invalid.json").read_text())
        )
    return found


def _write_reasons(paths: list[Path], invalid: list[tuple[int, str]], result: Path, rows: int) -> None:
    """The result with reasons: every row as `row,phone,result`, in upload order, a window of
    rows at a time (the valid rows from the buckets, the invalid ones as written)."""
    maps = [
        np.memmap(p, dtype=REASON_RECORD, mode="r") if p.stat().st_size else np.zeros(0, REASON_RECORD)
        for p in paths
    ]
    starts = [0] * len(maps)
    at = 0
    with result.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(["row", "phone", "result"])
        for window_end in range(scrub.MERGE_WINDOW, rows + scrub.MERGE_WINDOW, scrub.MERGE_WINDOW):
            parts = []
            for index, records in enumerate(maps):
                end = int(np.searchsorted(records["row"], window_end, side="right"))
                parts.append(np.asarray(records[starts[index] : end]))
                starts[index] = end
            window = np.concatenate(parts) if parts else np.zeros(0, REASON_RECORD)
            lines: list[tuple[int, str, str]] = [
                (row, f"+{value}", REASONS[reason])
                for row, value, reason in zip(
                    window["row"].tolist(), window["value"].tolist(), window["reason"].tolist(), strict=True
                )
            ]
            while at < len(invalid) and invalid[at][0] <= window_end:
                lines.append((invalid[at][0], invalid[at][1], "invalid"))
                at += 1
            lines.sort()
            out.writerows(lines)
