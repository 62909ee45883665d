from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = _("Notifications")

    def ready(self) -> None:
        from unsubscribe.pipeline.datasources import DataSource, register_source

        from .services import messages_erase_number

        # Messages keep the raw number until they are final; erasure clears the rest.
        register_source(
            DataSource.platform_copy(
                "notifications.messages",
                messages_erase_number,
                label=_("Messages sent (Lanzuan)"),
                public_label=_("the messages we sent you"),
            )
        )
