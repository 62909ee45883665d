from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _

from lanzuan.fields import check_field_keys
from lanzuan.signing_keys import check_signing_keys


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = _("Tenants")

    def ready(self) -> None:
        from . import row_security, tasks_scope  # noqa: PLC0415 (models load only once apps are ready)
        from .authentication import key_memo  # noqa: PLC0415 (it imports the models)
        from .models import Tenant, TenantAPIKey  # noqa: PLC0415 (models load only once apps are ready)

        # A key revoked, or a tenant switched off, in this process is refused here at once
        # (other processes: within authentication.KEY_CACHE_SECONDS).
        key_memo.forget_on_change(Tenant, TenantAPIKey)

        # Once per migrate run (sender: this app only), after every app's tables exist.
        post_migrate.connect(row_security.post_migrate, sender=self, dispatch_uid="lanzuan_row_security")
        tasks_scope.connect()
        # No LANZUAN_FIELD_KEYS with DEBUG off: `check`, `migrate` and `runserver` stop.
        checks.register(check_field_keys)
        # Nor without LANZUAN_SIGNING_KEYS: the audit record and receipts are signed with it.
        checks.register(check_signing_keys)
