from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VoiceConfig(AppConfig):
    """Self-service voice menu (IVR): callers opt out by key press, verified by caller ID."""

    name = "unsubscribe.voice"
    label = "voice"
    verbose_name = _("Voice menu (IVR)")

    def ready(self) -> None:
        # Models (and so the services) load only once the app registry is ready.
        from unsubscribe.cases.selectors import case_source_register  # noqa: PLC0415
        from unsubscribe.pipeline.datasources import DataSource, register_source  # noqa: PLC0415

        from .selectors import case_calls  # noqa: PLC0415
        from .services import voice_calls_erase_number  # noqa: PLC0415

        # A call keeps the raw caller number only while it runs; this clears what is left
        # (a call from the same number that dropped mid-menu) when the number's data is erased.
        register_source(
            DataSource.platform_copy(
                "voice.calls",
                voice_calls_erase_number,
                label=_("Voice calls (Lanzuan)"),
                public_label=_("the calls you made to the voice menu"),
            )
        )
        # The case page of a number (unsubscribe/cases): its calls to the voice menu.
        case_source_register("voice.calls", case_calls)
