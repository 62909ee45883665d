"""Reply SMS: gateway credentials, routes from reply numbers to services, and every reply received.

An `InboundMessage` is the record of what a person wrote and what it caused (a request filed,
a re-subscribe, a help or clarification reply, or nothing). It keeps the raw number only until
the number's data is erased (see `services.inbound_messages_erase_number`); the hash and the masked
number stay.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from lanzuan.fields import EncryptedTextField
from tenants.models import Tenant
from tenants.scoping import TenantOwnedModel
from unsubscribe.models import Service, UnsubscribeRequest


class Provider(models.TextChoices):
    TWILIO = "twilio", _("Twilio")
    ALIYUN = "aliyun", _("Aliyun SMS (MO push)")
    GENERIC = "generic", _("Generic signed JSON")


_NOT_DIGITS = re.compile(r"\D")


def digits_only(value: str) -> str:
    """'+1 (415) 555-0100' → '14155550100': the form destinations are stored and compared in."""
    return _NOT_DIGITS.sub("", value or "")


# China's SMS service numbers (106…) are what tenants are given and configure; Twilio
# and several CN gateways report them with the country code (+8610690002, 008610690002).
_CN_SERVICE_NUMBER = "106"


def destination_digits(value: str) -> str:
    """A reply destination in the one form routes are stored and compared in: digits,
    with China's country code taken off ("+86 1069 0002", "008610690002",
    "8610690002" → "10690002"), so a route "10690002" matches Twilio's "+8610690002"
    and a route entered as "+8610690002" matches a gateway's "10690002"."""
    raw = (value or "").strip()
    digits = digits_only(raw)
    if digits.startswith("0086"):
        return digits[4:]
    if digits.startswith("86") and (raw.startswith("+") or digits[2:].startswith(_CN_SERVICE_NUMBER)):
        return digits[2:]
    return digits


class InboundCredential(TenantOwnedModel):
    """What a tenant's gateway proves itself with: Twilio's auth token, the Aliyun push token,
    or the generic format's HMAC secret. The secret is write-only in the admin."""

    provider = models.CharField(_("provider"), max_length=10, choices=Provider.choices)
    secret = EncryptedTextField(_("secret"), max_length=200)
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    history = HistoricalRecords(excluded_fields=["secret"])

    class Meta:
        ordering = ["tenant_id", "provider"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "provider"], name="inbound_credential_unique_provider")
        ]
        verbose_name = _("reply SMS gateway")
        verbose_name_plural = _("reply SMS gateways")

    def __str__(self) -> str:
        return f"{self.get_provider_display()} ({_('on') if self.enabled else _('off')})"


class PlatformInboundCredential(models.Model):
    """A gateway account a platform runs for many tenants ("shared gateway"): one URL,
    /hooks/sms/platform/<account>/<provider>/, whose replies are routed to a tenant by
    the number, extension code or sign name they were sent to. Not tenant-owned: only
    superusers see and manage it. The secret is write-only in the admin."""

    account = models.SlugField(
        _("account"),
        max_length=50,
        unique=True,
        help_text=_("Names the account in its URL, e.g. aliyun-main."),
    )
    provider = models.CharField(_("provider"), max_length=10, choices=Provider.choices)
    secret = EncryptedTextField(_("secret"), max_length=200)
    enabled = models.BooleanField(_("enabled"), default=True)
    tenants = models.ManyToManyField(
        Tenant,
        blank=True,
        related_name="+",
        verbose_name=_("tenants served"),
        help_text=_("Replies are routed only to these tenants. Empty: to any tenant."),
    )
    reply_tenant = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("answers unroutable replies"),
        help_text=_(
            "The tenant (usually the platform's own) whose SMS gateway answers a reply no tenant "
            "could be found for, with the help text pointing to the hub. Empty: no answer."
        ),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    history = HistoricalRecords(excluded_fields=["secret"])

    class Meta:
        ordering = ["account"]
        verbose_name = _("shared reply SMS gateway")
        verbose_name_plural = _("shared reply SMS gateways")

    def __str__(self) -> str:
        return f"{self.account} · {self.get_provider_display()} ({_('on') if self.enabled else _('off')})"


class ReplyRoute(TenantOwnedModel):
    """Which of the tenant's services a reply is about, by the number or extension code it was
    sent to (Twilio's To, Aliyun's dest_code) or by Aliyun's sign name. No service: all marketing."""

    destination = models.CharField(
        _("reply number or extension code"),
        max_length=32,
        blank=True,
        help_text=_("Digits only, e.g. 1069000188 or the extension 88. Empty: match by sign name only."),
    )
    sign_name = models.CharField(
        _("sign name"),
        max_length=100,
        blank=True,
        help_text=_("Aliyun only: the SMS signature the reply came back to, e.g. 蓝钻商城."),
    )
    service = models.ForeignKey(
        Service,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("service"),
        help_text=_("Empty: a reply here stops all of the tenant's marketing."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["tenant_id", "destination", "sign_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "destination", "sign_name"], name="reply_route_unique_destination"
            )
        ]
        verbose_name = _("reply route")
        verbose_name_plural = _("reply routes")

    def __str__(self) -> str:
        where = " · ".join(part for part in (self.destination, self.sign_name) if part) or "—"
        return f"{where} → {self.service.code if self.service else _('all marketing')}"

    def clean(self) -> None:
        self.destination = destination_digits(self.destination)
        self.sign_name = (self.sign_name or "").strip()
        if not self.destination and not self.sign_name:
            raise ValidationError(_("Enter a reply number or extension code, or a sign name."))
        service = self.service if self.service_id is not None else None
        if service is not None and self.tenant_id is not None and service.tenant_id != self.tenant_id:
            raise ValidationError({"service": _("Choose one of this tenant's services.")})

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.destination = destination_digits(self.destination)
        self.sign_name = (self.sign_name or "").strip()
        super().save(*args, **kwargs)


class Action(models.TextChoices):
    """What a reply caused."""

    UNSUBSCRIBE = "unsubscribe", _("Unsubscribe request filed")
    RESUBSCRIBE = "resubscribe", _("Re-subscribed")
    RESUBSCRIBE_REFUSED = "resubscribe_refused", _("Re-subscribe refused")
    HELP = "help", _("Help reply sent")
    STATUS = "status", _("Status reply sent")
    CLARIFY = "clarify", _("Asked to confirm")
    CLARIFY_SKIPPED = "clarify_skipped", _("Unclear; already asked today")
    HELD = "held", _("Held for staff")
    NONE = "none", _("Stored, no reply")


class Intent(models.TextChoices):
    UNSUBSCRIBE = "unsubscribe", _("Unsubscribe")
    RESUBSCRIBE = "resubscribe", _("Re-subscribe")
    HELP = "help", _("Help")
    STATUS = "status", _("Status question")
    OTHER = "other", _("Other")


class Context(models.TextChoices):
    """What we last asked the number when its reply came (how the reply was read)."""

    NONE = "", _("Nothing pending")
    CLARIFICATION = "clarification", _("Answer to a clarification")


class InboundMessage(TenantOwnedModel):
    """One reply SMS as received, with what we understood and what we did."""

    provider = models.CharField(_("provider"), max_length=10, choices=Provider.choices)
    provider_message_id = models.CharField(_("provider message id"), max_length=100)
    reference = models.CharField(
        _("reference"), max_length=16, db_index=True, help_text=_("Quoted in replies to this message.")
    )
    from_number = models.CharField(
        _("number"), max_length=32, blank=True, help_text=_("Kept only until the number's data is erased.")
    )
    from_hash = models.CharField(_("sender hash"), max_length=64)
    from_masked = models.CharField(_("from"), max_length=32)
    to = models.CharField(_("to"), max_length=64, blank=True, help_text=_("Reply number or extension code."))
    sign_name = models.CharField(_("sign name"), max_length=100, blank=True)
    body = models.TextField(_("text"), blank=True)
    received_at = models.DateTimeField(_("received"), default=timezone.now)
    created_at = models.DateTimeField(_("stored"), default=timezone.now, db_index=True)
    language = models.CharField(_("language"), max_length=10, blank=True)

    intent = models.CharField(_("intent"), max_length=12, choices=Intent.choices, default=Intent.OTHER)
    confidence = models.FloatField(_("confidence"), default=0.0)
    matched_rule = models.CharField(_("matched rule"), max_length=300, blank=True)
    context = models.CharField(_("read as"), max_length=20, choices=Context.choices, blank=True, default="")
    gateway_account = models.ForeignKey(
        PlatformInboundCredential,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("shared gateway"),
        help_text=_("Set when the reply came through a shared gateway and was routed here."),
    )
    route = models.ForeignKey(
        ReplyRoute,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("route"),
    )
    action = models.CharField(_("action taken"), max_length=20, choices=Action.choices, default=Action.NONE)
    request = models.ForeignKey(
        UnsubscribeRequest,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("unsubscribe request"),
    )
    flagged_for_attention = models.BooleanField(_("needs attention"), default=False, db_index=True)
    flag_reason = models.TextField(_("why it needs attention"), blank=True)
    note = models.TextField(
        _("what changed"), blank=True, help_text=_("e.g. the scopes a re-subscribe lifted.")
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "provider", "provider_message_id"], name="inbound_message_unique_id"
            )
        ]
        indexes = [models.Index(fields=["tenant", "from_hash", "action", "created_at"])]
        verbose_name = _("reply SMS")
        verbose_name_plural = _("reply SMS")

    def __str__(self) -> str:
        return f"{self.from_masked}: {self.get_intent_display()} → {self.get_action_display()}"


class UnroutedMessage(models.Model):
    """A reply we could not file under a tenant: through a shared gateway that no tenant's
    reply number, extension code or sign name matched (or several did), or through one
    tenant's URL while its destination is another tenant's. Platform-level, so not
    tenant-owned: superusers see them. The number and text are kept until staff mark the
    row handled (they may need them to act for the person); then the number is blanked
    and digit runs in the text are masked."""

    class Reason(models.TextChoices):
        NO_MATCH = "no_match", _("No tenant has this destination")
        AMBIGUOUS = "ambiguous", _("Several tenants have this destination")
        OTHER_TENANT = "other_tenant", _("Sent to another tenant's number")

    source = models.CharField(
        _("received at"),
        max_length=80,
        help_text=_("platform:<account> or tenant:<slug>: the URL it came to."),
    )
    gateway_account = models.ForeignKey(
        PlatformInboundCredential,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("shared gateway"),
    )
    received_by = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("received on the URL of"),
    )
    belongs_to = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("destination belongs to"),
    )
    reason = models.CharField(_("why"), max_length=20, choices=Reason.choices)
    provider = models.CharField(_("provider"), max_length=10, choices=Provider.choices)
    provider_message_id = models.CharField(_("provider message id"), max_length=100)
    from_number = models.CharField(_("number"), max_length=32, blank=True)
    from_hash = models.CharField(_("sender hash"), max_length=64, db_index=True)
    from_masked = models.CharField(_("from"), max_length=32)
    to = models.CharField(_("to"), max_length=64, blank=True)
    sign_name = models.CharField(_("sign name"), max_length=100, blank=True)
    body = models.TextField(_("text"), blank=True)
    language = models.CharField(_("language"), max_length=10, blank=True)
    intent = models.CharField(_("intent"), max_length=12, choices=Intent.choices, default=Intent.OTHER)
    answered = models.BooleanField(_("help text sent"), default=False)
    received_at = models.DateTimeField(_("received"), default=timezone.now)
    created_at = models.DateTimeField(_("stored"), default=timezone.now, db_index=True)
    flagged_for_attention = models.BooleanField(_("needs attention"), default=True, db_index=True)
    handled_at = models.DateTimeField(_("handled"), null=True, blank=True)
    handled_by = models.CharField(_("handled by"), max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "provider", "provider_message_id"], name="unrouted_message_unique_id"
            )
        ]
        verbose_name = _("unroutable reply SMS")
        verbose_name_plural = _("unroutable reply SMS")

    def __str__(self) -> str:
        return f"{self.from_masked} → {self.to or self.sign_name or '—'} ({self.get_reason_display()})"
