from typing import Any

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PartnerConfig(AppConfig):
    """The partner API, scrub jobs and signed event webhooks."""

    name = "unsubscribe.partner"
    label = "partner"
    verbose_name = _("Partner API and webhooks")

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from unsubscribe import domain_events

        from . import checks  # noqa: F401  (registers the rate settings check)
        from .models import ScrubJob
        from .webhooks import on_domain_event

        # Webhook deliveries are recorded in the transaction that emits each event.
        domain_events.subscribe(on_domain_event)
        post_delete.connect(_delete_scrub_files, sender=ScrubJob, dispatch_uid="partner_scrub_files")


def _delete_scrub_files(sender: type, instance: Any, **kwargs: Any) -> None:
    from .scrub import scrub_job_files_delete

    scrub_job_files_delete(instance)
