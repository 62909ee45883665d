"""One-time codes that tie a web (or hub) opt-out to the number.

The code itself is never stored: only a keyed hash. The raw number is kept only
while it is needed to file the request, and blanked when the code is used, when
it expires unused, and when the number's data is erased.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
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
