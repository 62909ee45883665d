"""Per-tenant message templates, gateway settings, and every message sent.

A `Message` holds the raw recipient only until it reaches a final status; after
that, a keyed hash (to find it again for erasure) and a masked form remain. One-time
codes never reach the database: an OTP message stores its body with the code
replaced by ******.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from lanzuan.fields import EncryptedTextField
from tenants.scoping import TenantOwnedModel

from .catalogue import EVENT_VARIABLES, Event, MessageChannel
from .rendering import text_errors


class Template(TenantOwnedModel):
    """A tenant's own text for one event, channel and language (else the built-in default)."""

    event = models.CharField(_("event"), max_length=32, choices=Event.choices)
    channel = models.CharField(
        _("channel"), max_length=10, choices=MessageChannel.choices, default=MessageChannel.SMS
    )
    language = models.CharField(_("language"), max_length=10, choices=settings.LANGUAGES, default="zh-hans")
    subject = models.CharField(
        _("subject"), max_length=200, blank=True, help_text=_("Email subject or push title; SMS has none.")
    )
    body = models.TextField(
        _("body"),
        help_text=_(
            "Use variables in braces, e.g. {reference}; write {{ and }} for literal braces. "
            "Confirmations must carry no marketing."
        ),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["tenant_id", "event", "channel", "language"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "event", "channel", "language"], name="template_unique_per_event"
            )
        ]
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")

    def __str__(self) -> str:
        return f"{self.get_event_display()} · {self.get_channel_display()} · {self.language}"

    def clean(self) -> None:
        if self.event not in EVENT_VARIABLES:
            return  # the choices validation reports it
        errors: dict[str, list[str]] = {}
        for field in ("subject", "body"):
            problems = text_errors(getattr(self, field) or "", self.event)
            if problems:
                errors[field] = problems
        if errors:
            raise ValidationError(errors)

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Every path that writes a template (admin, services, a shell, a data
        # import) gets the same checks: a confirmation with marketing is never stored.
        self.clean()
        super().save(*args, **kwargs)


class GatewayConfig(TenantOwnedModel):
    """How one tenant sends on one channel. No active config: the file gateway (development)."""

    class Kind(models.TextChoices):
        FILE = "file", _("File outbox (development)")
        SMTP = "smtp", _("SMTP email")
        TWILIO = "twilio", _("Twilio SMS")
        ALIYUN = "aliyun", _("Aliyun SMS")
        HTTP = "http", _("Signed HTTP (generic)")

    channel = models.CharField(
        _("channel"), max_length=10, choices=MessageChannel.choices, default=MessageChannel.SMS
    )
    kind = models.CharField(_("gateway"), max_length=10, choices=Kind.choices, default=Kind.FILE)
    sender_id = models.CharField(
        _("sender"),
        max_length=100,
        blank=True,
        help_text=_(
            "Twilio: the From number or a Messaging Service SID (MG…). Aliyun: the sign name "
            "(签名). Email: the From address."
        ),
    )
    template_code = models.CharField(
        _("template code"),
        max_length=64,
        blank=True,
        help_text=_("Aliyun: the approved template code (SMS_…) used when an event has none of its own."),
    )
    template_codes = models.JSONField(
        _("template codes per event"),
        default=dict,
        blank=True,
        help_text=_('Aliyun: approved template codes by event, e.g. {"otp": "SMS_100", "help": "SMS_101"}.'),
    )
    endpoint = models.CharField(
        _("endpoint"),
        max_length=300,
        blank=True,
        help_text=_(
            "Twilio or Aliyun: API base URL (blank for the provider's). Generic HTTP: the URL to POST to. "
            "SMTP: smtp://host:port, smtp+tls://host:587 or smtps://host:465 (blank: the server's email settings)."
        ),
    )
    account_id = models.CharField(
        _("account"),
        max_length=100,
        blank=True,
        help_text=_("Twilio Account SID, Aliyun AccessKey ID, SMTP user name, or a key id for generic HTTP."),
    )
    # Write-only in the admin and never copied to history.
    secret = EncryptedTextField(
        _("secret"),
        max_length=300,
        blank=True,
        help_text=_("Twilio auth token, Aliyun AccessKey secret, SMTP password or HTTP signing secret."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    history = HistoricalRecords(excluded_fields=["secret"])

    class Meta:
        ordering = ["tenant_id", "channel"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "channel"], name="gateway_unique_per_channel")
        ]
        verbose_name = _("gateway")
        verbose_name_plural = _("gateways")

    def __str__(self) -> str:
        return f"{self.get_channel_display()}: {self.get_kind_display()}"

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        kind, channel = self.kind, self.channel
        if kind in (self.Kind.TWILIO, self.Kind.ALIYUN) and channel != MessageChannel.SMS:
            errors["kind"] = _("This gateway sends SMS only.")
        if kind == self.Kind.SMTP and channel != MessageChannel.EMAIL:
            errors["kind"] = _("SMTP sends email only.")
        required: dict[str, list[str]] = {
            self.Kind.TWILIO: ["sender_id", "account_id", "secret"],
            self.Kind.ALIYUN: ["sender_id", "account_id", "secret"],
            self.Kind.HTTP: ["endpoint", "secret"],
        }
        for field in required.get(kind, []):
            if not getattr(self, field):
                errors.setdefault(field, _("Required for this gateway."))
        if kind == self.Kind.ALIYUN and not (self.template_code or self.template_codes):
            errors.setdefault("template_code", _("Aliyun needs an approved template code."))
        if not isinstance(self.template_codes, dict) or not all(
            key in EVENT_VARIABLES and isinstance(value, str) for key, value in self.template_codes.items()
        ):
            errors["template_codes"] = _("Use an object of event → template code, with events from the list.")
        if self.endpoint:
            schemes = {"smtp", "smtp+tls", "smtps"} if kind == self.Kind.SMTP else {"http", "https"}
            parts = urlsplit(self.endpoint)
            if parts.scheme not in schemes or not parts.hostname:
                errors["endpoint"] = _("Enter a URL starting with %(schemes)s.") % {
                    "schemes": " / ".join(f"{s}://" for s in sorted(schemes))
                }
        if errors:
            raise ValidationError(errors)


class Message(TenantOwnedModel):
    """One outgoing message; also its own outbox row (status, attempts, claim)."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    channel = models.CharField(_("channel"), max_length=10, choices=MessageChannel.choices)
    event = models.CharField(_("event"), max_length=32, choices=Event.choices)
    language = models.CharField(_("language"), max_length=10)
    template = models.ForeignKey(
        Template,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("template"),
        help_text=_("Empty when the built-in default text was used."),
    )
    to = models.CharField(
        _("recipient"),
        max_length=254,
        blank=True,
        help_text=_("Kept only until the message is sent or fails."),
    )
    to_masked = models.CharField(_("recipient"), max_length=64)
    to_hash = models.CharField(_("recipient hash"), max_length=64, db_index=True)
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    body = models.TextField(_("body"), help_text=_("As sent; one-time codes are replaced by ******."))
    context = models.JSONField(_("variables"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    gateway = models.CharField(_("gateway"), max_length=10, blank=True)
    provider_message_id = models.CharField(
        _("provider message id"), max_length=100, blank=True, db_index=True
    )
    provider_status = models.CharField(_("provider status"), max_length=32, blank=True)
    error = models.TextField(_("last error"), blank=True)
    dedupe_key = models.CharField(_("de-duplication key"), max_length=200, null=True, blank=True)
    # Where the clear text of a message with a secret (an OTP) waits in the cache,
    # for as long as the code is valid; blank once the message is final.
    secret_ref = models.CharField(_("secret reference"), max_length=64, blank=True)
    # Set by the worker that is calling the gateway; see services.message_deliver.
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    # Only for messages the send task owns (notification_send): when the next try
    # is due, so the sweep can re-dispatch one whose task was lost.
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)
    failed_at = models.DateTimeField(_("failed"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "dedupe_key"], name="message_unique_dedupe_key")
        ]
        indexes = [
            models.Index(fields=["tenant", "to_hash"]),
            models.Index(fields=["tenant", "status"]),
            models.Index(fields=["status", "next_attempt_at"]),
        ]
        verbose_name = _("message")
        verbose_name_plural = _("messages")

    def __str__(self) -> str:
        return f"{self.get_event_display()} → {self.to_masked} ({self.status})"
