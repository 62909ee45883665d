from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OptoutConfig(AppConfig):
    """Public opt-out pages, one-time codes, the status page and the one-stop hub."""

    name = "unsubscribe.optout"
    label = "optout"
    verbose_name = _("Opt-out pages")

    def ready(self) -> None:
        # Models (and so the services) load only once the app registry is ready.
        from unsubscribe.pipeline.datasources import DataSource, register_source  # noqa: PLC0415

        from .services import verifications_erase_number  # noqa: PLC0415

        # A verification keeps the number only until it is used or expires; erasure clears the rest.
        register_source(
            DataSource.platform_copy(
                "optout.verifications",
                verifications_erase_number,
                label=_("One-time codes (Lanzuan)"),
                public_label=_("the one-time codes sent to you"),
            )
        )
