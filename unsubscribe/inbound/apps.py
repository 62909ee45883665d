from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InboundConfig(AppConfig):
    """Reply-SMS channel: inbound gateway webhooks and what each reply causes."""

    name = "unsubscribe.inbound"
    label = "inbound"
    verbose_name = _("Reply SMS")

    def ready(self) -> None:
        # Models (and so the services and selectors) load only once the app registry is ready.
        from tenants.models import Tenant  # noqa: PLC0415
        from unsubscribe import attention  # noqa: PLC0415
        from unsubscribe.cases.selectors import case_source_register  # noqa: PLC0415
        from unsubscribe.models import ChannelSetting, Service  # noqa: PLC0415
        from unsubscribe.pipeline.datasources import DataSource, register_source  # noqa: PLC0415
        from unsubscribe.proofs.pack import proof_section_register  # noqa: PLC0415

        from . import selectors  # noqa: PLC0415
        from .models import InboundCredential, PlatformInboundCredential, ReplyRoute  # noqa: PLC0415
        from .services import inbound_messages_erase_number  # noqa: PLC0415

        # The configuration each reply reads, remembered per process: forgotten when any of it changes.
        selectors.config_memo.forget_on_change(
            Tenant, InboundCredential, PlatformInboundCredential, ChannelSetting, ReplyRoute, Service
        )

        # Replies keep the raw number and the text until the number's data is erased.
        register_source(
            DataSource.platform_copy(
                "inbound.messages",
                inbound_messages_erase_number,
                label=_("Inbound SMS (Lanzuan)"),
                public_label=_("the SMS replies you sent"),
            )
        )
        # The admin home: replies flagged for staff, per tenant; unroutable ones, platform-wide.
        attention.channel_count_register(
            attention.ChannelCount(
                key="flagged_replies",
                label=_("Reply SMS flagged for staff (held or unclear)"),
                records=selectors.flagged_replies,
                changelist="admin:inbound_inboundmessage_changelist",
                params={"flagged": "yes"},
            )
        )
        attention.platform_item_register(selectors.unrouted_attention)
        # The case page of a number (unsubscribe/cases): its replies.
        case_source_register("inbound.replies", selectors.case_replies)
        # The proof pack of a request (unsubscribe/proofs): the texts received.
        proof_section_register("texts_received", selectors.proof_replies, order=50)
