from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = _("Notifications")

    def ready(self) -> None:
        # Models (and so the services) load only once the app registry is ready.
        from tenants.readiness import readiness_check_register  # noqa: PLC0415

        from .services import sms_gateway_warning  # noqa: PLC0415

        readiness_check_register(sms_gateway_warning)
