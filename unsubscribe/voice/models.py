"""The voice menu: gateway credentials, the tenant's prompt texts, and every call.

A `VoiceCall` is the state of one call (which step it is at, the keys pressed) and,
once over, the record of what it caused. It keeps the raw caller number only while
the call runs (the number is needed to file the request); the hash and the masked
number stay. Calls have no history table: a copy of the raw number there would
outlive the erasure.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from lanzuan.fields import EncryptedTextField
from tenants.scoping import TenantOwnedModel
from unsubscribe.models import UnsubscribeRequest


class VoiceProvider(models.TextChoices):
    TWILIO = "twilio", _("Twilio Voice (TwiML)")
    GENERIC = "generic", _("Generic signed JSON")


class VoiceCredential(TenantOwnedModel):
    """What a tenant's voice platform proves itself with: Twilio's auth token, or the
    HMAC secret of the generic protocol. The secret is write-only in the admin."""

    provider = models.CharField(_("provider"), max_length=10, choices=VoiceProvider.choices)
    secret = EncryptedTextField(_("secret"), max_length=200)
    enabled = models.BooleanField(_("enabled"), default=True)
    voice_zh = models.CharField(
        _("voice (Chinese)"),
        max_length=60,
        default="alice",
        help_text=_("Twilio's voice for zh-CN, e.g. alice or Polly.Zhiyu."),
    )
    voice_en = models.CharField(
        _("voice (English)"),
        max_length=60,
        default="alice",
        help_text=_("Twilio's voice for en-US, e.g. alice or Polly.Joanna."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    history = HistoricalRecords(excluded_fields=["secret"])

    class Meta:
        ordering = ["tenant_id", "provider"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "provider"], name="voice_credential_unique_provider")
        ]
        verbose_name = _("voice gateway")
        verbose_name_plural = _("voice gateways")

    def __str__(self) -> str:
        return f"{self.get_provider_display()} ({_('on') if self.enabled else _('off')})"


class PromptKey(models.TextChoices):
    MENU = "menu", _("Main menu")
    LANGUAGE_SWITCH = "language_switch", _("Offer of the other language")
    SERVICES = "services", _("Service menu")
    SERVICE_ITEM = "service_item", _("One service in the service menu")
    SERVICES_MORE = "services_more", _("More services")
    SERVICES_PREVIOUS = "services_previous", _("Previous page of services")
    SERVICE_GONE = "service_gone", _("Chosen service no longer offered")
    NO_SERVICES = "no_services", _("No separate services")
    CONFIRM = "confirm", _("Confirmation with the terms")
    TERMS = "terms", _("Terms in short form")
    IRREVERSIBLE = "irreversible", _("Irreversible opt-out")
    SCOPE_ALL = "scope_all", _("All marketing (scope name)")
    FILED = "filed", _("Request filed, with the reference")
    WITHHELD = "withheld", _("Caller ID withheld")
    UNAVAILABLE = "unavailable", _("Voice menu switched off")
    INVALID = "invalid", _("Wrong key")
    NO_INPUT = "no_input", _("No key pressed")
    GIVE_UP = "give_up", _("Ending after repeated wrong keys or silence")
    FAILED = "failed", _("Request could not be filed")


class VoicePrompt(TenantOwnedModel):
    """A tenant's own wording of one prompt in one language; without one the built-in
    text is spoken (`prompts.DEFAULTS`)."""

    key = models.CharField(_("prompt"), max_length=20, choices=PromptKey.choices)
    language = models.CharField(
        _("language"), max_length=10, choices=[("zh-hans", _("Chinese")), ("en", _("English"))]
    )
    text = models.TextField(_("text"), help_text=_("Variables in braces, e.g. {tenant_name}."))
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["tenant_id", "key", "language"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key", "language"], name="voice_prompt_unique_key")
        ]
        verbose_name = _("voice prompt")
        verbose_name_plural = _("voice prompts")

    def __str__(self) -> str:
        return f"{self.get_key_display()} [{self.language}]"


class CallStep(models.TextChoices):
    MENU = "menu", _("Main menu")
    SERVICES = "services", _("Choosing a service")
    CONFIRM = "confirm", _("Confirming")
    ENDED = "ended", _("Ended")


class Outcome(models.TextChoices):
    IN_PROGRESS = "in_progress", _("In progress")
    FILED = "filed", _("Request filed")
    WITHHELD = "withheld", _("Caller ID withheld: nothing filed")
    UNAVAILABLE = "unavailable", _("Voice menu off: nothing filed")
    GAVE_UP = "gave_up", _("No valid key: nothing filed")
    ABANDONED = "abandoned", _("Caller hung up: nothing filed")
    FAILED = "failed", _("Could not be filed")


class VoiceCall(TenantOwnedModel):
    provider = models.CharField(_("provider"), max_length=10, choices=VoiceProvider.choices)
    call_id = models.CharField(_("call id"), max_length=100)
    caller = models.CharField(
        _("caller"), max_length=20, blank=True, help_text=_("E.164; kept only while the call runs.")
    )
    caller_hash = models.CharField(_("caller hash"), max_length=64, blank=True, db_index=True)
    caller_masked = models.CharField(_("caller"), max_length=24, blank=True)
    called = models.CharField(_("number called"), max_length=64, blank=True)
    language = models.CharField(_("language"), max_length=10, default="zh-hans")
    step = models.CharField(_("step"), max_length=10, choices=CallStep.choices, default=CallStep.MENU)
    page = models.PositiveIntegerField(_("menu page"), default=0)  # which page of the service menu
    # The chosen service by code, blank for all marketing: a service deleted mid-call then
    # fails the filing instead of silently widening the opt-out to everything.
    service_code = models.CharField(_("service"), max_length=50, blank=True)
    turn = models.PositiveIntegerField(
        _("turn"), default=0
    )  # inputs handled; a retried step carries an older one
    attempts = models.PositiveIntegerField(_("failed attempts"), default=0)
    digits = models.JSONField(_("keys pressed"), default=list, blank=True)
    last_prompt = models.JSONField(_("last prompt"), default=dict, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=12, choices=Outcome.choices, default=Outcome.IN_PROGRESS
    )
    request = models.ForeignKey(
        UnsubscribeRequest,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("request"),
    )
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    updated_at = models.DateTimeField(_("last step"), auto_now=True)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "provider", "call_id"], name="voice_call_unique_call")
        ]
        indexes = [models.Index(fields=["tenant", "outcome", "updated_at"])]
        verbose_name = _("voice call")
        verbose_name_plural = _("voice calls")

    def __str__(self) -> str:
        return f"{self.caller_masked or '—'} · {self.call_id}"
