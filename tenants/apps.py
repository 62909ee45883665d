from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import post_delete, post_migrate, post_save
from django.utils.translation import gettext_lazy as _

from lanzuan.fields import check_field_keys
from lanzuan.signing_keys import check_signing_keys


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = _("Tenants")

    def ready(self) -> None:
        from . import row_security, tasks_scope  # noqa: PLC0415 (models load only once apps are ready)
        from .authentication import forget_keys_on_change  # noqa: PLC0415 (it imports the models)
        from .models import Tenant, TenantAPIKey  # noqa: PLC0415 (models load only once apps are ready)

        # A key revoked, or a tenant switched off, in this process is refused here at once
        # (other processes: within authentication.KEY_CACHE_SECONDS).
        for model in (Tenant, TenantAPIKey):
            for signal in (post_save, post_delete):
                uid = f"lanzuan_forget_keys_{model.__name__}_{'save' if signal is post_save else 'delete'}"
                signal.connect(forget_keys_on_change, sender=model, dispatch_uid=uid)

        # Once per migrate run (sender: this app only), after every app's tables exist.
        post_migrate.connect(row_security.post_migrate, sender=self, dispatch_uid="lanzuan_row_security")
        tasks_scope.connect()
        # No LANZUAN_FIELD_KEYS with DEBUG off: `check`, `migrate` and `runserver` stop.
        checks.register(check_field_keys)
        # Nor without LANZUAN_SIGNING_KEYS: the audit record and receipts are signed with it.
        checks.register(check_signing_keys)
