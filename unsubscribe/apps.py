from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class UnsubscribeConfig(AppConfig):
    name = "unsubscribe"
    verbose_name = _("Unsubscribe")

    def ready(self) -> None:
        # Models (and so everything that reads them) load only once the app registry is ready.
        from django.db.models.signals import post_delete, pre_delete  # noqa: PLC0415
        from simple_history.signals import post_create_historical_record  # noqa: PLC0415

        from notifications import services as notification_services  # noqa: PLC0415
        from tenants import history  # noqa: PLC0415
        from tenants.models import Tenant  # noqa: PLC0415
        from tenants.readiness import readiness_check_register  # noqa: PLC0415

        from . import attention, domain_events  # noqa: PLC0415
        from .alerts import alert_staff_on_attention  # noqa: PLC0415
        from .audit import records as audit_records  # noqa: PLC0415
        from .cases.selectors import case_source_register  # noqa: PLC0415
        from .channels import reply_keywords  # noqa: PLC0415
        from .deadlines.selectors import calendar_warning, sla_warning  # noqa: PLC0415
        from .models import SubscriptionImport, UnsubscribeRequest, scope_label  # noqa: PLC0415
        from .pipeline.datasources import DataSource, register_source  # noqa: PLC0415 (and registers the built-in data sources)
        from .pipeline.steps import confirmation_recipient  # noqa: PLC0415
        from .retention import files  # noqa: F401, PLC0415 (registers the core's stored files)
        from .sendlogs.selectors import case_still_receiving, case_violations  # noqa: PLC0415
        from .subscriptions.services import subscription_import_deleted  # noqa: PLC0415
        from .suppressions import index as suppression_index  # noqa: PLC0415

        domain_events.subscribe(alert_staff_on_attention)
        # Every history row of a tenant's model (request states, step results, configuration)
        # gets its audit entry in the transaction that wrote it (unsubscribe/audit/records.py).
        post_create_historical_record.connect(
            audit_records.history_row_recorded, dispatch_uid="lanzuan_audit_history"
        )
        pre_delete.connect(
            audit_records.tenant_pre_delete, sender=Tenant, dispatch_uid="lanzuan_audit_tenant_deleting"
        )
        post_delete.connect(
            audit_records.tenant_post_delete, sender=Tenant, dispatch_uid="lanzuan_audit_tenant_deleted"
        )
        # A deleted tenant's suppression index goes with it (on this host; other hosts' copies
        # are never read again: tenant ids are not reused).
        post_delete.connect(
            suppression_index.tenant_deleted, sender=Tenant, dispatch_uid="lanzuan_suppression_index_tenant"
        )
        pre_delete.connect(
            audit_records.request_pre_delete,
            sender=UnsubscribeRequest,
            dispatch_uid="lanzuan_audit_request_delete",
        )
        # An import's upload goes with its row (and once imported: subscriptions.services).
        post_delete.connect(
            subscription_import_deleted, sender=SubscriptionImport, dispatch_uid="import_files"
        )

        # The layers below this app read what only it knows through these hooks.
        def messages_erase(request: UnsubscribeRequest) -> int:
            return notification_services.messages_erase_recipient(
                tenant_id=request.tenant_id, to_hash=request.phone_hash
            )

        # Messages keep the raw number until they are final; erasure clears the rest.
        register_source(
            DataSource.platform_copy(
                "notifications.messages",
                messages_erase,
                label=_("Messages sent (Lanzuan)"),
                public_label=_("the messages we sent you"),
            )
        )
        notification_services.reply_keywords_register(reply_keywords)
        # Staff may send a failed confirmation again while its request still holds the number.
        notification_services.message_recipient_register(confirmation_recipient)
        history.field_label_register("scope", scope_label)
        # A working-day calendar without this year's (or next year's) days: deadlines would be guessed.
        readiness_check_register(calendar_warning)
        readiness_check_register(sla_warning)
        # Send logs (issue 17) on the case page: messages after the opt-out, the person's reports.
        case_source_register("send_violations", case_violations)
        case_source_register("still_receiving", case_still_receiving)
        # Superusers see how many tenants' audit records the daily verification found broken.
        attention.platform_item_register(attention.audit_breaks_attention)
