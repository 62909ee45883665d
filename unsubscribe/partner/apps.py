from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PartnerConfig(AppConfig):
    """The partner API, scrub jobs and signed event webhooks."""

    name = "unsubscribe.partner"
    label = "partner"
    verbose_name = _("Partner API and webhooks")

    def ready(self) -> None:
        # Models (and so everything that reads them) load only once the app registry is ready.
        from django.db.models.signals import post_delete  # noqa: PLC0415

        from unsubscribe import domain_events  # noqa: PLC0415

        from . import checks  # noqa: F401, PLC0415  (registers the rate settings check)
        from .models import ScrubJob  # noqa: PLC0415
        from .scrub import scrub_job_deleted  # noqa: PLC0415
        from .webhooks import on_domain_event  # noqa: PLC0415

        # Webhook deliveries are recorded in the transaction that emits each event.
        domain_events.subscribe(on_domain_event)
        post_delete.connect(scrub_job_deleted, sender=ScrubJob, dispatch_uid="partner_scrub_files")
