"""Scrub jobs split into chunks (partner/scrub_chunks.py): run by two real worker processes,
many chunks give byte for byte the result and the counts of one chunk run in this process."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from lanzuan import phones
from tenants.models import Tenant
from unsubscribe.donotmarket.services import platform_do_not_market_lift, platform_do_not_market_set
from unsubscribe.partner import scrub, scrub_chunks
from unsubscribe.partner.models import ScrubJob
from unsubscribe.partner.tasks import run_scrub_job
from unsubscribe.suppressions.services import suppressions_add

from .workers import celery_worker, purge_queue, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

EVERYWHERE = "+8613600000007"


def _list(rng: random.Random, *, one_column: bool) -> bytes:
    """A header, then 6,000 rows: repeats near and far (across chunks), odd forms, invalid
    rows, blank lines, numbers suppressed at the tenant and on the platform-wide list; as a CSV
    of two columns, or one column (read without the csv module)."""
    lines = ["phone" if one_column else "name,phone"]
    seen: list[str] = []
    for i in range(6_000):
        roll = rng.random()
        if roll < 0.1 and seen:
            number = rng.choice(seen)
        elif roll < 0.15:
            number = f"+86137{rng.randrange(100):08d}"  # suppressed ones are among these
        elif roll < 0.17:
            number = "not-a-number"
        elif roll < 0.19:
            number = f"138 {rng.randrange(10**4):04d} {rng.randrange(10**4):04d}"
        elif roll < 0.2:
            number = EVERYWHERE
        else:
            number = f"+86139{rng.randrange(10**8):08d}"
        seen.append(number)
        lines.append(number if one_column else f"row {i},{number}")
        if roll > 0.995:
            lines.append("")
    return ("\n".join(lines) + "\n").encode()


def _job(tenant: Tenant, data: bytes, *, with_reasons: bool = False) -> ScrubJob:
    job = ScrubJob(
        tenant=tenant, original_name="list.csv", total_rows=data.count(b"\n"), with_reasons=with_reasons
    )
    job.file.save("list.csv", SimpleUploadedFile("list.csv", data), save=False)
    job.save()
    return job


@pytest.mark.parametrize("one_column", [False, True])
def test_a_scrub_split_over_two_worker_processes_gives_the_result_of_one(
    tenant_a: Tenant, tmp_path: Path, one_column: bool
) -> None:
    # given a tenant with opt-outs (with and without a lookup key), a platform-wide entry, a list
    for n in range(0, 100, 3):
        number = f"+86137{n:08d}"
        suppressions_add(
            tenant=tenant_a,
            phone_hash=phones.tenant_phone_hash(tenant_a.pk, number),
            phone_masked=phones.mask(number),
            scopes=["*"],
            channel="api",
            e164=number if n % 2 else None,
        )
    platform_do_not_market_set(e164=EVERYWHERE, evidence={"test": True})
    data = _list(random.Random(14), one_column=one_column)
    try:
        # when it is scrubbed once here, as one chunk
        alone = _job(tenant_a, data, with_reasons=one_column)  # and with every row's reason
        scrub.scrub_job_run(alone.pk, inline=True)
        alone.refresh_from_db()
        assert alone.status == ScrubJob.Status.DONE, alone.error
        # and once by a worker with two processes, in chunks of 4 KiB
        purge_queue()
        with celery_worker(tmp_path, concurrency=2, LANZUAN_SCRUB_CHUNK_BYTES="4096") as worker:
            split = _job(tenant_a, data, with_reasons=one_column)
            scrub.scrub_job_dispatch(split.pk)
            finished = (ScrubJob.Status.DONE, ScrubJob.Status.FAILED)
            wait_for(
                lambda: ScrubJob.objects.unscoped(reason="test").get(pk=split.pk).status in finished,
                120,
                message=worker.output()[-3000:],
            )
            log = worker.output()
        split.refresh_from_db()
        # then the result and the counts are the same, byte for byte
        assert split.status == ScrubJob.Status.DONE, split.error
        chunks = {int(m) for m in re.findall(r"chunk \d+ of (\d+)", log)}
        processes = set(re.findall(r"chunk \d+ of \d+ in process (\d+)", log))
        assert chunks and min(chunks) > 10, log[-2000:]
        assert len(processes) == 2, log[-2000:]
        fields = ("total_rows", "invalid", "duplicate", "suppressed", "platform_do_not_market", "sendable")
        assert [getattr(split, f) for f in fields] == [getattr(alone, f) for f in fields]
        assert alone.suppressed > 0 and alone.duplicate > 0 and alone.invalid > 0
        assert alone.platform_do_not_market > 0
        with alone.result.open("rb") as one, split.result.open("rb") as many:
            assert one.read() == many.read()
    finally:
        platform_do_not_market_lift(e164=EVERYWHERE, evidence={"test": True})


def test_counts_grow_while_the_chunks_run(
    tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    # given a list of several chunks, and a merge held back (as while other chunks still run)
    for n in range(0, 100, 3):
        number = f"+86137{n:08d}"
        suppressions_add(
            tenant=tenant_a,
            phone_hash=phones.tenant_phone_hash(tenant_a.pk, number),
            phone_masked=phones.mask(number),
            scopes=["*"],
            channel="api",
            e164=number,
        )
    data = _list(random.Random(15), one_column=True)
    settings.SCRUB_CHUNK_BYTES = 4096
    monkeypatch.setattr(scrub_chunks, "_merge_run", lambda job, work, chunks: None)
    job = _job(tenant_a, data)
    # when every chunk has run
    scrub.scrub_job_run(job.pk, inline=True)
    job.refresh_from_db()
    # then the job shows its rows, invalid rows, and the chunks' own repeats and suppressed numbers
    assert job.status == ScrubJob.Status.RUNNING and job.phase == ScrubJob.Phase.WRITING
    assert job.rows_done == len([line for line in data.decode().splitlines()[1:] if line.strip()])
    assert job.invalid > 0 and job.duplicate > 0 and job.suppressed > 0
    # and the merge's counts (repeats across chunks found too) replace them
    monkeypatch.undo()
    settings.SCRUB_CHUNK_BYTES = 4096
    done = _job(tenant_a, data)
    scrub.scrub_job_run(done.pk, inline=True)
    done.refresh_from_db()
    assert done.status == ScrubJob.Status.DONE
    assert (done.rows_done, done.invalid) == (job.rows_done, job.invalid)
    assert done.duplicate >= job.duplicate and done.suppressed <= job.suppressed
    assert done.duplicate + done.suppressed + done.sendable + done.invalid == done.total_rows


def test_every_row_with_its_reason_on_request(api_key_a: str, tenant_a: Tenant) -> None:
    # given a number suppressed, another on the platform-wide list, and a list with every case
    number = "+8613700000001"
    suppressions_add(
        tenant=tenant_a,
        phone_hash=phones.tenant_phone_hash(tenant_a.pk, number),
        phone_masked=phones.mask(number),
        scopes=["*"],
        channel="api",
        e164=number,
    )
    platform_do_not_market_set(e164=EVERYWHERE, evidence={"test": True})
    text = "name,phone\nAnn,13700000002\nBob,13700000001\nCy,not a number\n,\nDi,+86 137 0000 0002\nEd,\nFlo,13600000007\n"
    api = APIClient(HTTP_AUTHORIZATION=f"Api-Key {api_key_a}")
    try:
        # when it is scrubbed with reasons asked for
        response = api.post(
            "/api/v1/scrub-jobs",
            {"file": SimpleUploadedFile("l.csv", text.encode(), content_type="text/csv"), "reasons": "true"},
            format="multipart",
        )
        assert response.status_code == 202, response.content
        assert response.json()["reasons"] is True
        run_scrub_job(response.json()["id"])
        done = api.get(f"/api/v1/scrub-jobs/{response.json()['id']}").json()
        body = b"".join(api.get(done["result_url"]).streaming_content).decode()  # type: ignore[attr-defined]
    finally:
        platform_do_not_market_lift(e164=EVERYWHERE, evidence={"test": True})
    # then the result lists every row (the blank line is not a row) with its reason
    assert body.splitlines() == [
        "row,phone,result",
        "1,+8613700000002,sendable",
        "2,+8613700000001,suppressed",
        "3,not a number,invalid",
        "4,+8613700000002,duplicate",
        "5,,invalid",
        "6,+8613600000007,platform_do_not_market",
    ]
    assert (done["sendable"], done["suppressed"], done["duplicate"], done["invalid"]) == (1, 2, 1, 2)
