from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InboundConfig(AppConfig):
    """Reply-SMS channel: inbound gateway webhooks and what each reply causes."""

    name = "unsubscribe.inbound"
    label = "inbound"
    verbose_name = _("Reply SMS")
