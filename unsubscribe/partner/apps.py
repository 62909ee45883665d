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
        from unsubscribe.retention.files import StoredFiles, media_root, stored_files_register  # noqa: PLC0415

        from . import checks, scrub, sendlog_import  # noqa: F401, PLC0415  (checks registers the rate settings check)
        from .models import ScrubJob, SendLogImport  # noqa: PLC0415
        from .webhooks import on_domain_event  # noqa: PLC0415

        # Webhook deliveries are recorded in the transaction that emits each event.
        domain_events.subscribe(on_domain_event)
        post_delete.connect(scrub.scrub_job_deleted, sender=ScrubJob, dispatch_uid="partner_scrub_files")
        post_delete.connect(
            sendlog_import.send_log_import_deleted,
            sender=SendLogImport,
            dispatch_uid="partner_send_log_files",
        )
        # The files a scrub job writes, each with its limit (the hourly stored file expiry).
        for kind in (
            StoredFiles(
                key="scrub_uploads",
                root=media_root,
                pattern="scrub/*/uploads/*",
                max_age=scrub.UPLOAD_MAX_AGE,
                expire_rows=lambda now: scrub.scrub_uploads_expire(now=now),
            ),
            StoredFiles(
                key="scrub_results",
                root=media_root,
                pattern="scrub/*/results/*",
                max_age=scrub.RESULT_TTL,
                expire_rows=lambda now: scrub.scrub_results_expire(now=now),
            ),
            StoredFiles(
                key="send_log_uploads",
                root=media_root,
                pattern="sendlogs/*/uploads/*",
                max_age=scrub.UPLOAD_MAX_AGE,
                expire_rows=lambda now: sendlog_import.send_log_uploads_expire(now=now),
            ),
            StoredFiles(
                key="scrub_work_files",
                root=scrub.work_root,
                pattern="scrub-*",
                max_age=scrub.WORK_FILES_MAX_AGE,
                dirs=True,
            ),
        ):
            stored_files_register(kind)
