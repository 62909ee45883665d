from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InboundConfig(AppConfig):
    """Reply-SMS channel: inbound gateway webhooks and what each reply causes."""

    name = "unsubscribe.inbound"
    label = "inbound"
    verbose_name = _("Reply SMS")

    def ready(self) -> None:
        from unsubscribe.pipeline.datasources import DataSource, register_source

        from .services import inbound_messages_erase_number

        # Replies keep the raw number and the text until the number's data is erased.
        register_source(
            DataSource.platform_copy(
                "inbound.messages",
                inbound_messages_erase_number,
                label=_("Inbound SMS (Lanzuan)"),
                public_label=_("the SMS replies you sent"),
            )
        )
