"""Partner-side records: scrub jobs, webhook endpoints and their deliveries.

Every model is tenant-owned. None of them stores a raw number: a scrub job's
upload and result are files under MEDIA_ROOT (the tenant's own list, deleted with
the job), and webhook payloads carry only phone_hash and phone_masked.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from lanzuan.fields import EncryptedTextField
from tenants.scoping import TenantOwnedModel
from unsubscribe.domain_events import EVENTS

# Partners subscribe by the code; staff read what it means, with the code.
EVENT_LABELS = {
    "request.created": _("Request filed"),
    "request.completed": _("Request completed"),
    "request.needs_attention": _("Request needs attention"),
    "suppression.added": _("Number suppressed"),
    "suppression.lifted": _("Suppression lifted (re-subscribed)"),
    "request.deadline_breached": _("Request past a deadline"),
    "suppression.violated": _("Messages sent after an opt-out"),
    "request.still_receiving": _("Person reports messages still arriving"),
    "preference.recorded": _("Preference recorded (fewer messages, another channel)"),
}
EVENT_CHOICES = [(event, format_lazy("{} ({})", EVENT_LABELS.get(event, event), event)) for event in EVENTS]


def _scrub_upload_to(instance: ScrubJob, filename: str) -> str:
    return f"scrub/{instance.tenant_id}/uploads/{uuid.uuid4().hex}.csv"


class ScrubJob(TenantOwnedModel):
    """A list of numbers checked against the tenant's suppressions in the background.

    The result file holds the numbers that may be sent to (E.164, in upload order,
    each once). Counts: every non-blank data row is exactly one of invalid,
    duplicate (a number seen earlier in the file), suppressed or sendable.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    class Phase(models.TextChoices):
        WAITING = "waiting", _("Waiting")
        READING = "reading", _("Reading and validating")
        SCRUBBING = "scrubbing", _("Removing duplicates and suppressed numbers")
        WRITING = "writing", _("Writing the result")
        FINISHED = "finished", _("Finished")

    file = models.FileField(_("uploaded list"), upload_to=_scrub_upload_to, max_length=300)
    original_name = models.CharField(_("file name"), max_length=200, blank=True)
    service_code = models.CharField(
        _("service"), max_length=50, blank=True, help_text=_("Empty: only opt-outs of all marketing count.")
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    phase = models.CharField(_("phase"), max_length=10, choices=Phase.choices, default=Phase.WAITING)
    total_rows = models.PositiveIntegerField(_("rows"), default=0)
    rows_done = models.PositiveIntegerField(_("rows read"), default=0)
    percent = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    suppressed = models.PositiveIntegerField(_("suppressed"), default=0)
    platform_do_not_market = models.PositiveIntegerField(
        _("of them on the platform-wide do-not-market list"),
        default=0,
        help_text=_("Suppressed because the person blocked marketing from every provider (the hub)."),
    )
    invalid = models.PositiveIntegerField(_("invalid"), default=0)
    duplicate = models.PositiveIntegerField(_("duplicates"), default=0)
    sendable = models.PositiveIntegerField(_("sendable"), default=0)
    # Asked for every row with its reason (row, number, result): the result then lists every row,
    # not only the sendable numbers.
    with_reasons = models.BooleanField(_("every row with its reason"), default=False)
    result = models.FileField(_("result"), blank=True, max_length=300)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    # A worker holds the job until lease_until and extends it as it goes; a job
    # whose worker died is claimed again once the lease has run out.
    lease_until = models.DateTimeField(_("claimed until"), null=True, blank=True)
    dispatched_at = models.DateTimeField(_("dispatched"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("scrub job")
        verbose_name_plural = _("scrub jobs")

    def __str__(self) -> str:
        return f"{self.original_name or self.pk} ({self.get_status_display()})"


def _send_log_upload_to(instance: SendLogImport, filename: str) -> str:
    return f"sendlogs/{instance.tenant_id}/uploads/{uuid.uuid4().hex}.csv"


class SendLogImport(TenantOwnedModel):
    """A CSV of send records read in the background, in chunks (`POST /api/v1/send-logs`).

    Each chunk is stored and counted in one transaction, so `rows_done` and the counts are exact
    at every moment, and a run whose worker died goes on from the last chunk. The upload is
    deleted when the job ends. Counts: every non-blank data row is exactly one of accepted,
    duplicate or invalid; `violations` are accepted rows sent after an opt-out.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    file = models.FileField(_("uploaded file"), upload_to=_send_log_upload_to, max_length=300)
    original_name = models.CharField(_("file name"), max_length=200, blank=True)
    submitted_by = models.CharField(_("submitted by"), max_length=200, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    total_rows = models.PositiveIntegerField(_("lines"), default=0)
    rows_done = models.PositiveIntegerField(_("rows read"), default=0)
    # Where the next chunk starts: the CSV's line number after the last chunk stored.
    lines_done = models.PositiveIntegerField(_("lines read"), default=0)
    accepted = models.PositiveIntegerField(_("accepted"), default=0)
    duplicates = models.PositiveIntegerField(_("duplicates"), default=0)
    invalid = models.PositiveIntegerField(_("invalid"), default=0)
    violations = models.PositiveIntegerField(_("messages after opt-out"), default=0)
    errors = models.JSONField(_("first errors"), default=list, blank=True)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    lease_until = models.DateTimeField(_("claimed until"), null=True, blank=True)
    dispatched_at = models.DateTimeField(_("dispatched"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("send log import")
        verbose_name_plural = _("send log imports")

    def __str__(self) -> str:
        return f"{self.original_name or self.pk} ({self.get_status_display()})"


class WebhookEndpoint(TenantOwnedModel):
    """Where a tenant receives event notifications, signed with its secret."""

    url = models.URLField(_("URL"), max_length=500)
    description = models.CharField(_("description"), max_length=200, blank=True)
    events = models.JSONField(
        _("events"), default=list, blank=True, help_text=_("Events delivered to this URL.")
    )
    secret = EncryptedTextField(_("signing secret"), max_length=200)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    history = HistoricalRecords(excluded_fields=["secret"])

    class Meta:
        ordering = ["tenant_id", "url"]
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")

    def __str__(self) -> str:
        return self.url

    def wants(self, event: str) -> bool:
        return self.is_active and isinstance(self.events, list) and event in self.events


class WebhookDelivery(TenantOwnedModel):
    """One event for one endpoint: its own outbox row and its delivery log.

    Due when status is pending/retrying and next_attempt_at has passed; the task
    and the sweep both claim it with a conditional update, so it is sent by one
    worker at a time. Retried with backoff until give_up_at (24 h).
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RETRYING = "retrying", _("Retrying")
        SUCCEEDED = "succeeded", _("Delivered")
        FAILED = "failed", _("Failed")

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("endpoint")
    )
    event = models.CharField(_("event"), max_length=40, choices=EVENT_CHOICES)
    event_id = models.UUIDField(_("event id"), default=uuid.uuid4, editable=False)
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True, db_index=True)
    give_up_at = models.DateTimeField(_("retry until"), null=True, blank=True)
    lease_until = models.DateTimeField(_("claimed until"), null=True, blank=True)
    dispatched_at = models.DateTimeField(_("dispatched"), null=True, blank=True)
    response_code = models.PositiveIntegerField(_("response code"), null=True, blank=True)
    response_excerpt = models.TextField(_("response"), blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    last_attempt_at = models.DateTimeField(_("last attempt"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            # fair dispatch: one tenant's open deliveries, in flight or due (partner/webhooks.py)
            models.Index(fields=["tenant", "status", "next_attempt_at"], name="partner_delivery_tenant_due"),
        ]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint_id} ({self.status})"
