"""Issue 19, items 2 and 3: uploaded files never outlive their use, and a request that
never completes keeps its raw number only until its erasure deadline.

Each test goes through the real entry points (the admin's upload form, the partner API,
the Celery tasks beat runs) and ends by looking for the raw number everywhere: every
table, every file under LANZUAN_VAR_DIR and MEDIA_ROOT, and this session's Redis keys.
The numbers are this file's own, so another test's files in the session's var dir never
count against it."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import time_machine
from django.conf import settings
from django.core.cache import caches
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from lanzuan import phones
from notifications.models import Message
from unsubscribe.models import (
    Service,
    Step,
    Subscription,
    SubscriptionImport,
    Suppression,
    UnsubscribeRequest,
)
from unsubscribe.partner import scrub
from unsubscribe.partner.models import ScrubJob, SendLogImport
from unsubscribe.retention.selectors import erasure_deadline
from unsubscribe.tasks import expire_stored_files, purge_expired_records

from ..httpserver import http_endpoint
from ..pipeline_helpers import file, http_target, subscriber
from .scan import database_findings, file_findings, raw_number_findings, redis_findings, unique_number

if TYPE_CHECKING:
    from celery import Celery
    from django.contrib.auth.models import User
    from django.test import Client
    from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

    from tenants.models import Tenant

    from ..pipeline_helpers import Pipeline

# Numbers of their own for each test (set by `numbers_of_this_test`): a session's tests share
# their var dir, media folder and outbox, so a fixed number could be found in another test's files.
OPTED_OUT = NEW = STUCK = ""


@pytest.fixture(autouse=True)
def numbers_of_this_test() -> None:
    global OPTED_OUT, NEW, STUCK  # noqa: PLW0603 (read at call time by the tests and helpers here)
    OPTED_OUT, NEW, STUCK = unique_number(), unique_number(), unique_number()


# The file gateway's outbox is left out: it is the person's phone (README, "The file gateway").
def files_holding(*numbers: str) -> set[str]:
    """The files (as the every-place scan names them) that hold one of `numbers`."""
    findings = file_findings(*numbers, skip_outbox=True)
    return {finding.removeprefix("file ").split(": ")[0] for finding in findings}


def no_raw_number_anywhere(*numbers: str) -> None:
    findings = raw_number_findings(*numbers, skip_outbox=True)
    assert findings == [], "a raw number is still in the database, a file or Redis"


def media_files(under: str) -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / under
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def aged(path: Path, age: timedelta) -> None:
    """Make a file (or folder) look as old as a crashed run would have left it."""
    stamp = time.time() - age.total_seconds()
    os.utime(path, (stamp, stamp))


@pytest.fixture
def offers(tenant_a: Tenant) -> Service:
    return Service.objects.create(tenant=tenant_a, name="Offers", code="offers")


@pytest.fixture
def staff(alice: User, client: Client, eager_celery: Celery) -> Client:
    client.force_login(alice)
    return client


@pytest.fixture
def api_a(api_key_a: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_a}")
    return api


def opted_out(tenant: Tenant, e164: str) -> None:
    Suppression.objects.create(
        tenant=tenant,
        phone_hash=phones.tenant_phone_hash(tenant.pk, e164),
        phone_masked=phones.mask(e164),
        scope="*",
    )


def csv_upload(*numbers: str) -> SimpleUploadedFile:
    lines = ["phone,service,consent_source,consent_at", *(f"{n},offers,web," for n in numbers)]
    return SimpleUploadedFile("subs.csv", ("\n".join(lines) + "\n").encode(), content_type="text/csv")


# --- item 2: uploads -------------------------------------------------------------------------


def test_an_admin_import_leaves_no_file_and_no_raw_number_in_any_file(
    tenant_a: Tenant,
    offers: Service,
    staff: Client,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    # given a number that opted out, in a CSV uploaded through the admin's form
    opted_out(tenant_a, OPTED_OUT)
    before = set(media_files("imports"))  # other tests' files (a session shares its media folder)
    form = staff.get(reverse("admin:unsubscribe_subscription_import"))
    assert form.status_code == 200 and 'data-testid="import-file-kept"' in form.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            reverse("admin:unsubscribe_subscription_import"),
            {"tenant": tenant_a.pk, "file": csv_upload(OPTED_OUT, NEW, "not-a-number")},
        )
    assert response.status_code == 302, response.content

    # then the import's counts and errors are kept, and its file is gone
    import_ = SubscriptionImport.objects.for_tenant(tenant_a).get()
    assert import_.status == "done"
    assert (import_.created, import_.skipped_opted_out, import_.invalid) == (1, 1, 1)
    assert len(import_.errors) == 1 and "3" not in import_.errors[0].split(":")[-1]
    assert not import_.file and import_.file.name == ""
    assert set(media_files("imports")) - before == set()
    progress = staff.get(response["Location"], {"format": "json"}).json()
    assert progress["status"] == "done" and progress["skipped_opted_out"] == 1
    # nothing lost: the new number is subscribed; no duplicate: once
    assert Subscription.objects.for_tenant(tenant_a).filter(phone=NEW).count() == 1
    # the opted-out number is stored nowhere, and no file holds either number
    assert database_findings(OPTED_OUT) == []
    assert files_holding(OPTED_OUT, NEW) == set()
    assert redis_findings(OPTED_OUT, NEW) == []


def test_deleting_an_import_deletes_its_upload(tenant_a: Tenant, offers: Service) -> None:
    before = set(media_files("imports"))  # other tests' files (a session shares its media folder)
    import_ = SubscriptionImport.objects.create(tenant=tenant_a, file=csv_upload(NEW))
    assert set(media_files("imports")) - before
    import_.delete()
    assert set(media_files("imports")) - before == set()


def test_a_scrub_job_through_the_api_leaves_no_input_file_and_its_result_expires(
    tenant_a: Tenant,
    api_a: APIClient,
    eager_celery: Celery,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    opted_out(tenant_a, OPTED_OUT)
    body = f"phone\n{OPTED_OUT}\n{NEW}\n{NEW}\nnope\n".encode()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = api_a.post(
            "/api/v1/scrub-jobs",
            {"file": SimpleUploadedFile("list.csv", body, content_type="text/csv")},
            format="multipart",
        )
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    mine = f"scrub/{tenant_a.pk}"  # this tenant's folder: other tests' jobs keep theirs
    assert len(media_files(mine)) == 1  # the list, until it is scrubbed
    # a run of this job whose worker died left its bucket files behind
    leftover = scrub.work_root() / f"scrub-{job_id}-crashed"
    leftover.mkdir(parents=True)
    (leftover / "in-00").write_text(f"0000000001\t{OPTED_OUT}\n")

    for callback in queued:  # the commit hands the job to a worker (eager here)
        callback()

    job = ScrubJob.objects.for_tenant(tenant_a).get(pk=job_id)
    assert (job.status, job.suppressed, job.sendable, job.duplicate, job.invalid) == ("done", 1, 1, 1, 1)
    assert not job.file  # the list is gone once scrubbed
    assert [p.parent.name for p in media_files(mine)] == ["results"]
    assert not leftover.exists() and not list(scrub.work_root().glob(f"scrub-{job_id}-*"))
    # the result holds only what the partner needs: the sendable number, once
    result = api_a.get(f"/api/v1/scrub-jobs/{job_id}/result")
    assert b"".join(result.streaming_content).decode().splitlines() == ["phone", NEW]  # type: ignore[attr-defined]
    assert files_holding(OPTED_OUT) == set()
    assert {Path(f).parent.name for f in files_holding(NEW)} == {"results"}

    # when the result's 7 days are over, the hourly file expiry deletes it
    with time_machine.travel(timezone.now() + scrub.RESULT_TTL + timedelta(hours=2), tick=True):
        counts = expire_stored_files()
        assert counts["scrub_results_rows"] == 1
        gone = api_a.get(f"/api/v1/scrub-jobs/{job_id}/result")
    assert gone.status_code == 404
    job.refresh_from_db()
    assert job.status == "done" and (job.suppressed, job.sendable) == (1, 1)  # the counts stay
    assert media_files(mine) == []
    no_raw_number_anywhere(OPTED_OUT, NEW)


def test_the_file_expiry_removes_abandoned_uploads_and_keeps_fresh_ones(
    tenant_a: Tenant,
    offers: Service,
    staff: Client,
    api_a: APIClient,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    # given an admin import and a scrub job whose work never ran (the broker lost it) ...
    with django_capture_on_commit_callbacks(execute=False):
        staff.post(
            reverse("admin:unsubscribe_subscription_import"),
            {"tenant": tenant_a.pk, "file": csv_upload(STUCK)},
        )
        api_a.post(
            "/api/v1/scrub-jobs",
            {"file": SimpleUploadedFile("l.csv", f"{STUCK}\n".encode(), content_type="text/csv")},
            format="multipart",
        )
        api_a.post(
            "/api/v1/send-logs",
            {"file": SimpleUploadedFile("s.csv", f"phone,sent_at\n{STUCK},2026-03-02T10:00:00Z\n".encode())},
            format="multipart",
        )
    import_ = SubscriptionImport.objects.for_tenant(tenant_a).get()
    job = ScrubJob.objects.for_tenant(tenant_a).get()
    send_log = SendLogImport.objects.for_tenant(tenant_a).get()
    assert import_.status == "pending" and job.status == "pending" and send_log.status == "pending"
    # ... a file no row names any more, and the work files of a crashed scrub
    orphan = Path(settings.MEDIA_ROOT) / "imports" / "2020" / "01" / "orphan.csv"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_text(f"phone\n{STUCK}\n")
    crashed = scrub.work_root() / "scrub-999999-x"
    crashed.mkdir(parents=True, exist_ok=True)
    (crashed / "out-00").write_text(f"0000000001\t{STUCK}\n")
    assert len(files_holding(STUCK)) == 5

    # when the hourly file expiry runs within the day, nothing goes
    counts = expire_stored_files()
    assert not any(counts.values())
    assert len(files_holding(STUCK)) == 5

    # then a day and more later (the clock frozen there), the abandoned uploads go
    later = timezone.now() + timedelta(hours=26)
    aged(orphan, timedelta(hours=26))
    aged(crashed / "out-00", timedelta(hours=26))
    aged(crashed, timedelta(hours=26))
    with time_machine.travel(later, tick=False):
        fresh = SubscriptionImport.objects.create(tenant=tenant_a, file=csv_upload(NEW))  # uploaded just now
        aged(Path(fresh.file.path), timedelta(0))  # the disk's clock is not frozen: its time is now too
        counts = expire_stored_files()
    assert counts["subscription_imports_rows"] == 1 and counts["scrub_uploads_rows"] == 1
    assert counts["send_log_uploads_rows"] == 1
    # (files: at least these; another test's leftovers in the shared media folder may go too)
    assert counts["subscription_imports_files"] >= 1 and counts["scrub_work_files_files"] >= 1
    import_.refresh_from_db()
    job.refresh_from_db()
    assert import_.status == "failed" and not import_.file
    assert "24" in import_.errors[-1]  # says why, in the tenant's language
    assert job.status == "failed" and not job.file and "24" in job.error
    send_log.refresh_from_db()
    assert send_log.status == "failed" and not send_log.file and "24" in send_log.error
    assert not orphan.exists() and not crashed.exists()
    # the fresh upload stays: its import may still run
    fresh.refresh_from_db()
    assert fresh.file and Path(fresh.file.path).exists()
    fresh.delete()
    no_raw_number_anywhere(STUCK, NEW)


def test_the_file_expiry_drops_expired_entries_of_a_file_cache(
    db: None, settings: Settings, tmp_path: Path
) -> None:
    """`CACHE_URL=file` (development) keeps an entry on disk until it is read: a queued code's
    number would outlive its expiry there."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    }
    caches["default"].set("optout:platform-sms:x", {"to": STUCK}, timeout=60)
    caches["default"].set("kept", {"to": NEW}, timeout=3600)
    assert expire_stored_files()["cache_entries"] == 0
    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=False):
        assert expire_stored_files()["cache_entries"] == 1
    assert len(list((tmp_path / "cache").iterdir())) == 1 and caches["default"].get("kept") == {"to": NEW}


# --- item 3: a request that never completes ---------------------------------------------------


def test_a_request_stuck_in_needs_attention_is_erased_at_its_deadline_by_the_purge_task(
    tenant_a: Tenant, alice: User, client: Client, api_a: APIClient, pipeline: Pipeline
) -> None:
    tenant_a.erasure_delay_hours = 24
    tenant_a.save()
    subscriber(tenant_a, STUCK)
    # given a request whose termination target refuses it for good, echoing the number
    with http_endpoint(script=[(400, 0.0)], answer="echo") as endpoint:
        http_target(tenant_a, endpoint.url)
        with pipeline():
            request = file(tenant_a, STUCK)
    request.refresh_from_db()
    assert request.state == "needs_attention" and request.phone == STUCK
    assert (
        Message.objects.for_tenant(tenant_a)
        .filter(to_hash=phones.tenant_phone_hash(tenant_a.pk, STUCK))
        .exists()
    )  # confirmed
    # and a message to the number still queued (its gateway down): it keeps the number meanwhile
    Message.objects.create(
        tenant=tenant_a,
        channel="sms",
        event="unsubscribe_completed",
        language="zh-hans",
        to=STUCK,
        to_masked=phones.mask(STUCK),
        to_hash=phones.tenant_phone_hash(tenant_a.pk, STUCK),
        body="x",
    )
    deadline = (
        request.received_at
        + timedelta(hours=24)
        + timedelta(days=settings.LANZUAN_STALLED_ERASURE_CEILING_DAYS)
    )
    assert request.erasure_due_at == deadline == erasure_deadline(request)

    # staff see the deadline: in the request list, on its page, and in the API
    client.force_login(alice)
    listing = client.get(reverse("admin:unsubscribe_unsubscriberequest_changelist")).content.decode()
    assert f'data-testid="erasure-due" datetime="{deadline.isoformat()}"' in listing
    assert 'class="sortable column-erasure_due' in listing  # its own column, sortable by the deadline
    page = client.get(
        reverse("admin:unsubscribe_unsubscriberequest_change", args=[request.pk])
    ).content.decode()
    assert f'data-testid="erasure-deadline" data-due="{deadline.isoformat()}"' in page
    body = api_a.get(f"/api/v1/unsubscribe-requests/{request.reference}").json()
    assert datetime.fromisoformat(body["erasure_due_at"]) == deadline and body["state"] == "needs_attention"

    # when the hourly purge runs before the deadline, the number stays (staff may still fix it)
    with time_machine.travel(deadline - timedelta(hours=1), tick=False):
        assert purge_expired_records()["stalled_erased"] == 0
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).get(pk=request.pk).phone == STUCK

    # and when it runs past the deadline, the raw number is erased although the request never completed
    with time_machine.travel(deadline + timedelta(minutes=5), tick=False):
        assert purge_expired_records()["stalled_erased"] == 1
        assert purge_expired_records()["stalled_erased"] == 0  # once
    request = UnsubscribeRequest.objects.for_tenant(tenant_a).get(pk=request.pk)
    assert request.phone == "" and request.state == "needs_attention"
    assert request.phone_hash == phones.tenant_phone_hash(
        tenant_a.pk, STUCK
    ) and request.phone_masked == phones.mask(STUCK)
    assert request.attention_reason.startswith("the number was erased at the erasure deadline")
    assert "HTTP 400" in request.attention_reason  # why it needed attention is still there
    steps = {
        (s.kind, s.source or "target"): s for s in Step.objects.for_tenant(tenant_a).filter(request=request)
    }
    target = steps[("terminate", "target")]
    assert target.status == "failed" and target.last_error.startswith("not done by the erasure deadline")
    assert all(s.status == "succeeded" for (kind, _src), s in steps.items() if kind == "erase")
    assert (
        not Message.objects.for_tenant(tenant_a)
        .exclude(to="")
        .filter(to_hash=phones.tenant_phone_hash(tenant_a.pk, STUCK))
    )
    # the suppression stays: the opt-out is honoured for good
    assert (
        Suppression.objects.for_tenant(tenant_a)
        .filter(phone_hash=phones.tenant_phone_hash(tenant_a.pk, STUCK))
        .exists()
    )
    # staff read why (in Chinese once the catalogue has the new sentences)
    page = client.get(
        reverse("admin:unsubscribe_unsubscriberequest_change", args=[request.pk])
    ).content.decode()
    assert "删除期限" in page or "erasure deadline" in page
    no_raw_number_anywhere(STUCK)


def test_a_request_never_advanced_is_erased_at_its_deadline_and_raised_to_needs_attention(
    tenant_a: Tenant, api_a: APIClient, eager_celery: Celery
) -> None:
    # given a request filed while the broker was down, that no worker ever advanced
    subscriber(tenant_a, STUCK)
    request = file(tenant_a, STUCK)
    assert request.state == "suppressed"
    deadline = erasure_deadline(request)
    # when the purge task runs past its deadline
    with time_machine.travel(deadline + timedelta(hours=1), tick=False):
        assert purge_expired_records() == {
            "stalled_erased": 1,
            "purged": 0,
            "consents_purged": 0,
            "send_logs_purged": 0,
        }
    # then the number is gone everywhere Lanzuan kept it, and staff are told
    request = UnsubscribeRequest.objects.for_tenant(tenant_a).get(pk=request.pk)
    assert request.state == "needs_attention" and request.needs_attention_at is not None
    assert request.phone == "" and request.erasure_due_at == deadline
    steps = list(Step.objects.for_tenant(tenant_a).filter(request=request))
    # Lanzuan's own sources did their part by the number's hash: subscriptions ended, data erased
    assert {s.status for s in steps if s.source} == {"succeeded"}
    assert Subscription.objects.for_tenant(tenant_a).filter(status="active").count() == 0
    # what needed the number (here the confirmation) is left to staff, saying why
    (confirm,) = [s for s in steps if not s.source]
    assert confirm.status == "failed" and "erasure deadline" in confirm.last_error
    body = api_a.get(f"/api/v1/unsubscribe-requests/{request.reference}").json()
    assert body["state"] == "needs_attention" and datetime.fromisoformat(body["erasure_due_at"]) == deadline
    no_raw_number_anywhere(STUCK)


def test_a_retried_request_erases_as_planned_not_at_the_deadline(
    tenant_a: Tenant, alice: User, client: Client, pipeline: Pipeline
) -> None:
    # given a request whose erasure at the provider's system failed once for good
    subscriber(tenant_a, STUCK)
    with http_endpoint(script=[(400, 0.0), (200, 0.0)]) as endpoint:
        http_target(tenant_a, endpoint.url, purpose="erase")
        with pipeline():
            request = file(tenant_a, STUCK)
        request.refresh_from_db()
        assert request.state == "needs_attention" and request.erasing_at is not None
        assert request.erasure_due_at == erasure_deadline(request)  # while it waits for staff
        # when staff retry it from the admin
        client.force_login(alice)
        with pipeline():
            response = client.post(
                reverse("admin:unsubscribe_unsubscriberequest_changelist"),
                {"action": "retry_requests", "_selected_action": [request.pk]},
            )
        assert response.status_code == 302
    # then it erases now, as planned before it failed, and completes
    request.refresh_from_db()
    assert request.state == "completed" and request.phone == ""
    assert request.erasure_due_at is not None and request.erasure_due_at <= timezone.now()
    assert len(endpoint.received) == 2  # one call refused, one done: no duplicate
    no_raw_number_anywhere(STUCK)
