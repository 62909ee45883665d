from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class UnsubscribeConfig(AppConfig):
    name = "unsubscribe"
    verbose_name = _("Unsubscribe")

    def ready(self) -> None:
        from . import domain_events
        from .alerts import alert_staff_on_attention
        from .pipeline import datasources  # noqa: F401  (registers the built-in data sources)

        domain_events.subscribe(alert_staff_on_attention)
