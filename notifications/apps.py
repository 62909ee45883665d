from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = _("Notifications")

    def ready(self) -> None:
        from unsubscribe.pipeline.datasources import register_scrubber

        from .services import messages_scrub_recipient

        # Messages keep the raw number until they are final; erasure clears the rest.
        register_scrubber(
            "notifications.messages",
            messages_scrub_recipient,
            label=_("Messages sent (Lanzuan)"),
            public_label=_("the messages we sent you"),
        )
