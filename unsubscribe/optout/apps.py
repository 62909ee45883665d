from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OptoutConfig(AppConfig):
    """Public opt-out pages, one-time codes, the status page and the one-stop hub."""

    name = "unsubscribe.optout"
    label = "optout"
    verbose_name = _("Opt-out pages")
