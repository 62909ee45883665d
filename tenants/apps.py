from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _

from lanzuan.fields import check_field_keys


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = _("Tenants")

    def ready(self) -> None:
        # No LANZUAN_FIELD_KEYS with DEBUG off: `check`, `migrate` and `runserver` stop.
        checks.register(check_field_keys)
