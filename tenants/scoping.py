"""The one place that decides which tenant's rows a caller may see.

Every tenant-owned model inherits `TenantOwnedModel` (a `tenant` foreign key, so
the schema can later be distributed by tenant). Reads go through
`Model.objects.for_tenant(tenant)` or `.for_user(user)`; the admin mixin
(`tenants.admin.TenantScopedAdmin`) and the DRF base view (`tenants.api`) use
these and nothing else. Escape hatches are loud: `Model.objects.unscoped()`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from django.apps import apps
from django.db import models
from django.utils.translation import gettext_lazy as _

from .models import Membership, Tenant

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    AnyUser = AbstractBaseUser | AnonymousUser

_M = TypeVar("_M", bound=models.Model)


def tenant_ids_for_user(user: Any, roles: Iterable[str] | None = None) -> list[int]:
    """Tenants the user is a member of (with one of `roles`, if given)."""
    if not getattr(user, "is_authenticated", False):
        return []
    memberships = Membership.objects.filter(user_id=user.pk, tenant__is_active=True)
    if roles is not None:
        memberships = memberships.filter(role__in=list(roles))
    return list(memberships.values_list("tenant_id", flat=True))


class TenantQuerySet(models.QuerySet[_M]):
    def for_tenant(self, tenant: Tenant | int) -> TenantQuerySet[_M]:
        tenant_id = tenant if isinstance(tenant, int) else tenant.pk
        if tenant_id is None:
            raise ValueError("for_tenant() needs a saved tenant")
        return self.filter(tenant_id=tenant_id)

    def for_user(self, user: Any) -> TenantQuerySet[_M]:
        """Superusers see every tenant; others their memberships'; anyone else nothing."""
        if getattr(user, "is_superuser", False) and user.is_active:
            return self.all()
        return self.filter(tenant_id__in=tenant_ids_for_user(user))

    def unscoped(self) -> TenantQuerySet[_M]:
        """Every tenant's rows. Only for system work (sweeps, migrations, the hub)."""
        return self.all()


TenantManager = models.Manager.from_queryset(TenantQuerySet)


class TenantOwnedModel(models.Model):
    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, related_name="+", db_index=True, verbose_name=_("tenant")
    )

    objects = TenantManager()

    class Meta:
        abstract = True


def tenant_owned_models() -> list[type[models.Model]]:
    """Every concrete model that carries a tenant (for isolation tests and audits)."""
    return [
        model
        for model in apps.get_models()
        if issubclass(model, TenantOwnedModel) and not model._meta.abstract
    ]
