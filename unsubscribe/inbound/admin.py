"""Admin for reply SMS: gateway credentials (write-only secrets), reply routes, and the
replies received, with a filter for the ones that need a person and an action to file
the request they asked for. Scoping comes from TenantScopedAdmin; writes from services."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from lanzuan import phones
from tenants.admin import ReadOnlyAdminMixin, TenantScopedAdmin, number_digest_filter
from tenants.models import OPERATIONS_ROLES
from unsubscribe.errors import UnsubscribeError

from . import services
from .forms import InboundCredentialForm, PlatformInboundCredentialForm
from .models import (
    InboundCredential,
    InboundMessage,
    PlatformInboundCredential,
    Provider,
    ReplyRoute,
    UnroutedMessage,
)


@admin.register(InboundCredential)
class InboundCredentialAdmin(TenantScopedAdmin):
    form = InboundCredentialForm
    list_display = ["provider", "enabled", "has_secret", "webhook_url", "tenant", "updated_at"]
    list_filter = ["tenant", "provider", "enabled"]
    list_select_related = ["tenant"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields: list[str] = ["tenant", "provider", "enabled"]
        # Readers get the page without the field at all: a read-only field would show its value.
        if obj is None or self.has_change_permission(request, obj):
            fields.insert(2, "secret")
        if obj is not None:
            fields += ["has_secret", "webhook_url", "updated_at"]
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        return ["tenant", "provider", "has_secret", "webhook_url", "updated_at"]

    @admin.display(description=_("secret set"), boolean=True)
    def has_secret(self, obj: InboundCredential) -> bool:
        return bool(obj.secret)

    @admin.display(description=_("webhook URL"))
    def webhook_url(self, obj: InboundCredential) -> str:
        url = settings.PUBLIC_BASE_URL + reverse(
            "inbound:sms-hook", kwargs={"tenant_slug": obj.tenant.slug, "provider": obj.provider}
        )
        return f"{url}?token=…" if obj.provider == Provider.ALIYUN else url


@admin.register(ReplyRoute)
class ReplyRouteAdmin(TenantScopedAdmin):
    list_display = ["destination", "sign_name", "scope", "tenant"]
    list_filter = ["tenant", "service"]
    list_select_related = ["tenant", "service"]
    search_fields = ["destination", "sign_name"]
    fields = ["tenant", "destination", "sign_name", "service"]

    @admin.display(description=_("scope"))
    def scope(self, obj: ReplyRoute) -> str:
        return str(obj.service) if obj.service else str(_("All marketing"))


class FlaggedFilter(admin.SimpleListFilter):
    title = _("needs attention")
    parameter_name = "flagged"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Needs attention")), ("no", _("Handled"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(flagged_for_attention=True)
        if self.value() == "no":
            return queryset.filter(flagged_for_attention=False)
        return queryset


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Records, not configuration: nobody edits them; agents may file the request one asked for.
    Kept for compliance: erasure blanks the number and the text."""

    write_roles = OPERATIONS_ROLES
    list_display = [
        "received_at",
        "from_masked",
        "text",
        "intent",
        "confidence",
        "action",
        "flagged_for_attention",
        "request",
        "provider",
        "tenant",
    ]
    list_filter = [FlaggedFilter, "action", "intent", "provider", "tenant"]
    search_fields = ["reference", "provider_message_id"]
    date_hierarchy = "received_at"
    list_select_related = ["tenant", "request"]
    actions = ["file_unsubscribe_requests"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "reference",
                    "tenant",
                    "from_masked",
                    "to",
                    "sign_name",
                    "body",
                    "received_at",
                    "created_at",
                    "provider",
                    "provider_message_id",
                ]
            },
        ),
        (
            _("What we understood"),
            {
                "fields": [
                    "language",
                    "context",
                    "intent",
                    "confidence",
                    "matched_rule",
                    "route",
                    "gateway_account",
                ]
            },
        ),
        (
            _("What it caused"),
            {"fields": ["action", "request", "note", "flagged_for_attention", "flag_reason"]},
        ),
    ]

    def has_file_permission(self, request: HttpRequest) -> bool:
        return self._may_write(request)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any], search_term: str) -> Any:
        """A number is searched by its hash, never matched in clear."""
        term = search_term.strip()
        if term and sum(ch.isdigit() for ch in term) >= 5:
            try:
                e164 = phones.normalise(term)
            except phones.InvalidPhoneNumber:
                pass
            else:
                return queryset.filter(number_digest_filter(request, "from_hash", e164)), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description=_("text"))
    def text(self, obj: InboundMessage) -> str:
        return Truncator(obj.body).chars(40)

    @admin.action(description=_("File unsubscribe request"), permissions=["file"])
    def file_unsubscribe_requests(self, request: HttpRequest, queryset: QuerySet[InboundMessage]) -> None:
        filed, already, problems = 0, 0, []
        for message in queryset.select_related("tenant"):
            if not self._may_write(request, message):
                continue
            if message.request_id is not None:
                already += 1
                continue
            try:
                services.inbound_message_file_request(message=message, acting_user=request.user)
            except UnsubscribeError as exc:
                problems.append(f"{message.reference}: {exc.message}")
            else:
                filed += 1
        if filed:
            messages.success(
                request, _("%(count)d request(s) filed; the numbers are suppressed.") % {"count": filed}
            )
        if already:
            messages.info(request, _("%(count)d message(s) already had a request.") % {"count": already})
        for problem in problems:
            messages.error(request, problem)


class SuperuserOnlyAdmin(admin.ModelAdmin[Any]):
    """Platform-level rows belong to no tenant: only superusers see them."""

    def _superuser(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._superuser(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._superuser(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._superuser(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._superuser(request)


@admin.register(PlatformInboundCredential)
class PlatformInboundCredentialAdmin(SuperuserOnlyAdmin):
    form = PlatformInboundCredentialForm
    list_display = ["account", "provider", "enabled", "served", "reply_tenant", "webhook_url", "updated_at"]
    list_filter = ["provider", "enabled"]
    filter_horizontal = ["tenants"]
    readonly_fields = ["webhook_url", "updated_at"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = ["account", "provider", "secret", "enabled", "tenants", "reply_tenant"]
        return fields + ["webhook_url", "updated_at"] if obj is not None else fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The account and provider are in the URL the gateway was given.
        return ["account", "provider", "webhook_url", "updated_at"] if obj is not None else []

    @admin.display(description=_("routes to"))
    def served(self, obj: PlatformInboundCredential) -> str:
        return ", ".join(t.slug for t in obj.tenants.all()) or str(_("any tenant"))

    @admin.display(description=_("webhook URL"))
    def webhook_url(self, obj: PlatformInboundCredential) -> str:
        url = settings.PUBLIC_BASE_URL + reverse(
            "inbound:platform-sms-hook", kwargs={"account": obj.account, "provider": obj.provider}
        )
        return f"{url}?token=…" if obj.provider == Provider.ALIYUN else url

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).prefetch_related("tenants").select_related("reply_tenant")


@admin.register(UnroutedMessage)
class UnroutedMessageAdmin(ReadOnlyAdminMixin, SuperuserOnlyAdmin):
    """Replies no tenant could be given; staff read them and mark them handled (an action,
    the one change)."""

    list_display = [
        "received_at",
        "from_masked",
        "to",
        "sign_name",
        "text",
        "intent",
        "reason",
        "source",
        "belongs_to",
        "answered",
        "flagged_for_attention",
    ]
    list_filter = ["flagged_for_attention", "reason", "intent", "provider"]
    search_fields = ["provider_message_id", "to", "sign_name"]
    date_hierarchy = "received_at"
    list_select_related = ["belongs_to", "received_by"]
    actions = ["mark_handled"]
    exclude = ["from_number", "from_hash"]

    def has_handle_permission(self, request: HttpRequest) -> bool:
        return self._superuser(request)

    @admin.display(description=_("text"))
    def text(self, obj: UnroutedMessage) -> str:
        return Truncator(obj.body).chars(40)

    @admin.action(description=_("Mark handled (erase the number)"), permissions=["handle"])
    def mark_handled(self, request: HttpRequest, queryset: QuerySet[UnroutedMessage]) -> None:
        count = 0
        for message in queryset:
            services.unrouted_message_mark_handled(message=message, acting_user=request.user)
            count += 1
        messages.success(request, _("%(count)d reply(ies) marked handled.") % {"count": count})
