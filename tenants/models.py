"""Tenants (operators and third-party platforms), their members and API keys."""

from __future__ import annotations

import uuid
import zoneinfo
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import AbstractAPIKey, APIKeyManager
from simple_history.models import HistoricalRecords

from lanzuan import contrast


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(_("%(value)s is not a known time zone."), params={"value": value})


def validate_brand_contrast(value: str) -> None:
    """The brand colour carries white text (page header, buttons) and colours links on
    white: WCAG AA asks 4.5:1 for both. The message names the ratio and the nearest
    darker shade that passes, so the fix is one copy and paste."""
    try:
        ratio = contrast.contrast_ratio(value, contrast.WHITE)
    except ValueError:
        return  # the format is the RegexValidator's to report
    if ratio >= contrast.AA_NORMAL:
        return
    raise ValidationError(
        _(
            "%(colour)s has a contrast of %(ratio)s:1 with the white text on it; at least 4.5:1 is "
            "needed to be readable (WCAG AA). The nearest darker colour that passes is %(suggestion)s."
        ),
        code="low_contrast",
        params={
            "colour": value.upper(),
            "ratio": contrast.shown_ratio(ratio),
            "suggestion": contrast.nearest_darker_passing(value),
        },
    )


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """The first instant of `day` in `zone`, as an aware datetime.

    The one way a bare date (an API filter, a dashboard day) becomes a point in time:
    a provider's "1 March" starts at midnight where the provider is, not in UTC and not
    in the server's zone. Where a DST change skips midnight, the day starts at the
    first wall time that exists (normalised through UTC).
    """
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC).astimezone(zone)


def tenants_zone(tenants: models.QuerySet[Tenant]) -> tzinfo:
    """The zone a page over these tenants counts days in: theirs if they share one,
    else the platform's (settings.TIME_ZONE), which such a page should name."""
    zones = set(tenants.order_by().values_list("time_zone", flat=True).distinct()[:2])
    if len(zones) == 1:
        return zoneinfo.ZoneInfo(zones.pop())
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


class Tenant(models.Model):
    class Kind(models.TextChoices):
        OPERATOR = "operator", _("Telecom operator")
        PLATFORM = "platform", _("Third-party marketing platform")

    class ErasureMode(models.TextChoices):
        DELETE = "delete", _("Delete")
        ANONYMISE = "anonymise", _("Anonymise")

    slug = models.SlugField(_("slug"), max_length=50, unique=True)
    name = models.CharField(_("display name"), max_length=200)
    # Read by English voice prompts (and fall back to `name`): an en-US voice cannot read Hanzi.
    name_en = models.CharField(_("English name"), max_length=200, blank=True, default="", db_default="")
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.PLATFORM)
    default_language = models.CharField(
        _("default language"), max_length=10, choices=settings.LANGUAGES, default="zh-hans"
    )
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="Asia/Shanghai", validators=[validate_time_zone]
    )
    logo_url = models.URLField(_("logo URL"), blank=True)
    brand_colour = models.CharField(
        _("brand colour"),
        max_length=7,
        default="#1F4FD8",
        validators=[
            RegexValidator(r"^#[0-9A-Fa-f]{6}$", _("Use a colour like #1F4FD8.")),
            validate_brand_contrast,
        ],
        help_text=_(
            "Shown behind white text and as the colour of links: needs a contrast of 4.5:1 with white."
        ),
    )
    # Policies
    sla_hours = models.PositiveIntegerField(
        _("SLA hours"),
        default=48,
        # a year at most: a due time past year 9999 would fail every filing
        validators=[MinValueValidator(1), MaxValueValidator(24 * 366)],
        help_text=_("Hours within which a request must be completed."),
    )
    allow_resubscribe = models.BooleanField(
        _("allow re-subscribe"),
        default=True,
        help_text=_("If off, an opt-out is irreversible and re-subscribe requests are refused."),
    )
    erasure_mode = models.CharField(
        _("erasure mode"), max_length=16, choices=ErasureMode.choices, default=ErasureMode.DELETE
    )
    erasure_delay_hours = models.PositiveIntegerField(
        _("erasure delay (hours)"),
        default=0,
        help_text=_("0 erases right after the confirmation is sent."),
    )
    record_retention_days = models.PositiveIntegerField(
        _("record retention (days)"),
        default=1095,
        help_text=_("How long masked request records and receipts are kept."),
    )
    consent_retention_days = models.PositiveIntegerField(
        _("consent evidence retention (days)"),
        default=150,
        db_default=150,  # rows written by code that predates the field (old migrations' states) get it too
        help_text=_(
            "How long a consent record is kept, minimised (number digest, masked number, times, wording "
            "hash), after the number was erased. The 2020 MIIT draft rules on commercial SMS asked for "
            "consent evidence to be kept at least 5 months: 150 days."
        ),
    )
    send_log_retention_days = models.PositiveIntegerField(
        _("send log retention (days)"),
        default=30,
        db_default=30,
        validators=[MinValueValidator(1), MaxValueValidator(180)],
        help_text=_(
            "How long the send logs partners report (number digest, time, service) are kept: "
            "long enough to catch a message after an opt-out, no longer. 1 to 180 days."
        ),
    )
    terms_zh = models.TextField(
        _("terms (Chinese)"),
        blank=True,
        help_text=_(
            "Shown on the opt-out page: what stops, from when, whether it can be undone, "
            "what data is deleted and when."
        ),
    )
    terms_en = models.TextField(_("terms (English)"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["slug"]
        verbose_name = _("tenant")
        verbose_name_plural = _("tenants")

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    @property
    def zoneinfo(self) -> zoneinfo.ZoneInfo:
        """The tenant's own time zone: its days (filters, dashboard, exports) start here."""
        return zoneinfo.ZoneInfo(self.time_zone)

    def local_midnight(self, day: date) -> datetime:
        return local_midnight(day, self.zoneinfo)

    def terms_for(self, language: str) -> str:
        return self.terms_en if language.startswith("en") and self.terms_en else self.terms_zh


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    ADMIN = "admin", _("Administrator")
    AGENT = "agent", _("Agent")
    VIEWER = "viewer", _("Viewer")


# Who may change what. Configuration: owners and admins. Operations (filing and
# retrying requests): agents too. Viewers only read.
CONFIG_ROLES = frozenset({Role.OWNER, Role.ADMIN})
OPERATIONS_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.AGENT})


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("user")
    )
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("tenant")
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")
        ]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant.slug} ({self.get_role_display()})"


class Invitation(models.Model):
    """An owner's invitation for one person to join one tenant with one role.

    The link's token is shown once (and emailed when there is an address); only its
    SHA-256 is kept. Used once, until it expires or is revoked.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        ACCEPTED = "accepted", _("Accepted")
        REVOKED = "revoked", _("Revoked")
        EXPIRED = "expired", _("Expired")

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="invitations", verbose_name=_("tenant")
    )
    email = models.EmailField(
        _("email address"),
        blank=True,
        help_text=_("The link is emailed here. Leave empty to pass the link on yourself."),
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.VIEWER)
    token_hash = models.CharField(_("token hash"), max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("invited by"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"))
    accepted_at = models.DateTimeField(_("accepted"), null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("accepted by"),
    )
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("revoked by"),
    )

    history = HistoricalRecords(excluded_fields=["token_hash"])

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")

    def __str__(self) -> str:
        return f"{self.email or _('link')} → {self.tenant.slug} ({self.get_role_display()})"

    def status(self, now: datetime | None = None) -> str:
        if self.accepted_at is not None:
            return self.Status.ACCEPTED
        if self.revoked_at is not None:
            return self.Status.REVOKED
        if self.expires_at <= (now or timezone.now()):
            return self.Status.EXPIRED
        return self.Status.PENDING


class TenantAPIKeyManager(APIKeyManager):
    def get_usable_keys(self) -> models.QuerySet[Any]:
        # Every API request reads the key's tenant (is it active? whose rows?): one query, not two.
        return super().get_usable_keys().select_related("tenant")

    def assign_key(self, obj: AbstractAPIKey) -> str:
        # The library makes the id "<prefix>.<hash of the key>": the hash would reach the
        # history table, admin URLs and log entries, and throttle keys. The id is random
        # instead; the hash stays in `hashed_key` alone (never copied to history).
        key = super().assign_key(obj)
        obj.id = uuid.uuid4()  # type: ignore[assignment]  # the library types it str
        return key


class TenantAPIKey(AbstractAPIKey):
    """A partner's key. Only a hash is stored; the key is shown once on creation.

    Its id is random (not derived from the key), so the hash is in `hashed_key` only."""

    objects: ClassVar[TenantAPIKeyManager] = TenantAPIKeyManager()

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="api_keys", verbose_name=_("tenant")
    )

    # The library's fields have no translatable labels (and English-only help); the same
    # columns, relabelled, so the admin reads in the staff's language.
    id = models.UUIDField(_("id"), primary_key=True, default=uuid.uuid4, editable=False)  # type: ignore[assignment]
    prefix = models.CharField(_("prefix"), max_length=8, unique=True, editable=False)
    hashed_key = models.CharField(_("key hash"), max_length=150, editable=False)
    created = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    name = models.CharField(
        _("name"),
        max_length=50,
        blank=False,
        default=None,
        help_text=_(
            "A name for the key, e.g. the system that uses it; need not be unique; 50 characters at most."
        ),
    )
    revoked = models.BooleanField(
        _("revoked"),
        blank=True,
        default=False,
        help_text=_("A revoked key cannot be used any more. This cannot be undone."),
    )
    expiry_date = models.DateTimeField(
        _("expires"),
        blank=True,
        null=True,
        help_text=_("After this time the key cannot be used any more."),
    )

    history = HistoricalRecords(excluded_fields=["hashed_key"])

    class Meta(AbstractAPIKey.Meta):
        # (lazy translations, where the package's Meta declares plain strings)
        verbose_name = _("API key")  # type: ignore[assignment]
        verbose_name_plural = _("API keys")  # type: ignore[assignment]
