"""One-time codes that tie a web (or hub) opt-out to the number.

The code itself is never stored: only a keyed hash. The raw number is kept only
while it is needed to file the request, and blanked when the code is used, when
it expires unused, and when the number's data is erased.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from tenants.scoping import TenantOwnedModel


class PhoneVerification(TenantOwnedModel):
    class Purpose(models.TextChoices):
        WEB = "web", _("Opt-out page")
        HUB = "hub", _("One-stop hub")

    purpose = models.CharField(_("purpose"), max_length=4, choices=Purpose.choices, default=Purpose.WEB)
    phone = models.CharField(
        _("number"), max_length=20, blank=True, help_text=_("E.164; blank once used or expired.")
    )
    phone_hash = models.CharField(_("number hash"), max_length=64)
    phone_masked = models.CharField(_("masked number"), max_length=24)
    code_hash = models.CharField(_("code hash"), max_length=64)
    language = models.CharField(_("language"), max_length=10, default="zh-hans")
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"))
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    verified_at = models.DateTimeField(_("verified"), null=True, blank=True)
    used_at = models.DateTimeField(_("used"), null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "phone_hash"]),
            # The sweep looks for rows that still hold a number.
            models.Index(
                fields=["expires_at"], condition=~models.Q(phone=""), name="verification_with_phone"
            ),
        ]
        verbose_name = _("phone verification")
        verbose_name_plural = _("phone verifications")

    def __str__(self) -> str:
        return f"{self.phone_masked} ({self.get_purpose_display()})"


# --- alternatives beside the opt-out, and what people choose (issue 17) ------------------------


class Choice(models.TextChoices):
    """What a person chose on the hub or a tenant's page (counted per tenant and day)."""

    STOP = "stop", _("Stopped")
    PAUSE30 = "pause30", _("Paused 30 days")
    PAUSE90 = "pause90", _("Paused 90 days")
    FEWER = "fewer", _("Fewer messages")
    CHANNEL = "channel", _("Another channel")
    DO_NOT_MARKET = "do_not_market", _("No marketing from anyone")


STANDARD_LABELS = {
    "fewer": _("Fewer messages"),
    "pause30": _("Pause 30 days"),
    "pause90": _("Pause 90 days"),
    "channel": _("Another channel instead"),
}


class Alternative(TenantOwnedModel):
    """An alternative the tenant offers beside its opt-out. Shown beside the stop button,
    never in front of it and never as a step before it (PIPL art. 24)."""

    class Kind(models.TextChoices):
        FEWER = "fewer", _("Fewer messages")
        PAUSE30 = "pause30", _("A pause of 30 days")
        PAUSE90 = "pause90", _("A pause of 90 days")
        CHANNEL = "channel", _("Another channel")

    class Channel(models.TextChoices):
        SMS = "sms", _("SMS")
        EMAIL = "email", _("Email")
        APP = "app", _("App notifications")

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    is_active = models.BooleanField(_("offered"), default=True)
    channel = models.CharField(
        _("other channel"),
        max_length=10,
        choices=Channel.choices,
        blank=True,
        help_text=_('For "another channel": the channel offered instead.'),
    )
    label_zh = models.CharField(
        _("button text (Chinese)"), max_length=60, blank=True, help_text=_("Empty: the standard text.")
    )
    label_en = models.CharField(
        _("button text (English)"), max_length=60, blank=True, help_text=_("Empty: the standard text.")
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "kind"], name="alternative_unique_kind")]
        verbose_name = _("alternative to opting out")
        verbose_name_plural = _("alternatives to opting out")

    def __str__(self) -> str:
        return str(self.get_kind_display())

    def clean(self) -> None:
        if self.kind == self.Kind.CHANNEL and not self.channel:
            raise ValidationError({"channel": _("Choose the channel you offer instead.")})
        if self.kind != self.Kind.CHANNEL:
            self.channel = ""

    def label(self, language: str) -> str:
        """The button's text in the person's language: the tenant's own, or the standard one."""
        own = self.label_en if language == "en" else self.label_zh
        if own:
            return own
        with translation.override(language):
            if self.kind == self.Kind.CHANNEL and self.channel:
                return str(_("By %(channel)s instead") % {"channel": self.Channel(self.channel).label})
            return str(STANDARD_LABELS[self.kind])


class MarketingPreference(TenantOwnedModel):
    """A person's "fewer messages" or "another channel" for one service or all of the tenant's
    marketing: recorded, sent to the tenant's webhooks (`preference.recorded`), honoured by
    the tenant's own sending. Keyed by the tenant's digest; the masked number only."""

    phone_hash = models.CharField(_("number hash"), max_length=64)
    phone_masked = models.CharField(_("number"), max_length=24)
    kind = models.CharField(_("kind"), max_length=10, choices=Alternative.Kind.choices)
    scope = models.CharField(_("scope"), max_length=50, default="*")
    channel = models.CharField(_("other channel"), max_length=10, blank=True)
    created_at = models.DateTimeField(_("recorded"), default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["tenant", "phone_hash"])]
        verbose_name = _("marketing preference")
        verbose_name_plural = _("marketing preferences")

    def __str__(self) -> str:
        return f"{self.phone_masked} {self.kind}"


class ChoiceDay(TenantOwnedModel):
    """How many people made each choice on a tenant's day: counts only, no personal data."""

    day = models.DateField(_("day"))
    choice = models.CharField(_("choice"), max_length=16, choices=Choice.choices)
    count = models.PositiveIntegerField(_("count"), default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "day", "choice"], name="choice_day_unique")]
        verbose_name = _("choice of the day")
        verbose_name_plural = _("choices people made")

    def __str__(self) -> str:
        return f"{self.day} {self.choice}: {self.count}"
