from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InboundConfig(AppConfig):
    """Reply-SMS channel: inbound gateway webhooks and what each reply causes."""

    name = "unsubscribe.inbound"
    label = "inbound"
    verbose_name = _("Reply SMS")

    def ready(self) -> None:
        from unsubscribe.pipeline.datasources import register_scrubber

        from .services import inbound_messages_scrub

        # Replies keep the raw number and the text until the number's data is erased.
        register_scrubber(
            "inbound.messages",
            inbound_messages_scrub,
            label=_("Inbound SMS (Lanzuan)"),
            public_label=_("the SMS replies you sent"),
        )
