"""Admin for tenants, and the mixin that scopes every tenant-owned admin page."""

from __future__ import annotations

from datetime import tzinfo
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib import admin, messages
from django.contrib.admin.filters import RelatedOnlyFieldListFilter
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import QuerySet
from django.forms import ModelChoiceField, ModelMultipleChoiceField
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey
from simple_history.admin import SimpleHistoryAdmin

from lanzuan import phones

from .forms import InvitationForm, MembershipForm
from .history import LocalizedHistoryHelper, object_time_zone
from .models import CONFIG_ROLES, Invitation, Membership, Role, Tenant, TenantAPIKey, tenants_zone
from .readiness import tenant_warnings
from .scoping import TenantOwnedModel, TenantQuerySet, request_tenant_ids, unscoped_internals
from .services import (
    api_key_create,
    invitation_create,
    invitation_link,
    invitation_revoke,
    membership_revoke,
    membership_set_role,
)

if TYPE_CHECKING:
    # simple-history has no type hints: check our admin against Django's ModelAdmin, which it
    # extends, and the one method of its own that we call.
    class _HistoryAdmin(admin.ModelAdmin[Any]):
        def history_form_view(
            self,
            request: HttpRequest,
            object_id: str,
            version_id: str,
            extra_context: dict[str, Any] | None = None,
        ) -> HttpResponse: ...

    # The base of a mixin for ModelAdmin classes: checked as a ModelAdmin, a plain class at run time.
    AdminMixin = admin.ModelAdmin[Any]
else:
    _HistoryAdmin = SimpleHistoryAdmin
    AdminMixin = object


def _is_superuser(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_superuser)


def request_scoped(queryset: QuerySet[Any], request: HttpRequest) -> QuerySet[Any]:
    """A tenant-owned model's rows this request's user may see: every tenant's for a
    superuser, else the tenants they are members of."""
    if not isinstance(queryset, TenantQuerySet):
        raise TypeError(f"{queryset.model._meta.label} is not tenant-owned")
    if _is_superuser(request):
        return queryset.unscoped(reason="a superuser's admin pages show every tenant")
    return queryset.for_tenants(request_tenant_ids(request))


def number_digest_filter(request: HttpRequest, field: str, value: str) -> models.Q:
    """Rows whose `field` holds the digest of `value` (a normalised number or an address):
    each tenant stores its own digest, so one per tenant this request's user sees."""
    tenant_ids = (
        Tenant.objects.values_list("pk", flat=True) if _is_superuser(request) else request_tenant_ids(request)
    )
    return models.Q(**{f"{field}__in": list(phones.tenant_phone_hashes(value, tenant_ids).values())})


class TenantRelatedOnlyFieldListFilter(RelatedOnlyFieldListFilter):
    """Offers only the related rows the (scoped) list refers to. Django reads them
    through the related model's default manager, so for a tenant-owned one the
    look-up runs as internals: the pks come from the scoped list."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> Any:
        with unscoped_internals(reason="related-only filter choices: pks from the scoped list"):
            return super().field_choices(field, request, model_admin)


class TenantScopedInline(admin.TabularInline[Any, Any]):
    """An inline of a tenant-owned model, scoped like TenantScopedAdmin's pages."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return request_scoped(super().get_queryset(request), request)


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


class TenantScopedAdmin(_HistoryAdmin):
    """Scopes lists, detail, filters, autocomplete, actions and history to the user's tenants.

    Superusers see everything. Other staff see the tenants they are members of;
    `write_roles` may add, change and delete; everyone else reads only. Another
    tenant's object is a 404, never a redirect that confirms it exists.
    """

    write_roles: frozenset[str] = CONFIG_ROLES
    tenant_path = "tenant"  # lookup from this model to its Tenant
    object_history_list_template = "admin/lanzuan_history_list.html"
    # Write-only fields: a read-only page would print their value, so it leaves them out.
    secret_fields: tuple[str, ...] = ()

    # --- which rows -----------------------------------------------------------
    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)
        if isinstance(qs, TenantQuerySet) and self.tenant_path == "tenant":
            return request_scoped(qs, request)
        if _is_superuser(request):
            return qs
        return qs.filter(**{f"{self.tenant_path}__in": request_tenant_ids(request)})

    def _object_tenant_id(self, obj: models.Model) -> int | None:
        # Follows tenant_path as get_queryset filters on it: "pk" (a Tenant), "tenant", "request__tenant".
        tenant_id: int | None
        if self.tenant_path == "pk":
            tenant_id = obj.pk
            return tenant_id
        *hops, last = self.tenant_path.split("__")
        for hop in hops:
            obj = getattr(obj, hop)
        tenant_id = getattr(obj, f"{last}_id", None)
        return tenant_id

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
    ) -> ModelChoiceField[Any] | None:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        related = db_field.related_model
        if field is None or field.queryset is None:
            return field
        if isinstance(related, type) and issubclass(related, TenantOwnedModel):
            field.queryset = request_scoped(field.queryset, request)
        elif related is Tenant and not _is_superuser(request):
            field.queryset = field.queryset.filter(pk__in=request_tenant_ids(request, self.write_roles))
            if len(request_tenant_ids(request, self.write_roles)) == 1:
                field.initial = request_tenant_ids(request, self.write_roles)[0]
        return field

    def formfield_for_manytomany(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> ModelMultipleChoiceField[Any] | None:
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        related = db_field.related_model
        if field is not None and field.queryset is not None and issubclass(related, TenantOwnedModel):
            field.queryset = request_scoped(field.queryset, request)
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
            entry = item
            if isinstance(item, str) and "__" not in item:
                field = self.model._meta.get_field(item)
                if field.is_relation and field.many_to_one or field.many_to_many:
                    tenant_owned = issubclass(field.related_model, TenantOwnedModel)
                    entry = (
                        item,
                        TenantRelatedOnlyFieldListFilter if tenant_owned else RelatedOnlyFieldListFilter,
                    )
            scoped.append(entry)
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
        # Times in the history are the tenant's local time (rendered here, inside the zone).
        obj = self.get_object(request, unquote(object_id))
        with timezone.override(object_time_zone(obj)):
            return super().history_view(request, object_id, extra_context)

    def history_form_view(
        self,
        request: HttpRequest,
        object_id: str,
        version_id: str,
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # A version's `.instance` re-reads the row's fields history leaves out through
        # `Model.objects`; the permission check that follows tests the version's tenant.
        with unscoped_internals(reason="simple-history re-reads a version's excluded fields"):
            return super().history_form_view(request, object_id, version_id, extra_context)

    def get_historical_record_context_helper(self, request: HttpRequest, historical_record: Any) -> Any:
        return LocalizedHistoryHelper(self.model, historical_record)


class ReadOnlyAdminMixin(AdminMixin):
    """Records written by the system, not configuration: nobody adds or edits them by hand.
    Put it before TenantScopedAdmin. Records are kept (compliance) unless `records_deletable`:
    then whoever may write to the tenant's rows may delete them (TenantScopedAdmin's rule)."""

    records_deletable: ClassVar[bool] = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if not self.records_deletable:
            return False
        return super().has_delete_permission(request, obj)


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    tenant_path = "pk"
    list_display = ["slug", "name", "kind", "default_language", "sla_hours", "allow_resubscribe", "is_active"]
    list_filter = ["kind", "is_active"]
    search_fields = ["slug", "name"]
    fieldsets = [
        (None, {"fields": ["slug", "name", "name_en", "kind", "is_active"]}),
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
                    "consent_retention_days",
                    "send_log_retention_days",
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

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        tenant = self.get_object(request, unquote(object_id))
        if request.method == "GET" and tenant is not None:
            for warning in tenant_warnings(tenant):
                messages.warning(request, warning)
        return super().change_view(request, object_id, form_url, extra_context)


MEMBER_ROLES = frozenset({Role.OWNER})  # who invites, changes roles and removes members


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    """Members of the user's tenants. Owners change roles and remove people; people
    join through an invitation (a superuser may add an existing user directly)."""

    form = MembershipForm
    write_roles = MEMBER_ROLES
    list_display = ["user", "user_email", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    list_select_related = ["user", "tenant"]
    search_fields = ["user__username", "user__email"]
    actions = ["revoke_memberships"]

    @admin.display(description=_("email address"))
    def user_email(self, obj: Membership) -> str:
        return obj.user.email or str(_("none: gets no needs-attention emails"))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Who and where are fixed once someone is a member; only the role changes.
        return ["user", "tenant"] if obj is not None else []

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _is_superuser(request)  # owners invite (Invitations)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Removal goes through membership_revoke (the last owner stays): the action below.
        return _is_superuser(request)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return self._may_write(request)

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        if not _is_superuser(request):
            actions.pop("delete_selected", None)
        return actions

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        invitations = self.admin_site._registry.get(Invitation)
        may_invite = invitations is not None and invitations.has_add_permission(request)
        context = {
            **(extra_context or {}),
            "invite_url": reverse("admin:tenants_invitation_add") if may_invite else "",
        }
        return super().changelist_view(request, context)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "user" and field is not None and not _is_superuser(request):
            # The list of every user on the platform is not a tenant's to see.
            users = get_user_model().objects.filter(memberships__tenant_id__in=request_tenant_ids(request))
            field.queryset = users.distinct()
        return field

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not self._may_write(request, obj):
            raise PermissionDenied
        if not change:
            super().save_model(request, obj, form, change)  # superusers only (has_add_permission)
            return
        try:
            membership_set_role(membership=obj, role=obj.role, acting_user=request.user)
        except ValidationError as exc:
            # The form was valid; the rule (one owner at least) is the service's.
            messages.error(request, " ".join(exc.messages))

    @admin.action(description=_("Remove from the tenant (revoke access)"), permissions=["revoke"])
    def revoke_memberships(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        removed = 0
        for membership in queryset.select_related("user"):
            try:
                membership_revoke(membership=membership, acting_user=request.user)
            except (ValidationError, PermissionDenied) as exc:
                text = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
                messages.error(request, text)
            else:
                removed += 1
        if removed:
            messages.success(
                request,
                ngettext("%(count)d member removed.", "%(count)d members removed.", removed)
                % {"count": removed},
            )


@admin.register(Invitation)
class InvitationAdmin(TenantScopedAdmin):
    """Owners invite people by email or by a link they pass on; each link works once."""

    form = InvitationForm
    write_roles = MEMBER_ROLES
    list_display = ["recipient", "tenant", "role", "state", "created_at", "expires_at", "invited_by"]
    list_filter = ["role", "tenant"]
    list_select_related = ["tenant", "invited_by", "accepted_by"]
    search_fields = ["email"]
    actions = ["revoke_invitations"]
    readonly_fields = [
        "tenant",
        "email",
        "role",
        "state",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "accepted_by",
        "revoked_at",
        "revoked_by",
    ]

    @admin.display(description=_("invited"))
    def recipient(self, obj: Invitation) -> str:
        return obj.email or str(_("by link"))

    @admin.display(description=_("status"))
    def state(self, obj: Invitation) -> str:
        return str(Invitation.Status(obj.status()).label)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else ["tenant", "email", "role"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # an invitation is revoked, not edited

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # kept as the record of who was let in, by whom

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return self._may_write(request)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change or not self._may_write(request, obj):
            raise PermissionDenied
        invitation, token = invitation_create(
            tenant=obj.tenant, role=obj.role, email=obj.email, invited_by=request.user
        )
        obj.pk = invitation.pk
        obj.refresh_from_db()
        link = invitation_link(token)
        sent = (
            _("It was emailed to %(email)s; you can also pass the link on yourself.") % {"email": obj.email}
            if obj.email
            else _("Pass the link on to the person yourself.")
        )
        messages.warning(
            request,
            format_html(
                '{} <input type="text" readonly value="{}" id="lanzuan-invitation-link" size="80" '
                'onfocus="this.select()" aria-label="{}"> {}',
                _("Invitation link (works once, until %(expires)s; shown only now):")
                % {"expires": formats.localize(timezone.localtime(obj.expires_at))},
                link,
                _("Invitation link"),
                sent,
            ),
        )

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: str | None = None
    ) -> HttpResponse:
        # Straight to the list (no "change" page to continue to), link message on top.
        return HttpResponseRedirect(reverse("admin:tenants_invitation_changelist"))

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        try:
            return super().add_view(request, form_url, extra_context)
        except ValidationError as exc:
            # Rules the service checks beyond the form (e.g. the address is already a member).
            messages.error(request, " ".join(exc.messages))
            return HttpResponseRedirect(request.get_full_path())

    @admin.action(description=_("Revoke the selected invitations"), permissions=["revoke"])
    def revoke_invitations(self, request: HttpRequest, queryset: QuerySet[Invitation]) -> None:
        revoked = 0
        for invitation in queryset:
            try:
                invitation_revoke(invitation=invitation, acting_user=request.user)
            except (ValidationError, PermissionDenied) as exc:
                text = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
                messages.error(request, text)
            else:
                revoked += 1
        if revoked:
            messages.success(
                request,
                ngettext("%(count)d invitation revoked.", "%(count)d invitations revoked.", revoked)
                % {"count": revoked},
            )


# django_celery_beat's models are written by migrations (each app's sweep and purge
# schedule is set in code and reviewed there); editing them in the admin would silently
# diverge from the code, and its pages are untranslated cron/JSON forms. So they are not
# in the admin; the database scheduler still reads them.
for _beat_model in (ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule):
    if admin.site.is_registered(_beat_model):
        admin.site.unregister(_beat_model)

# The library's own admin for its concrete APIKey model: the project never uses that model
# (partners' keys are TenantAPIKey, scoped to a tenant), so its page would only be an
# empty, untranslated list that invites keys which authenticate nobody.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


@admin.register(TenantAPIKey)
class TenantAPIKeyAdmin(TenantScopedAdmin, APIKeyModelAdmin):
    # (the package declares its own as tuples of other lengths)
    list_display = ("prefix", "name", "created", "expiry_date", "expired", "revoked", "tenant")  # type: ignore[assignment]
    list_filter = ("tenant", "revoked")  # type: ignore[assignment]

    @admin.display(description=_("expired"), boolean=True)
    def expired(self, obj: TenantAPIKey) -> bool:
        return bool(obj.has_expired)

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
