"""Admin for tenants, and the mixin that scopes every tenant-owned admin page."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.filters import RelatedOnlyFieldListFilter
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.forms import ModelChoiceField
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.admin import APIKeyModelAdmin
from simple_history.admin import SimpleHistoryAdmin

from .models import CONFIG_ROLES, Membership, Tenant, TenantAPIKey, tenants_zone
from .scoping import TenantOwnedModel, tenant_ids_for_user
from .services import api_key_create


def _is_superuser(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_superuser)


def request_tenant_ids(request: HttpRequest, roles: frozenset[str] | None = None) -> list[int]:
    """The tenants this request's user may see (or write, with `roles`); cached per request."""
    cache: dict[Any, list[int]] = request.__dict__.setdefault("_lanzuan_tenant_ids", {})
    key = tuple(sorted(roles)) if roles is not None else None
    if key not in cache:
        cache[key] = tenant_ids_for_user(request.user, roles)
    return cache[key]


# The list filter's parameter for the tenant column (RelatedOnlyFieldListFilter on "tenant").
TENANT_FILTER_PARAM = "tenant__id__exact"


def request_zone(request: HttpRequest) -> tzinfo:
    """The zone an admin page counts days in (date filters, date hierarchy, reports).

    The tenant's own (Tenant.time_zone). With several tenants in view (a superuser,
    or staff of several) the tenant picked in the list filter decides; with none
    picked, their shared zone if they have one, else the platform's settings.TIME_ZONE.
    """
    tenants = (
        Tenant.objects.all()
        if _is_superuser(request)
        else Tenant.objects.filter(pk__in=request_tenant_ids(request))
    )
    chosen = request.GET.get(TENANT_FILTER_PARAM, "")
    if chosen.isdigit():
        tenants = tenants.filter(pk=int(chosen))
    return tenants_zone(tenants)


class TenantScopedAdmin(SimpleHistoryAdmin):
    """Scopes lists, detail, filters, autocomplete, actions and history to the user's tenants.

    Superusers see everything. Other staff see the tenants they are members of;
    `write_roles` may add, change and delete; everyone else reads only. Another
    tenant's object is a 404, never a redirect that confirms it exists.
    """

    write_roles: frozenset[str] = CONFIG_ROLES
    tenant_path = "tenant"  # lookup from this model to its Tenant
    # Write-only fields: a read-only page would print their value, so it leaves them out.
    secret_fields: tuple[str, ...] = ()

    # --- which rows -----------------------------------------------------------
    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)
        if _is_superuser(request):
            return qs
        return qs.filter(**{f"{self.tenant_path}__in": request_tenant_ids(request)})

    def _object_tenant_id(self, obj: models.Model) -> int | None:
        # Follows tenant_path as get_queryset filters on it: "pk" (a Tenant), "tenant", "request__tenant".
        if self.tenant_path == "pk":
            return obj.pk
        *hops, last = self.tenant_path.split("__")
        for hop in hops:
            obj = getattr(obj, hop)
        return getattr(obj, f"{last}_id", None)

    # --- permissions ----------------------------------------------------------
    def has_module_permission(self, request: HttpRequest) -> bool:
        return _is_superuser(request) or bool(request_tenant_ids(request))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if _is_superuser(request):
            return True
        allowed = request_tenant_ids(request)
        if obj is None:
            return bool(allowed)
        return self._object_tenant_id(obj) in allowed

    def _may_write(self, request: HttpRequest, obj: Any = None) -> bool:
        if _is_superuser(request):
            return True
        allowed = request_tenant_ids(request, self.write_roles)
        if obj is None:
            return bool(allowed)
        return self._object_tenant_id(obj) in allowed

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._may_write(request)

    def writable_tenants(self, request: HttpRequest) -> QuerySet[Tenant]:
        """Tenants this user may add rows to here (for custom admin forms)."""
        if _is_superuser(request):
            return Tenant.objects.all()
        return Tenant.objects.filter(pk__in=request_tenant_ids(request, self.write_roles))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_write(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_write(request, obj)

    # --- forms: foreign keys only offer the user's tenants' rows --------------
    def formfield_for_foreignkey(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if field is not None and not _is_superuser(request):
            related = db_field.related_model
            if related is Tenant:
                field.queryset = field.queryset.filter(pk__in=request_tenant_ids(request, self.write_roles))
                if len(request_tenant_ids(request, self.write_roles)) == 1:
                    field.initial = request_tenant_ids(request, self.write_roles)[0]
            elif isinstance(related, type) and issubclass(related, TenantOwnedModel):
                field.queryset = field.queryset.filter(tenant_id__in=request_tenant_ids(request))
        return field

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        related = db_field.related_model
        if field is not None and not _is_superuser(request) and issubclass(related, TenantOwnedModel):
            field.queryset = field.queryset.filter(tenant_id__in=request_tenant_ids(request))
        return field

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not self._may_write(request, obj):
            raise PermissionDenied
        super().save_model(request, obj, form, change)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_fields(request, obj)
        if self.secret_fields and obj is not None and not self.has_change_permission(request, obj):
            fields = [f for f in fields if f not in self.secret_fields]
        return fields

    # --- filters: never list another tenant's rows as choices -----------------
    def get_list_filter(self, request: HttpRequest) -> Any:
        scoped = []
        for item in super().get_list_filter(request):
            if isinstance(item, str) and "__" not in item:
                field = self.model._meta.get_field(item)
                if field.is_relation and field.many_to_one or field.many_to_many:
                    item = (item, RelatedOnlyFieldListFilter)
            scoped.append(item)
        return scoped

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Date filters ("Today", "Past 7 days") and the date hierarchy count days in the
        # current zone: make it the tenant's while the page is built and rendered.
        with timezone.override(request_zone(request)):
            response = super().changelist_view(request, extra_context)
            if isinstance(response, TemplateResponse):
                response.render()
        return response

    # --- another tenant's object: 404 everywhere ------------------------------
    def _get_obj_does_not_exist_redirect(
        self, request: HttpRequest, opts: Any, object_id: str
    ) -> HttpResponse:
        raise Http404(_("No such object."))

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # simple-history falls back to the last historical copy when the object
        # is not in get_queryset(): check scope first so no copy of another
        # tenant's row is ever shown.
        if self.get_object(request, unquote(object_id)) is None:
            raise Http404(_("No such object."))
        if not hasattr(self.model._meta, "simple_history_manager_attribute"):
            # Records without row history (append-only logs, data rows): Django's own log.
            return admin.ModelAdmin.history_view(self, request, object_id, extra_context)
        return super().history_view(request, object_id, extra_context)


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    tenant_path = "pk"
    list_display = ["slug", "name", "kind", "default_language", "sla_hours", "allow_resubscribe", "is_active"]
    list_filter = ["kind", "is_active"]
    search_fields = ["slug", "name"]
    fieldsets = [
        (None, {"fields": ["slug", "name", "kind", "is_active"]}),
        (_("Locale and branding"), {"fields": ["default_language", "time_zone", "logo_url", "brand_colour"]}),
        (
            _("Policies"),
            {
                "fields": [
                    "sla_hours",
                    "allow_resubscribe",
                    "erasure_mode",
                    "erasure_delay_hours",
                    "record_retention_days",
                ]
            },
        ),
        (_("Terms shown on the opt-out page"), {"fields": ["terms_zh", "terms_en"]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Only superusers create tenants or rename their slug (it is in public URLs).
        return [] if _is_superuser(request) else ["slug", "kind", "is_active"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _is_superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_superuser(request)


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "user__email"]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "user" and field is not None and not _is_superuser(request):
            # A tenant admin manages roles of people already in their tenants;
            # the list of every user on the platform is not theirs to see.
            users = get_user_model().objects.filter(memberships__tenant_id__in=request_tenant_ids(request))
            field.queryset = users.distinct()
        return field


@admin.register(TenantAPIKey)
class TenantAPIKeyAdmin(TenantScopedAdmin, APIKeyModelAdmin):
    list_display = (*APIKeyModelAdmin.list_display, "tenant")  # type: ignore[assignment]
    list_filter = ("tenant", "revoked")  # type: ignore[assignment]

    def save_model(self, request: HttpRequest, obj: Any, form: Any = None, change: bool = False) -> None:
        if not self._may_write(request, obj):
            raise PermissionDenied
        if not change:
            obj, key = api_key_create(tenant=obj.tenant, name=obj.name, expiry_date=obj.expiry_date)
            messages.add_message(
                request,
                messages.WARNING,
                _("The API key for %(name)s is: %(key)s — store it now, it will not be shown again.")
                % {"name": obj.name, "key": key},
            )
        else:
            obj.save()
