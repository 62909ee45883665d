from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PartnerConfig(AppConfig):
    """The partner API, scrub jobs and signed event webhooks."""

    name = "unsubscribe.partner"
    label = "partner"
    verbose_name = _("Partner API and webhooks")
