"""Services, subscriptions, unsubscribe requests, suppressions, targets and step results.

Every model is tenant-owned (`tenant_id` on every row), except the platform-wide
do-not-market list (PlatformDoNotMarket and its event record), which belongs to the
person, not to a provider, and binds every tenant. Raw numbers live only where
they are still needed (subscriptions, subscriber profiles, open requests) and are
erased by the pipeline; suppressions and completed requests keep a keyed hash and a
masked number.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Length
from django.db.models.lookups import Exact
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from lanzuan.fields import EncryptedTextField
from tenants.scoping import TenantOwnedModel


class RequestChannel(models.TextChoices):
    """How a request reaches us (inbound); what we send on is notifications' MessageChannel."""

    SMS = "sms", _("Reply SMS")
    WEB = "web", _("Web page")
    APP = "app", _("App")
    HOTLINE = "hotline", _("Hotline / IVR")
    EMAIL = "email", _("Email link")
    PARTNER = "partner", _("Partner API")
    HUB = "hub", _("One-stop hub")


class VerificationMethod(models.TextChoices):
    SMS_ORIGIN = "sms_origin", _("SMS sent from the number")
    OTP = "otp", _("One-time code")
    PARTNER_ASSERTION = "partner_assertion", _("Asserted by the partner")
    AGENT_ASSERTION = "agent_assertion", _("Asserted by a hotline agent")
    SIGNED_TOKEN = "signed_token", _("Signed link token")
    ADMIN = "admin", _("Filed by a provider administrator")
    CALLER_ID = "caller_id", _("Caller ID of a call to the voice menu")


class Service(TenantOwnedModel):
    """One of a tenant's marketing services (a promotion stream, a push programme)."""

    name = models.CharField(_("name"), max_length=200)
    # Read by English voice prompts (and fall back to `name`).
    name_en = models.CharField(_("English name"), max_length=200, blank=True, default="", db_default="")
    code = models.SlugField(_("code"), max_length=50, help_text=_("Stable code partners use in the API."))
    description = models.TextField(_("description"), blank=True)
    channels = models.JSONField(
        _("channels"), default=list, blank=True, help_text=_('Channels it markets on, e.g. ["sms", "app"].')
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["tenant_id", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="service_unique_code")]
        verbose_name = _("marketing service")
        verbose_name_plural = _("marketing services")

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Subscription(TenantOwnedModel):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        ENDED = "ended", _("Ended")

    service = models.ForeignKey(
        Service, on_delete=models.CASCADE, related_name="subscriptions", verbose_name=_("service")
    )
    phone = models.CharField(_("number"), max_length=20, blank=True, help_text=_("E.164; blank once erased."))
    phone_hash = models.CharField(_("number hash"), max_length=64, db_index=True)
    phone_masked = models.CharField(_("number"), max_length=24)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE)
    consent_source = models.CharField(_("consent source"), max_length=200, blank=True)
    consent_at = models.DateTimeField(_("consent time"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["service", "phone_hash"], name="subscription_unique_number")
        ]
        indexes = [models.Index(fields=["tenant", "phone_hash"])]
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")

    def __str__(self) -> str:
        return f"{self.phone_masked} → {self.service.code}"


class SubscriberProfile(TenantOwnedModel):
    """Personal data used for marketing (the demo's internal data source for erasure)."""

    phone = models.CharField(_("number"), max_length=20, blank=True)
    phone_hash = models.CharField(_("number hash"), max_length=64, db_index=True)
    phone_masked = models.CharField(_("number"), max_length=24)
    display_name = models.CharField(_("name"), max_length=200, blank=True)
    interests = models.CharField(_("interests"), max_length=500, blank=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    anonymised_at = models.DateTimeField(_("anonymised"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "phone_hash"], name="profile_unique_number")]
        verbose_name = _("subscriber profile")
        verbose_name_plural = _("subscriber profiles")

    def __str__(self) -> str:
        return self.phone_masked


class UnsubscribeRequest(TenantOwnedModel):
    class State(models.TextChoices):
        # A request is suppressed in the transaction that files it: there is no earlier state.
        SUPPRESSED = "suppressed", _("Suppressed")
        TERMINATING = "terminating", _("Ending services")
        # Every termination is done; the confirmation may still be on its way. The wire
        # value stays "confirming", as the API and webhooks have always said.
        SERVICES_ENDED = "confirming", _("Services ended")
        ERASING = "erasing", _("Erasing data")
        COMPLETED = "completed", _("Completed")
        NEEDS_ATTENTION = "needs_attention", _("Needs attention")

    # Work is under way (the sweep dispatches it when due).
    ACTIVE_STATES = (State.SUPPRESSED, State.TERMINATING, State.SERVICES_ENDED, State.ERASING)
    # Not finished: under way, or waiting for staff.
    OPEN_STATES = (*ACTIVE_STATES, State.NEEDS_ATTENTION)
    # When the request entered each state (the pipeline stamps them).
    STATE_TIMESTAMPS = {
        State.SUPPRESSED: "suppressed_at",
        State.TERMINATING: "terminating_at",
        State.SERVICES_ENDED: "confirming_at",
        State.ERASING: "erasing_at",
        State.COMPLETED: "completed_at",
        State.NEEDS_ATTENTION: "needs_attention_at",
    }
    # The request's timeline in order: when it arrived, the states it entered and its
    # deadlines. The one list the admin, the API and the CSV export show.
    TIMELINE = (
        "received_at",
        "suppressed_at",
        "terminating_at",
        "confirming_at",
        "erasing_at",
        "erasure_due_at",
        "completed_at",
        "needs_attention_at",
        "sla_due_at",
        "sla_breached_at",
    )

    reference = models.CharField(_("reference"), max_length=16, unique=True)
    phone = models.CharField(
        _("number"), max_length=20, blank=True, help_text=_("Kept only until the data is erased.")
    )
    phone_hash = models.CharField(_("number hash"), max_length=64, db_index=True)
    phone_masked = models.CharField(_("number"), max_length=24)
    scope_all = models.BooleanField(_("all marketing"), default=True)
    services = models.ManyToManyField(Service, blank=True, related_name="+", verbose_name=_("services"))
    channel = models.CharField(_("channel"), max_length=10, choices=RequestChannel.choices)
    verification_method = models.CharField(
        _("verification"), max_length=20, choices=VerificationMethod.choices
    )
    verification_evidence = models.JSONField(_("verification evidence"), default=dict, blank=True)
    language = models.CharField(_("language"), max_length=10, default="zh-hans")
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, null=True, blank=True)
    request_fingerprint = models.CharField(_("request fingerprint"), max_length=64, blank=True)
    confirmation_channel = models.CharField(_("confirmation channel"), max_length=10, blank=True)
    filed_by = models.CharField(
        _("filed by"),
        max_length=200,
        blank=True,
        help_text=_("The API key, staff member or gateway that filed it."),
    )

    state = models.CharField(_("state"), max_length=20, choices=State.choices, default=State.SUPPRESSED)
    attention_reason = models.TextField(_("why it needs attention"), blank=True)
    received_at = models.DateTimeField(_("received"), default=timezone.now)
    suppressed_at = models.DateTimeField(_("suppressed"), null=True, blank=True)
    terminating_at = models.DateTimeField(_("ending services since"), null=True, blank=True)
    # When the services were ended (State.SERVICES_ENDED); named as the API names it.
    confirming_at = models.DateTimeField(_("services ended"), null=True, blank=True)
    erasing_at = models.DateTimeField(_("erasing since"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed"), null=True, blank=True)
    needs_attention_at = models.DateTimeField(_("needs attention since"), null=True, blank=True)
    sla_due_at = models.DateTimeField(_("SLA due"), null=True, blank=True)
    sla_breached_at = models.DateTimeField(_("SLA breached"), null=True, blank=True)
    erasure_due_at = models.DateTimeField(_("erasure due"), null=True, blank=True)
    # The request row is its own outbox: work is due at next_run_at; the sweep
    # dispatches it again when no worker has picked it up (broker down, lost message).
    next_run_at = models.DateTimeField(_("next run"), null=True, blank=True, db_index=True)
    dispatched_at = models.DateTimeField(_("dispatched"), null=True, blank=True)

    # The raw number never enters history tables.
    # dispatched_at and next_run_at are bookkeeping for the sweep, written with update().
    history = HistoricalRecords(excluded_fields=["phone", "dispatched_at", "next_run_at"])

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"], name="request_unique_idempotency_key"
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "state", "received_at"]),
            models.Index(fields=["tenant", "phone_hash"]),
        ]
        verbose_name = _("unsubscribe request")
        verbose_name_plural = _("unsubscribe requests")

    def __str__(self) -> str:
        return self.reference


SCOPE_ALL = "*"


def scope_label(scope: str) -> str:
    """A suppression scope as people read it: "*" is all marketing; a service by its code."""
    return str(_("All marketing")) if scope == SCOPE_ALL else scope


class Suppression(TenantOwnedModel):
    """Do not send to this number (hash) for this scope: "*" or a service code."""

    phone_hash = models.CharField(_("number hash"), max_length=64)
    # The tenant's lookup key of the number (digest version 2, `phones.tenant_lookup_key`): what
    # the bulk look-ups (checks of many numbers, scrubs) match. Empty on a row written before
    # version 2 (or by a caller without the number): matched by `phone_hash` (README).
    lookup_key = models.BinaryField(_("lookup key"), max_length=16, null=True, blank=True, editable=False)
    phone_masked = models.CharField(_("number"), max_length=24)
    scope = models.CharField(_("scope"), max_length=50, default=SCOPE_ALL)
    request = models.ForeignKey(
        UnsubscribeRequest,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="suppressions",
        verbose_name=_("request"),
    )
    created_at = models.DateTimeField(_("since"), default=timezone.now)
    # A pause the person chose instead of an opt-out: the sweep lifts it after this time
    # (suppressions.services.suppression_pauses_end). Empty: for good.
    ends_at = models.DateTimeField(_("paused until"), null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "phone_hash", "scope"], name="suppression_unique"),
            # A key of another length could be neither in the index nor matched by version 1.
            models.CheckConstraint(  # type: ignore[call-overload]  # django-stubs: a lookup is a condition
                condition=models.Q(lookup_key__isnull=True) | Exact(Length("lookup_key"), 16),
                name="suppression_lookup_key_16_bytes",
            ),
        ]
        indexes = [
            models.Index(
                fields=["ends_at"], condition=models.Q(ends_at__isnull=False), name="suppression_pause"
            ),
            models.Index(fields=["tenant", "lookup_key"], name="suppression_lookup_key"),
            # Rows of digest version 1 only: the bulk look-up asks whether a tenant still has any.
            models.Index(
                fields=["tenant"], condition=models.Q(lookup_key__isnull=True), name="suppression_v1_only"
            ),
        ]
        verbose_name = _("suppression")
        verbose_name_plural = _("suppressions")

    def __str__(self) -> str:
        return f"{self.phone_masked} [{scope_label(self.scope)}]"


class SuppressionEvent(TenantOwnedModel):
    """Append-only record of every suppression change (written in bulk, never updated)."""

    class Action(models.TextChoices):
        ADDED = "added", _("Added")
        LIFTED = "lifted", _("Lifted (re-subscribed)")

    phone_hash = models.CharField(_("number hash"), max_length=64, db_index=True)
    phone_masked = models.CharField(_("number"), max_length=24)
    scope = models.CharField(_("scope"), max_length=50)
    action = models.CharField(_("action"), max_length=10, choices=Action.choices)
    channel = models.CharField(_("channel"), max_length=10, blank=True)
    request = models.ForeignKey(
        UnsubscribeRequest,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("request"),
    )
    # What proves a lift was asked for: verification method, provider, message id, the
    # words (digit runs masked). Kept for good, like the event itself: no raw number.
    evidence = models.JSONField(_("evidence"), default=dict, blank=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("suppression event")
        verbose_name_plural = _("suppression events")

    def __str__(self) -> str:
        return f"{self.phone_masked} {self.get_action_display()} [{scope_label(self.scope)}]"


class Target(TenantOwnedModel):
    """One of the provider's OTHER systems where services are ended (termination) or
    data is erased (erasure), called over HTTPS. Lanzuan's own records need no target:
    every registered data source (unsubscribe/pipeline/datasources.py) runs for every request."""

    class Purpose(models.TextChoices):
        TERMINATE = "terminate", _("End services")
        ERASE = "erase", _("Erase personal data")

    class Kind(models.TextChoices):
        HTTP = "http", _("Provider HTTPS endpoint")

    name = models.CharField(_("name"), max_length=200, help_text=_("For staff; people never see it."))
    public_label_zh = models.CharField(
        _("public label (Chinese)"),
        max_length=100,
        blank=True,
        help_text=_("What a person reads on the status page, e.g. 会员系统. Empty: “服务商的系统”."),
    )
    public_label_en = models.CharField(
        _("public label (English)"),
        max_length=100,
        blank=True,
        help_text=_("e.g. the membership system. Empty: “the provider's systems”."),
    )
    purpose = models.CharField(_("purpose"), max_length=10, choices=Purpose.choices)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.HTTP)
    url = models.URLField(_("endpoint URL"), blank=True)
    signing_secret = EncryptedTextField(_("signing secret"), max_length=200, blank=True)
    timeout_seconds = models.PositiveIntegerField(_("timeout (seconds)"), default=10)
    max_attempts = models.PositiveIntegerField(_("attempts before needing attention"), default=5)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    history = HistoricalRecords(excluded_fields=["signing_secret"])

    class Meta:
        ordering = ["tenant_id", "purpose", "name"]
        verbose_name = _("termination / erasure target")
        verbose_name_plural = _("termination / erasure targets")

    def __str__(self) -> str:
        return f"{self.get_purpose_display()}: {self.name}"

    def public_label(self, language: str) -> str:
        """The name a person reads, in their language; never the staff name."""
        own = self.public_label_zh if language.lower().startswith("zh") else self.public_label_en
        if own:
            return own
        with translation.override(language):
            return str(_("the provider's systems"))


class Step(TenantOwnedModel):
    """One unit of pipeline work for one request: end services or erase data at one of
    Lanzuan's own data sources (`source`) or at a target, or send the confirmation.
    Its row is the receipt."""

    class Kind(models.TextChoices):
        TERMINATE = "terminate", _("End services")
        CONFIRM = "confirm", _("Send confirmation")
        ERASE = "erase", _("Erase data")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        RETRYING = "retrying", _("Retrying")
        SUCCEEDED = "succeeded", _("Done")
        FAILED = "failed", _("Failed")

    request = models.ForeignKey(
        UnsubscribeRequest, on_delete=models.CASCADE, related_name="steps", verbose_name=_("request")
    )
    kind = models.CharField(_("step"), max_length=10, choices=Kind.choices)
    target = models.ForeignKey(
        Target, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("target")
    )
    # A built-in step at one of Lanzuan's own data sources (datasources.py); blank for a target or the confirmation.
    source = models.CharField(_("data source"), max_length=50, blank=True)
    target_name = models.CharField(_("target"), max_length=200, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    max_attempts = models.PositiveIntegerField(_("attempts before needing attention"), default=5)
    last_error = models.TextField(_("last error"), blank=True)
    receipt = models.TextField(_("receipt"), blank=True)
    # What a built-in source did, as (what, count) lines rendered in the reader's language.
    receipt_lines = models.JSONField(_("receipt lines"), default=list, blank=True)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    lease_until = models.DateTimeField(_("claimed until"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["request_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "kind", "target"], name="step_unique_target"),
            models.UniqueConstraint(
                fields=["request", "kind", "source"],
                condition=models.Q(target__isnull=True),
                name="step_unique_source",
            ),
        ]
        verbose_name = _("pipeline step")
        verbose_name_plural = _("pipeline steps")

    def __str__(self) -> str:
        # The source's label in the reader's language; target_name is the English snapshot.
        from .pipeline.selectors import step_staff_label  # noqa: PLC0415 — the pipeline imports this module

        return f"{self.request_id} {self.get_kind_display()} {step_staff_label(self)}".strip()


class SubscriptionImport(TenantOwnedModel):
    """A CSV of subscriptions being imported in the background, with progress."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        RUNNING = "running", _("Importing")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    file = models.FileField(_("file"), upload_to="imports/%Y/%m/")
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    total_rows = models.PositiveIntegerField(_("rows"), default=0)
    rows_done = models.PositiveIntegerField(_("rows read"), default=0)
    created = models.PositiveIntegerField(_("created"), default=0)
    updated = models.PositiveIntegerField(_("updated"), default=0)
    invalid = models.PositiveIntegerField(_("invalid"), default=0, help_text=_("Rows refused; see errors."))
    skipped_opted_out = models.PositiveIntegerField(
        _("skipped (opted out)"),
        default=0,
        help_text=_("Rows for a number that opted out of that service or of all marketing: not imported."),
    )
    duplicates = models.PositiveIntegerField(
        _("duplicates"),
        default=0,
        help_text=_("Rows repeating an earlier number and service; the last one won."),
    )
    errors = models.JSONField(_("errors"), default=list, blank=True)
    created_at = models.DateTimeField(_("uploaded"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("subscription import")
        verbose_name_plural = _("subscription imports")

    @property
    def percent(self) -> int:
        return int(self.rows_done * 100 / self.total_rows) if self.total_rows else 0


class ChannelSetting(TenantOwnedModel):
    """How a tenant lets people unsubscribe on one channel, and whether it is on.

    No row means the channel is on with no extra instructions: a person's way
    out is never closed by forgetting to configure it.
    """

    channel = models.CharField(_("channel"), max_length=10, choices=RequestChannel.choices)
    enabled = models.BooleanField(_("enabled"), default=True)
    reply_numbers = models.CharField(
        _("reply numbers or extension codes"),
        max_length=500,
        blank=True,
        help_text=_("SMS: numbers people reply to, comma-separated, e.g. 10690001, 1069000188."),
    )
    extra_keywords = models.CharField(
        _("extra unsubscribe keywords"),
        max_length=500,
        blank=True,
        help_text=_("SMS: the tenant's own keywords, comma-separated, e.g. QX, 取消营销."),
    )
    app_path_zh = models.CharField(
        _("app path (Chinese)"), max_length=200, blank=True, help_text=_("e.g. 我的 → 设置 → 消息推送")
    )
    app_path_en = models.CharField(_("app path (English)"), max_length=200, blank=True)
    hotline_number = models.CharField(_("hotline number"), max_length=40, blank=True)
    hotline_hours = models.CharField(
        _("hotline hours"), max_length=100, blank=True, help_text=_("e.g. 9:00–21:00")
    )
    hotline_menu_key = models.CharField(_("menu key"), max_length=20, blank=True, help_text=_("e.g. 3"))
    # Off unless switched on: the voice menu needs a voice gateway and prompts the tenant has checked.
    ivr_enabled = models.BooleanField(
        _("self-service voice menu (IVR)"),
        default=False,
        help_text=_(
            "Callers opt out by key press, verified by their caller ID (voice webhooks, see “Voice menu”)."
        ),
    )
    confirmation_channel = models.CharField(
        _("confirmation channel"),
        max_length=10,
        blank=True,
        choices=[("sms", _("SMS")), ("push", _("App push"))],
        help_text=_("Where the one confirmation goes; empty: SMS."),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["tenant_id", "channel"]
        constraints = [models.UniqueConstraint(fields=["tenant", "channel"], name="channel_setting_unique")]
        verbose_name = _("channel")
        verbose_name_plural = _("channels")

    def __str__(self) -> str:
        state = _("on") if self.enabled else _("off")
        return f"{self.get_channel_display()} ({state})"

    def keywords(self) -> list[str]:
        return [k.strip() for k in self.extra_keywords.replace("，", ",").split(",") if k.strip()]

    def numbers(self) -> list[str]:
        return [n.strip() for n in self.reply_numbers.replace("，", ",").split(",") if n.strip()]


# --- consent evidence and reassigned numbers (issue 16) ------------------------------------------


class ConsentWording(TenantOwnedModel):
    """The exact words a person was shown when they consented, stored once per tenant and
    referenced by their SHA-256 (ConsentRecord.wording_sha256). Holds no personal data."""

    sha256 = models.CharField(_("SHA-256"), max_length=64)
    text = models.TextField(_("wording"))
    created_at = models.DateTimeField(_("first recorded"), default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "sha256"], name="consent_wording_unique")]
        verbose_name = _("consent wording")
        verbose_name_plural = _("consent wordings")

    def __str__(self) -> str:
        return self.text[:60]


class ConsentRecord(TenantOwnedModel):
    """Evidence that a number consented to a service's marketing: how, when, to which words,
    proved by what, captured by whom. No raw number: the tenant digest and the masked
    number. A revocation (an opt-out) supersedes it and names the request; the number's
    erasure minimises it (the evidence that could identify the person is blanked); the
    retention purge deletes it `Tenant.consent_retention_days` after that."""

    class Source(models.TextChoices):
        FORM = "form", _("Web or app form")
        SMS_KEYWORD = "sms_keyword", _("SMS keyword")
        CONTRACT = "contract", _("Contract")
        IMPORT = "import", _("Import")

    service = models.ForeignKey(
        Service, on_delete=models.CASCADE, related_name="consents", verbose_name=_("service")
    )
    phone_hash = models.CharField(_("number hash"), max_length=64)
    phone_masked = models.CharField(_("number"), max_length=24)
    source = models.CharField(_("source"), max_length=20, choices=Source.choices, default=Source.IMPORT)
    source_detail = models.CharField(
        _("source detail"), max_length=200, blank=True, help_text=_("Free text; blanked at erasure.")
    )
    given_at = models.DateTimeField(_("consent time"))
    wording_sha256 = models.CharField(
        _("wording SHA-256"), max_length=64, blank=True, help_text=_("The words shown (consent wordings).")
    )
    evidence_order_id = models.CharField(_("order id"), max_length=100, blank=True)
    evidence_page_version = models.CharField(_("page version"), max_length=100, blank=True)
    evidence_ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    captured_by = models.CharField(
        _("captured by"), max_length=200, blank=True, help_text=_("The API key, import or staff member.")
    )
    recorded_at = models.DateTimeField(_("recorded"), default=timezone.now)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    revoked_by_request = models.ForeignKey(
        UnsubscribeRequest,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="revoked_consents",
        verbose_name=_("revoked by request"),
    )
    minimised_at = models.DateTimeField(
        _("minimised"), null=True, blank=True, help_text=_("When the number was erased: evidence blanked.")
    )

    class Meta:
        ordering = ["-given_at"]
        constraints = [
            # The same consent imported twice is one record.
            models.UniqueConstraint(
                fields=["tenant", "service", "phone_hash", "given_at"], name="consent_record_unique"
            )
        ]
        indexes = [models.Index(fields=["tenant", "phone_hash"])]
        verbose_name = _("consent record")
        verbose_name_plural = _("consent records")

    def __str__(self) -> str:
        return f"{self.phone_masked} → {self.service.code}"


class NumberEvent(TenantOwnedModel):
    """An operator's (or a partner's) report that a number was deactivated or given to a
    new holder on a day. Consents given on or before that day are void: the new holder
    never gave them. Suppressions stay (they can only over-protect)."""

    class Kind(models.TextChoices):
        DEACTIVATED = "deactivated", _("Deactivated")
        REASSIGNED = "reassigned", _("Reassigned")

    phone_hash = models.CharField(_("number hash"), max_length=64)
    phone_masked = models.CharField(_("number"), max_length=24)
    kind = models.CharField(_("event"), max_length=12, choices=Kind.choices)
    occurred_on = models.DateField(_("date"))
    reported_by = models.CharField(_("reported by"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("recorded"), default=timezone.now)

    class Meta:
        ordering = ["-occurred_on"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "phone_hash", "kind", "occurred_on"], name="number_event_unique"
            )
        ]
        indexes = [models.Index(fields=["tenant", "phone_hash"])]
        verbose_name = _("number deactivation or reassignment")
        verbose_name_plural = _("number deactivations and reassignments")

    def __str__(self) -> str:
        return f"{self.phone_masked} {self.get_kind_display()} {self.occurred_on.isoformat()}"


# --- deadlines by regime (unsubscribe/deadlines/) -----------------------------------------


class Measure(models.TextChoices):
    """What a deadline's rule measures: the moment it is met."""

    SUPPRESSED = "suppressed", _("Number suppressed")
    TERMINATED = "terminated", _("Services ended")
    CONFIRMED = "confirmed", _("Confirmation sent")
    ERASED = "erased", _("Request completed, data erased")


class DeadlineUnit(models.TextChoices):
    WORKING_DAYS = "working_days", _("Working days")
    HOURS = "hours", _("Hours")
    MINUTES = "minutes", _("Minutes")


# The longest deadline a rule may set, per unit: a year. Past it a due time is no deadline at all,
# and a date past year 9999 would fail every filing at the tenant.
DEADLINE_MAX_AMOUNT = {
    DeadlineUnit.WORKING_DAYS: 365,
    DeadlineUnit.HOURS: 24 * 366,
    DeadlineUnit.MINUTES: 60 * 24 * 366,
}


class WorkCalendar(models.TextChoices):
    """Working-day calendars: mainland China from `chinese-calendar`, the others from `holidays`."""

    CN = "CN", _("Mainland China (official holidays and adjusted working days)")
    US = "US", _("United States (federal holidays)")


class DeadlineRegime(TenantOwnedModel):
    """A tenant's own deadline rule, or its setting of a built-in one (same regime and rule:
    for example regime `cn`, rule `termination`, 2 working days)."""

    regime = models.SlugField(_("regime"), max_length=50, help_text=_("e.g. cn, us, mailbox, or your own."))
    rule = models.SlugField(_("rule"), max_length=50, help_text=_("e.g. termination, erasure."))
    name = models.CharField(_("name"), max_length=200)
    measure = models.CharField(_("met when"), max_length=20, choices=Measure.choices)
    unit = models.CharField(_("unit"), max_length=20, choices=DeadlineUnit.choices)
    amount = models.PositiveIntegerField(_("amount"))
    calendar = models.CharField(
        _("working-day calendar"),
        max_length=5,
        choices=WorkCalendar.choices,
        blank=True,
        help_text=_("For working days; empty: Monday to Friday."),
    )
    countries = models.CharField(
        _("countries"),
        max_length=200,
        blank=True,
        help_text=_("Regions of the number, comma-separated (e.g. CN, US); empty: every number."),
    )
    channels = models.CharField(
        _("channels"),
        max_length=200,
        blank=True,
        help_text=_("Request channels, comma-separated (e.g. sms, email); empty: every channel."),
    )
    source = models.TextField(
        _("source"), blank=True, help_text=_("The law, contract or policy it comes from.")
    )
    is_active = models.BooleanField(_("active"), default=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["tenant_id", "regime", "rule"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "regime", "rule"], name="deadline_regime_unique")
        ]
        verbose_name = _("deadline regime")
        verbose_name_plural = _("deadline regimes")

    def __str__(self) -> str:
        return f"{self.regime}/{self.rule}: {self.name}"

    def clean(self) -> None:
        if (self.regime, self.rule) == ("tenant", "sla"):
            raise ValidationError({"rule": _("The provider's own SLA is set on the tenant (SLA hours).")})
        if self.amount is not None and self.amount < 1:
            raise ValidationError({"amount": _("A deadline is at least 1 (working day, hour or minute).")})
        longest = (
            DEADLINE_MAX_AMOUNT.get(DeadlineUnit(self.unit)) if self.unit in DeadlineUnit.values else None
        )
        if self.amount is not None and longest is not None and self.amount > longest:
            raise ValidationError(
                {"amount": _("A deadline is at most a year: %(max)s in this unit.") % {"max": f"{longest:,}"}}
            )
        if self.calendar and self.unit != DeadlineUnit.WORKING_DAYS:
            raise ValidationError(
                {"calendar": _("A calendar counts working days: choose working days, or no calendar.")}
            )


class CalendarDay(TenantOwnedModel):
    """Staff's word on one day of a calendar: a working day or a holiday. It wins over the
    library, and fills a year the library does not cover yet."""

    calendar = models.CharField(_("calendar"), max_length=5, choices=WorkCalendar.choices)
    date = models.DateField(_("date"))
    working = models.BooleanField(_("working day"), help_text=_("Unticked: a holiday or a day off."))
    note = models.CharField(_("note"), max_length=200, blank=True, help_text=_("e.g. 春节调休上班"))

    history = HistoricalRecords()

    class Meta:
        ordering = ["tenant_id", "calendar", "date"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "calendar", "date"], name="calendar_day_unique")
        ]
        verbose_name = _("calendar day")
        verbose_name_plural = _("calendar days")

    def __str__(self) -> str:
        return f"{self.calendar} {self.date.isoformat()}"


class CalendarYear(TenantOwnedModel):
    """Staff's word that a year's days of a calendar are all entered (its holidays and adjusted
    working days as CalendarDay rows; every other day Monday to Friday). Until then a year the
    library does not cover stays provisional, however many of its days are entered."""

    calendar = models.CharField(_("calendar"), max_length=5, choices=WorkCalendar.choices)
    year = models.PositiveSmallIntegerField(_("year"))
    note = models.CharField(_("note"), max_length=200, blank=True, help_text=_("e.g. 国务院办公厅通知"))

    history = HistoricalRecords()

    class Meta:
        ordering = ["tenant_id", "calendar", "year"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "calendar", "year"], name="calendar_year_unique")
        ]
        verbose_name = _("calendar year entered")
        verbose_name_plural = _("calendar years entered")

    def __str__(self) -> str:
        return f"{self.calendar} {self.year}"


class RequestDeadline(TenantOwnedModel):
    """One due time of a request under one regime's rule, computed at filing."""

    request = models.ForeignKey(
        UnsubscribeRequest, on_delete=models.CASCADE, related_name="deadlines", verbose_name=_("request")
    )
    regime = models.CharField(_("regime"), max_length=50)
    rule = models.CharField(_("rule"), max_length=50)
    measure = models.CharField(_("met when"), max_length=20, choices=Measure.choices)
    due_at = models.DateTimeField(_("due"))
    met_at = models.DateTimeField(_("met"), null=True, blank=True)
    breached_at = models.DateTimeField(_("breached"), null=True, blank=True)
    # Computed over a year the calendar has no data for (Monday to Friday assumed).
    provisional = models.BooleanField(_("provisional"), default=False)

    class Meta:
        ordering = ["request_id", "due_at", "regime", "rule"]
        constraints = [
            models.UniqueConstraint(fields=["request", "regime", "rule"], name="request_deadline_unique")
        ]
        indexes = [models.Index(fields=["met_at", "breached_at", "due_at"])]
        verbose_name = _("request deadline")
        verbose_name_plural = _("request deadlines")

    def __str__(self) -> str:
        return f"{self.regime}/{self.rule}"


# --- send logs, violations and "I still get messages" (unsubscribe/sendlogs/) -------------------


class SendLogEntry(TenantOwnedModel):
    """One message a sender reports it sent to a number: minimised (the tenant's digest, never the
    number), kept `Tenant.send_log_retention_days`. A send after an opt-out that covers its service
    is a violation (SendViolation)."""

    phone_hash = models.CharField(_("number hash"), max_length=64)
    sent_at = models.DateTimeField(_("sent"))
    service_code = models.CharField(_("service"), max_length=50, blank=True, default="")
    category = models.CharField(_("category"), max_length=100, blank=True, default="")
    template = models.CharField(_("template"), max_length=100, blank=True, default="")
    message_id = models.CharField(_("message id"), max_length=100, blank=True, default="")
    # The sender's message id, or a digest of the natural key (number, time, service, category,
    # template): a record sent again is the same row, counted as a duplicate.
    dedupe_key = models.CharField(_("duplicate key"), max_length=110)
    engaged_at = models.DateTimeField(
        _("engaged"), null=True, blank=True, help_text=_("When the person opened, clicked or replied.")
    )
    received_at = models.DateTimeField(_("reported"), default=timezone.now)

    class Meta:
        ordering = ["-sent_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "dedupe_key"], name="send_log_unique_message")
        ]
        indexes = [
            models.Index(fields=["tenant", "phone_hash", "sent_at"], name="send_log_number_time"),
            models.Index(fields=["tenant", "sent_at"], name="send_log_sent"),
        ]
        verbose_name = _("send log entry")
        verbose_name_plural = _("send log entries")

    def __str__(self) -> str:
        return f"{self.phone_hash[:12]}… {self.service_code or '-'} {self.sent_at.isoformat()}"


class SendViolation(TenantOwnedModel):
    """A message sent to a number after an opt-out covering its service took effect. It keeps its
    own copy of what matters (digest, times, service), so it outlives the send log's short retention
    and stays on the request's record."""

    entry = models.OneToOneField(
        SendLogEntry,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="violation",
        verbose_name=_("send log entry"),
    )
    request = models.ForeignKey(
        UnsubscribeRequest,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="send_violations",
        verbose_name=_("request"),
    )
    phone_hash = models.CharField(_("number hash"), max_length=64)
    scope = models.CharField(_("opt-out scope"), max_length=50)
    suppressed_at = models.DateTimeField(_("opted out"))
    sent_at = models.DateTimeField(_("sent"))
    service_code = models.CharField(_("service"), max_length=50, blank=True, default="")
    detected_at = models.DateTimeField(_("detected"), default=timezone.now)

    class Meta:
        ordering = ["-sent_at"]
        indexes = [
            models.Index(fields=["tenant", "phone_hash"], name="send_violation_number"),
            models.Index(fields=["tenant", "detected_at"], name="send_violation_detected"),
        ]
        verbose_name = _("message after opt-out")
        verbose_name_plural = _("messages after opt-out")

    def __str__(self) -> str:
        return f"{self.service_code or '-'} {self.sent_at.isoformat()}"


class StillReceivingReport(TenantOwnedModel):
    """A person's word that messages still arrive after their opt-out (status page or reply SMS)."""

    class Channel(models.TextChoices):
        WEB = "web", _("Status page")
        SMS = "sms", _("Reply SMS")

    request = models.ForeignKey(
        UnsubscribeRequest,
        on_delete=models.CASCADE,
        related_name="still_receiving_reports",
        verbose_name=_("request"),
    )
    channel = models.CharField(_("channel"), max_length=5, choices=Channel.choices)
    created_at = models.DateTimeField(_("reported"), default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("“I still get messages” report")
        verbose_name_plural = _("“I still get messages” reports")

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.created_at.isoformat()}"


class PlatformDoNotMarket(models.Model):
    """The person's "no marketing from anyone": one row per number, platform-wide (not a
    tenant's row), keyed by `phones.platform_phone_hash`. Every tenant's check, bulk check
    and scrub answers suppressed while the row exists, including tenants created after it.
    Only the person removes it (the hub, with a fresh code); no tenant can."""

    phone_hash = models.CharField(_("number hash"), max_length=64, unique=True)
    # The platform lookup key (digest version 2, `phones.platform_lookup_key`) for the bulk
    # look-ups; empty on an entry of version 1 only (matched by `phone_hash`).
    lookup_key = models.BinaryField(
        _("lookup key"), max_length=16, null=True, blank=True, unique=True, editable=False
    )
    phone_masked = models.CharField(_("number"), max_length=24)
    channel = models.CharField(_("channel"), max_length=10, default="hub")
    created_at = models.DateTimeField(_("since"), default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(  # type: ignore[call-overload]  # django-stubs: a lookup is a condition
                condition=models.Q(lookup_key__isnull=True) | Exact(Length("lookup_key"), 16),
                name="platformdonotmarket_lookup_key_16_bytes",
            )
        ]
        verbose_name = _("platform-wide do-not-market entry")
        verbose_name_plural = _("platform-wide do-not-market entries")

    def __str__(self) -> str:
        return self.phone_masked


class PlatformDoNotMarketEvent(models.Model):
    """Append-only record of the entries set and lifted, with how the number was verified."""

    class Action(models.TextChoices):
        SET = "set", _("Set")
        LIFTED = "lifted", _("Lifted")

    phone_hash = models.CharField(_("number hash"), max_length=64, db_index=True)
    phone_masked = models.CharField(_("number"), max_length=24)
    action = models.CharField(_("action"), max_length=10, choices=Action.choices)
    channel = models.CharField(_("channel"), max_length=10, default="hub")
    evidence = models.JSONField(_("evidence"), default=dict, blank=True)
    created_at = models.DateTimeField(_("when"), default=timezone.now)

    class Meta:
        verbose_name = _("platform-wide do-not-market event")
        verbose_name_plural = _("platform-wide do-not-market events")

    def __str__(self) -> str:
        return f"{self.phone_masked} {self.action}"


# --- the tamper-evident audit record (unsubscribe/audit/, issue 15) ------------------------------


class AuditEntry(TenantOwnedModel):
    """One link of a tenant's append-only, hash-chained record: `hash` is the SHA-256 of the
    entry's canonical content and `prev_hash` (the previous entry's hash). An entry that records
    a row carries `record_digest`, the SHA-256 of that row's canonical content, so `audit_verify`
    can re-read the row and tell an edit, a deletion or an insertion. Holds no personal data:
    digests, masked numbers, references. Written by `audit.services` only, never updated."""

    # Deleting a tenant (every row of it) takes its record along; nothing else deletes an entry.
    # No database constraint: its check at commit would take a key-share lock on the tenant's row,
    # which a transaction that locked it (select_for_update with select_related("tenant")) and
    # waits for this chain's head holds: a deadlock. Django's collector still cascades.
    tenant = models.ForeignKey(
        "tenants.Tenant",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("tenant"),
        db_constraint=False,
    )
    seq = models.PositiveBigIntegerField(_("position"))
    kind = models.CharField(_("what"), max_length=60)
    object_model = models.CharField(_("row"), max_length=100, blank=True)
    object_id = models.CharField(_("row id"), max_length=64, blank=True)
    reference = models.CharField(_("request reference"), max_length=16, blank=True)
    actor = models.CharField(_("who"), max_length=120)
    payload = models.JSONField(_("details"), default=dict, blank=True)
    record_digest = models.CharField(_("row digest"), max_length=64, blank=True)
    prev_hash = models.CharField(_("previous hash"), max_length=64)
    hash = models.CharField(_("hash"), max_length=64)
    created_at = models.DateTimeField(_("time"))

    class Meta:
        ordering = ["tenant_id", "-seq"]
        constraints = [models.UniqueConstraint(fields=["tenant", "seq"], name="audit_entry_unique_seq")]
        indexes = [models.Index(fields=["tenant", "reference"], name="audit_entry_reference")]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit record")

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind}"


class AuditHead(TenantOwnedModel):
    """The end of a tenant's chain: the row an append locks (select_for_update), so appends of
    one tenant are serialised while other tenants' go on. Also where the daily verification
    leaves its verdict for the admin's needs-attention queue."""

    tenant = models.OneToOneField(  # no database constraint: see AuditEntry.tenant
        "tenants.Tenant",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("tenant"),
        db_constraint=False,
    )
    seq = models.PositiveBigIntegerField(_("position"), default=0)
    hash = models.CharField(_("hash"), max_length=64)
    verified_at = models.DateTimeField(_("last verified"), null=True, blank=True)
    broken_at = models.DateTimeField(_("break found"), null=True, blank=True)
    problem = models.TextField(_("break"), blank=True)

    class Meta:
        verbose_name = _("audit chain head")
        verbose_name_plural = _("audit chain heads")

    def __str__(self) -> str:
        return f"#{self.seq}"


class AuditCheckpoint(TenantOwnedModel):
    """The chain head at one moment, signed with the platform's Ed25519 key
    (lanzuan/signing_keys.py) over the canonical JSON of {tenant, seq, hash, created_at}:
    rewriting the chain before `seq` no longer matches what was signed."""

    tenant = models.ForeignKey(  # no database constraint: see AuditEntry.tenant
        "tenants.Tenant",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("tenant"),
        db_constraint=False,
    )
    tenant_slug = models.SlugField(_("tenant (as signed)"), max_length=50)
    seq = models.PositiveBigIntegerField(_("position"))
    hash = models.CharField(_("head hash"), max_length=64)
    created_at = models.DateTimeField(_("signed at"))
    key_id = models.CharField(_("key id"), max_length=32)
    signature = models.CharField(_("signature"), max_length=128)
    reason = models.CharField(_("why"), max_length=20, default="periodic")

    class Meta:
        ordering = ["tenant_id", "-created_at"]
        indexes = [models.Index(fields=["tenant", "created_at"], name="audit_checkpoint_time")]
        verbose_name = _("audit checkpoint")
        verbose_name_plural = _("audit checkpoints")

    def __str__(self) -> str:
        return f"#{self.seq} {self.key_id}"
