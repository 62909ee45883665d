"""Admin of send logs (issue 17): what senders reported, the messages sent after an opt-out and
people's "I still get messages" reports, read-only; the pieces the request page shows and its
"has violations" filter (imported by unsubscribe/admin.py)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from tenants.admin import ReadOnlyAdminMixin, TenantScopedAdmin, TenantScopedInline

from ..consents.admin import _NumberSearch
from ..models import SendLogEntry, SendViolation, StillReceivingReport


@admin.register(SendLogEntry)
class SendLogEntryAdmin(ReadOnlyAdminMixin, _NumberSearch, TenantScopedAdmin):
    list_display = ["sent_at", "service_code", "category", "template", "engaged_at", "received_at", "tenant"]
    list_filter = ["tenant", "service_code"]
    search_fields = ["message_id", "template"]
    date_hierarchy = "sent_at"
    readonly_fields = (
        "tenant",
        "phone_hash",
        "sent_at",
        "service_code",
        "category",
        "template",
        "message_id",
        "engaged_at",
        "received_at",
    )
    fields = readonly_fields
    show_full_result_count = False  # millions of rows: no COUNT(*) per page


@admin.register(SendViolation)
class SendViolationAdmin(ReadOnlyAdminMixin, _NumberSearch, TenantScopedAdmin):
    list_display = ["sent_at", "service_code", "scope", "suppressed_at", "request", "detected_at", "tenant"]
    list_filter = ["tenant", "service_code"]
    list_select_related = ["request", "tenant"]
    date_hierarchy = "sent_at"
    readonly_fields = (
        "tenant",
        "request",
        "phone_hash",
        "scope",
        "suppressed_at",
        "sent_at",
        "service_code",
        "entry",
        "detected_at",
    )
    fields = readonly_fields


@admin.register(StillReceivingReport)
class StillReceivingReportAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["created_at", "request", "channel", "tenant"]
    list_filter = ["tenant", "channel"]
    list_select_related = ["request", "tenant"]
    readonly_fields = ("tenant", "request", "channel", "created_at")
    fields = readonly_fields


class _RequestInline(TenantScopedInline):
    """Shown on a request's page, which the parent admin has already scoped."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True


class SendViolationInline(_RequestInline):
    """On a request's page: the messages senders reported after it took effect."""

    model = SendViolation
    fk_name = "request"
    readonly_fields = ("sent_at", "service_code", "scope", "suppressed_at", "detected_at")
    fields = readonly_fields
    verbose_name = _("message after the opt-out")
    verbose_name_plural = _("messages sent after the opt-out (send logs)")


class StillReceivingReportInline(_RequestInline):
    """On a request's page: the person's reports that messages still arrive."""

    model = StillReceivingReport
    fk_name = "request"
    readonly_fields = ("created_at", "channel")
    fields = readonly_fields
    verbose_name = _("“I still get messages” report")
    verbose_name_plural = _("“I still get messages” reports")


class ViolationFilter(admin.SimpleListFilter):
    title = _("messages after opt-out")
    parameter_name = "violations"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("yes", _("Has violations")),
            ("reported", _("Person reports messages still arriving")),
            ("no", _("None")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # Correlated on the outer row's tenant and request, so each tenant's rows stay its own.
        violations = Exists(
            SendViolation.objects.unscoped(reason="a subquery correlated on the outer row's tenant").filter(
                tenant_id=OuterRef("tenant_id"), request_id=OuterRef("pk")
            )
        )
        reports = Exists(
            StillReceivingReport.objects.unscoped(
                reason="a subquery correlated on the outer row's tenant"
            ).filter(tenant_id=OuterRef("tenant_id"), request_id=OuterRef("pk"))
        )
        if self.value() == "yes":
            return queryset.filter(violations)
        if self.value() == "reported":
            return queryset.filter(reports)
        if self.value() == "no":
            return queryset.exclude(violations).exclude(reports)
        return queryset
