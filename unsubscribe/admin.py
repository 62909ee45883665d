"""Admin for a provider's compliance team: requests with their timeline, targets,
services, subscriptions (with CSV import), suppressions. Scoping comes from
TenantScopedAdmin; business logic from services."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, render
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from lanzuan import phones, uploads
from tenants.admin import (
    TENANT_FILTER_PARAM,
    AdminMixin,
    ReadOnlyAdminMixin,
    TenantScopedAdmin,
    TenantScopedInline,
    number_digest_filter,
    request_zone,
)
from tenants.models import OPERATIONS_ROLES, Tenant
from tenants.scoping import request_tenant_ids

from . import attention, reports
from .audit import admin as audit_admin  # noqa: F401 (registers the audit record's admin)
from .audit.services import audit_access, user_actor
from .cases.selectors import case_timeline
from .consents.admin import (
    ConsentVoidFilter,
    PageEventDays,
    RevokedConsentInline,
    subscription_consents_table,
    subscription_void_since,
)
from .deadlines import selectors as deadline_selectors
from .deadlines.services import deadlines_recompute
from .display import language_display
from .errors import UnsubscribeError
from .forms import CaseLookupForm, FileRequestForm, SubscriptionImportForm, TargetForm
from .models import (
    CalendarDay,
    CalendarYear,
    ChannelSetting,
    DeadlineRegime,
    RequestChannel,
    Service,
    Step,
    SubscriberProfile,
    Subscription,
    SubscriptionImport,
    Suppression,
    SuppressionEvent,
    Target,
    UnsubscribeRequest,
    VerificationMethod,
    scope_label,
)
from .pipeline.selectors import step_receipt_for_staff, step_staff_label
from .pipeline.services import request_retry
from .proofs.services import proof_pack_export
from .receipts import receipt_display
from .references import clean_reference
from .requests.services import unsubscribe_request_create
from .retention.selectors import erasure_deadline, stalled_erasure_ceiling
from .sendlogs.admin import SendViolationInline, StillReceivingReportInline, ViolationFilter
from .subscriptions.services import subscription_import_start

# The admin home shows what needs attention (attention.attention_queue), not only the model list.
admin.site.index_template = "admin/lanzuan_index.html"


class ScopeNameMixin(AdminMixin):
    """A suppression's scope by name: all marketing, or the service's name and code."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        names = Service.objects.unscoped(reason="a subquery correlated on the outer row's tenant").filter(
            tenant_id=OuterRef("tenant_id"), code=OuterRef("scope")
        )
        queryset: QuerySet[Any] = (
            super().get_queryset(request).annotate(scope_service_name=Subquery(names.values("name")[:1]))
        )
        return queryset

    @admin.display(description=_("scope"), ordering="scope")
    def scope_name(self, obj: Any) -> str:
        name = getattr(obj, "scope_service_name", None)
        return f"{name} ({obj.scope})" if name else scope_label(obj.scope)


class ScopeFilter(admin.SimpleListFilter):
    title = _("scope")
    parameter_name = "scope"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        codes = model_admin.get_queryset(request).order_by().values_list("scope", flat=True).distinct()
        return [(code, scope_label(code)) for code in sorted(codes)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(scope=self.value()) if self.value() else queryset


class ChannelFilter(admin.SimpleListFilter):
    """The channel of a record that stores it as a bare code (no choices on the field)."""

    title = _("channel")
    parameter_name = "channel"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(RequestChannel.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(channel=self.value()) if self.value() else queryset


def _tenant_clock(moment: datetime, zone: tzinfo) -> str:
    """A time on the tenant's clock, with its offset: staff may sit in another zone."""
    local = timezone.localtime(moment, zone)
    offset = local.strftime("%z")  # +0800
    return f"{formats.localize(local)} (UTC{offset[:3]}:{offset[3:]})"


@admin.register(Service)
class ServiceAdmin(TenantScopedAdmin):
    list_display = ["name", "code", "tenant", "is_active"]
    list_filter = ["tenant", "is_active"]
    search_fields = ["name", "code"]


class PhoneSearchMixin(AdminMixin):
    """Search by number: the number is normalised and hashed, never matched in clear."""

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if term and any(ch.isdigit() for ch in term):
            try:
                e164 = phones.normalise(term)
            except phones.InvalidPhoneNumber:
                pass
            else:
                return queryset.filter(number_digest_filter(request, "phone_hash", e164)), False
        return super().get_search_results(request, queryset, search_term)


@admin.register(Subscription)
class SubscriptionAdmin(PageEventDays, PhoneSearchMixin, TenantScopedAdmin):
    list_display = [
        "phone_masked",
        "service",
        "status",
        "consent_source",
        "consent_at",
        "consent_void_since",
        "tenant",
    ]
    list_filter = ["tenant", "status", "service", ConsentVoidFilter]
    search_fields = ["service__code"]
    readonly_fields = ["phone_masked", "ended_at", "consent_void_since", "consent_records"]

    @admin.display(description=_("consent void since"))
    def consent_void_since(self, obj: Subscription) -> str:
        # A deactivation or reassignment of the number on or after the consent's day: the
        # present holder never gave it.
        return subscription_void_since(obj) or "—"

    @admin.display(description=_("consent records"))
    def consent_records(self, obj: Subscription) -> str:
        return subscription_consents_table(obj)

    exclude = ["phone", "phone_hash"]
    autocomplete_fields = ["service"]
    change_list_template = "admin/unsubscribe/subscription/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # subscriptions arrive by import or the API

    def get_urls(self) -> list[Any]:
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="unsubscribe_subscription_import",
            ),
            path(
                "import/<int:pk>/progress/",
                self.admin_site.admin_view(self.import_progress),
                name="unsubscribe_subscription_import_progress",
            ),
            *super().get_urls(),
        ]

    @csrf_exempt  # checked by _import_form, once the upload guard is in place: the check reads the body
    def import_view(self, request: HttpRequest) -> HttpResponse:
        """An upload over LANZUAN_IMPORT_MAX_UPLOAD_BYTES is refused with a 413 before it is read
        (its Content-Length) or as it is read (lanzuan/uploads.py); nothing of it is kept."""
        if not self._may_write(request):
            raise PermissionDenied
        max_bytes: int = settings.LANZUAN_IMPORT_MAX_UPLOAD_BYTES
        if request.method == "POST":
            length = uploads.declared_length(request)
            if length is None or length > max_bytes + uploads.ENVELOPE:
                return self._import_refused(request, max_bytes)
            uploads.limit_uploads(request, max_bytes)
        try:
            return self._import_form(request)
        except uploads.UploadTooLarge:
            uploads.discard_partial_uploads(request)
            return self._import_refused(request, max_bytes)

    @method_decorator(csrf_protect)
    def _import_form(self, request: HttpRequest) -> HttpResponse:
        tenants = self.writable_tenants(request)
        form = SubscriptionImportForm(request.POST or None, request.FILES or None, tenants=tenants)
        if request.method == "POST" and form.is_valid():
            import_ = SubscriptionImport.objects.create(
                tenant=form.cleaned_data["tenant"], file=form.cleaned_data["file"]
            )
            subscription_import_start(import_=import_)
            return HttpResponseRedirect(
                reverse("admin:unsubscribe_subscription_import_progress", args=[import_.pk])
            )
        return self._import_page(request, form)

    def _import_refused(self, request: HttpRequest, max_bytes: int) -> HttpResponse:
        messages.error(
            request,
            _("The file is larger than %(size)s, the most one import may be; split it into several files.")
            % {"size": uploads.size_text(max_bytes)},
        )
        form = SubscriptionImportForm(tenants=self.writable_tenants(request))
        return self._import_page(request, form, status=413)

    def _import_page(
        self, request: HttpRequest, form: SubscriptionImportForm, status: int = 200
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": _("Import subscriptions"),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/unsubscribe/subscription/import.html", context, status=status)

    def import_progress(self, request: HttpRequest, pk: int) -> HttpResponse:
        import_ = get_object_or_404(SubscriptionImport.objects.for_user(request.user), pk=pk)
        if request.GET.get("format") == "json":
            return JsonResponse(
                {
                    "status": import_.status,
                    "status_label": import_.get_status_display(),
                    "rows_done": import_.rows_done,
                    "total_rows": import_.total_rows,
                    "percent": import_.percent,
                    "created": import_.created,
                    "updated": import_.updated,
                    "invalid": import_.invalid,
                    "skipped_opted_out": import_.skipped_opted_out,
                    "duplicates": import_.duplicates,
                    "errors": import_.errors[:20],
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "import": import_,
            "title": _("Import progress"),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/unsubscribe/subscription/import_progress.html", context)


@admin.register(SubscriptionImport)
class SubscriptionImportAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = [
        "created_at",
        "tenant",
        "status",
        "progress",
        "created",
        "updated",
        "skipped_opted_out",
        "duplicates",
        "invalid",
    ]
    list_filter = ["tenant", "status"]

    @admin.display(description=_("progress"))
    def progress(self, obj: SubscriptionImport) -> str:
        return f"{obj.rows_done}/{obj.total_rows} ({obj.percent}%)"


@admin.register(SubscriberProfile)
class SubscriberProfileAdmin(PhoneSearchMixin, TenantScopedAdmin):
    list_display = ["phone_masked", "display_name", "city", "anonymised_at", "tenant"]
    list_filter = ["tenant"]
    search_fields = ["display_name"]
    exclude = ["phone", "phone_hash"]
    readonly_fields = ["phone_masked", "anonymised_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Target)
class TargetAdmin(TenantScopedAdmin):
    form = TargetForm
    secret_fields = ("signing_secret",)
    list_display = ["name", "public_label_zh", "public_label_en", "purpose", "url", "is_active", "tenant"]
    list_filter = ["tenant", "purpose", "is_active"]
    search_fields = ["name", "url", "public_label_zh", "public_label_en"]


class StepInline(TenantScopedInline):
    model = Step
    extra = 0
    can_delete = False
    readonly_fields = (
        "kind",
        "where",
        "status",
        "attempts",
        "started_at",
        "finished_at",
        "next_attempt_at",
        "error_text",
        "step_receipt",
    )
    fields = readonly_fields
    ordering = ["id"]
    verbose_name = _("timeline step")
    verbose_name_plural = _("timeline")

    @admin.display(description=_("last error"))
    def error_text(self, obj: Step) -> str:
        return receipt_display(obj.last_error)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("target"))
    def where(self, obj: Step) -> str:
        return step_staff_label(obj)

    @admin.display(description=_("receipt"))
    def step_receipt(self, obj: Step) -> str:
        # Built-in sources' receipts are lines rendered in the reader's language.
        return step_receipt_for_staff(obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Shown only on a request's page, which the parent admin has already scoped:
        # whoever may see the request sees its timeline.
        return True


class SLAFilter(admin.SimpleListFilter):
    title = _("SLA")
    parameter_name = "sla"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("breached", _("Breached")), ("ok", _("Within SLA"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "breached":
            return queryset.filter(sla_breached_at__isnull=False)
        if self.value() == "ok":
            return queryset.filter(sla_breached_at__isnull=True)
        return queryset


_TONE_COLOURS = {"overdue": "#cf222e", "late": "#cf222e", "soon": "#9a6700", "met": "#1a7f37"}


class DeadlineFilter(admin.SimpleListFilter):
    title = _("deadlines")
    parameter_name = "deadline"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("overdue", _("Past a deadline, not yet met")), ("late", _("Missed a deadline"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "overdue":
            return queryset.filter(
                deadlines__breached_at__isnull=False, deadlines__met_at__isnull=True
            ).distinct()
        if self.value() == "late":
            return queryset.filter(deadlines__breached_at__isnull=False).distinct()
        return queryset


@admin.register(UnsubscribeRequest)
class UnsubscribeRequestAdmin(PhoneSearchMixin, TenantScopedAdmin):
    write_roles = OPERATIONS_ROLES  # agents file and retry requests
    list_display = [
        "receipt",
        "phone_masked",
        "state_badge",
        "channel",
        "scope",
        "received_at",
        "sla",
        "deadlines_due",
        "erasure_due",
        "tenant",
    ]
    list_filter = [
        "state",
        "channel",
        ("received_at", admin.DateFieldListFilter),
        SLAFilter,
        DeadlineFilter,
        ViolationFilter,
        "tenant",
    ]
    search_fields = ["reference"]
    date_hierarchy = "received_at"
    inlines = [StepInline, RevokedConsentInline, SendViolationInline, StillReceivingReportInline]
    actions = ["retry_requests", "export_csv"]
    change_list_template = "admin/unsubscribe/unsubscriberequest/change_list.html"
    readonly_fields = [
        "reference",
        "tenant",
        "phone_masked",
        "scope",
        "channel",
        "verification_method",
        "verification_evidence",
        "language_name",
        "filed_by",
        "state",
        "attention_text",
        "erasure_text",
        "deadlines_text",
        *UnsubscribeRequest.TIMELINE,
        "idempotency_key",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "reference",
                    "tenant",
                    "phone_masked",
                    "scope",
                    "state",
                    "attention_text",
                    "erasure_text",
                    "deadlines_text",
                ]
            },
        ),
        (
            _("How it arrived"),
            {
                "fields": [
                    "channel",
                    "verification_method",
                    "verification_evidence",
                    "filed_by",
                    "language_name",
                    "idempotency_key",
                ]
            },
        ),
        (_("Timeline"), {"fields": UnsubscribeRequest.TIMELINE}),
    ]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        cleaned = clean_reference(term)
        if len(cleaned) == 9 and "-" in cleaned:
            by_ref = queryset.filter(reference=cleaned)
            if by_ref.exists():
                return by_ref, False
        return super().get_search_results(request, queryset, search_term)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # requests change only through the pipeline and the retry action

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # compliance records

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return self._may_write(request)

    @admin.display(description=_("reference"), ordering="reference")
    def receipt(self, obj: UnsubscribeRequest) -> str:
        return format_html('<span style="white-space:nowrap">{}</span>', obj.reference)

    @admin.display(description=_("state"), ordering="state")
    def state_badge(self, obj: UnsubscribeRequest) -> str:
        colours = {"completed": "#1a7f37", "needs_attention": "#cf222e"}
        return format_html(
            '<strong style="color:{}">{}</strong>', colours.get(obj.state, "#9a6700"), obj.get_state_display()
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # the scope and deadlines columns
        return super().get_queryset(request).prefetch_related("services", "deadlines")

    @admin.display(description=_("scope"))
    def scope(self, obj: UnsubscribeRequest) -> str:
        if obj.scope_all:
            return str(_("All marketing"))
        return ", ".join(s.name for s in obj.services.all())

    @admin.display(description=_("language"))
    def language_name(self, obj: UnsubscribeRequest) -> str:
        return language_display(obj.language)

    @admin.display(description=_("why it needs attention"))
    def attention_text(self, obj: UnsubscribeRequest) -> str:
        return receipt_display(obj.attention_reason)

    @admin.display(description=_("number erased by"), ordering="erasure_due_at")
    def erasure_due(self, obj: UnsubscribeRequest) -> str:
        """When the raw number goes at the latest; red while the request waits for staff."""
        if obj.state == UnsubscribeRequest.State.COMPLETED or not obj.phone:
            return format_html('<span class="lanzuan-erasure" style="color:#1a7f37">{}</span>', _("erased"))
        due = obj.erasure_due_at or erasure_deadline(obj)
        colour = "#cf222e" if obj.state == UnsubscribeRequest.State.NEEDS_ATTENTION else "inherit"
        return format_html(
            '<time class="lanzuan-erasure" data-testid="erasure-due" datetime="{}" '
            'style="white-space:nowrap;color:{}">{}</time>',
            due.isoformat(),
            colour,
            formats.localize(timezone.localtime(due)),
        )

    @admin.display(description=_("erasure of the number"))
    def erasure_text(self, obj: UnsubscribeRequest) -> str:
        if obj.state == UnsubscribeRequest.State.COMPLETED:
            return str(
                _("The raw number was erased when the request completed; its hash and masked form remain.")
            )
        if not obj.phone:
            return str(
                _(
                    "The raw number was erased at the erasure deadline although the request did not complete; "
                    "its hash and masked form remain. Steps that needed the number must be finished by hand."
                )
            )
        due = obj.erasure_due_at or erasure_deadline(obj)
        return format_html(
            '<span data-testid="erasure-deadline" data-due="{}">{}</span>',
            due.isoformat(),
            _(
                "The raw number is erased by %(when)s at the latest, even if the request does not complete "
                "(the tenant's erasure delay after filing, plus %(days)d days to finish it)."
            )
            % {
                "when": formats.localize(timezone.localtime(due)),
                "days": stalled_erasure_ceiling().days,
            },
        )

    @admin.display(description=_("deadlines"))
    def deadlines_due(self, obj: UnsubscribeRequest) -> str:
        """The next unmet deadline's countdown (or how the deadlines ended)."""
        found = deadline_selectors.request_deadlines(obj)
        if not found:
            return "—"
        unmet = [d for d in found if d.met_at is None]
        shown = unmet[0] if unmet else max(found, key=lambda d: d.met_at or d.due_at)
        if not unmet and all(d.met_at and d.met_at <= d.due_at for d in found):
            shown_text, tone = str(_("all met")), "met"
        else:
            status = deadline_selectors.countdown(shown)
            shown_text = str(
                _("%(rule)s: %(status)s")
                % {"rule": deadline_selectors.regime_label(shown.regime), "status": status.text}
            )
            tone = status.tone
        return format_html(
            '<span class="lanzuan-deadline lanzuan-deadline-{}" data-testid="deadline-countdown" title="{}" '
            'style="white-space:nowrap;color:{}">{}</span>',
            tone,
            deadline_selectors.rule_label(shown.regime, shown.rule),
            _TONE_COLOURS.get(tone, "inherit"),
            shown_text,
        )

    @admin.display(description=_("deadlines by regime"))
    def deadlines_text(self, obj: UnsubscribeRequest) -> str:
        rows = []
        rules = {rule.key: rule for rule in deadline_selectors.rules_of(obj.tenant)}
        zone = obj.tenant.zoneinfo
        for deadline in deadline_selectors.request_deadlines(obj):
            status = deadline_selectors.countdown(deadline)
            rule = rules.get((deadline.regime, deadline.rule))
            rows.append(
                format_html(
                    '<li data-testid="deadline" data-regime="{}" data-rule="{}" data-due="{}">'
                    '{} · <span style="color:{}">{}</span>{}{}</li>',
                    deadline.regime,
                    deadline.rule,
                    deadline.due_at.isoformat(),
                    _("%(rule)s: due %(when)s")
                    % {
                        "rule": deadline_selectors.rule_label(deadline.regime, deadline.rule),
                        # on the tenant's clock, which the working days were counted on
                        "when": _tenant_clock(deadline.due_at, zone),
                    },
                    _TONE_COLOURS.get(status.tone, "inherit"),
                    status.text,
                    format_html(" <small>({})</small>", rule.source) if rule and rule.source else "",
                    format_html(
                        ' <strong data-testid="deadline-provisional" style="color:#cf222e">{}</strong>',
                        _(
                            "Provisional: the calendar has no data for that year (Monday to Friday assumed); "
                            "enter the year's days under Calendar days, then the year under Calendar years entered."
                        ),
                    )
                    if deadline.provisional and deadline.met_at is None
                    else "",
                )
            )
        if not rows:
            return "—"
        return format_html(
            '<ul data-testid="deadlines" style="margin:0">{}</ul>',
            format_html_join("", "{}", ((r,) for r in rows)),
        )

    @admin.display(description=_("SLA"), ordering="sla_due_at")
    def sla(self, obj: UnsubscribeRequest) -> str:
        status = attention.sla_status(obj)
        colours = {"overdue": "#cf222e", "missed": "#cf222e", "soon": "#9a6700", "met": "#1a7f37"}
        return format_html(
            '<span class="lanzuan-sla lanzuan-sla-{}" style="white-space:nowrap;color:{}">{}</span>',
            status.tone,
            colours.get(status.tone, "inherit"),
            status.text,
        )

    @admin.action(description=_("Retry failed steps"), permissions=["retry"])
    def retry_requests(self, request: HttpRequest, queryset: QuerySet[UnsubscribeRequest]) -> None:
        retried = 0
        for unsubscribe_request in queryset:
            if not self._may_write(request, unsubscribe_request):
                continue
            if request_retry(request=unsubscribe_request):
                retried += 1
        messages.success(request, _("%(count)d request(s) sent for retry.") % {"count": retried})

    @admin.action(description=_("Export selected as CSV (compliance record)"))
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[UnsubscribeRequest]
    ) -> StreamingHttpResponse:
        return self._csv_response(
            request, queryset, self._report_scope(request)[1], what="selected requests (CSV)"
        )

    def _csv_response(
        self, request: HttpRequest, queryset: QuerySet[UnsubscribeRequest], zone: tzinfo, *, what: str
    ) -> StreamingHttpResponse:
        # Who downloaded which export: an entry in each tenant's audit record whose rows it holds.
        counts = dict(
            queryset.order_by().values_list("tenant_id").annotate(n=Count("pk")).values_list("tenant_id", "n")
        )
        audit_access(
            tenant_ids=list(counts),
            kind="access.export",
            actor=user_actor(request.user),
            payload={"export": what},
            per_tenant={tenant_id: {"row_count": n} for tenant_id, n in counts.items()},
        )
        response = StreamingHttpResponse(
            reports.requests_csv_rows(queryset), content_type="text/csv; charset=utf-8"
        )
        stamp = timezone.localtime(timezone.now(), zone).strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="unsubscribe-requests-{stamp}.csv"'
        return response

    def _report_scope(self, request: HttpRequest) -> tuple[QuerySet[UnsubscribeRequest], tzinfo]:
        """The requests a report covers (narrowed to the tenant picked in the list filter,
        as the list is) and the zone its days are in: see tenants.admin.request_zone."""
        queryset = self.get_queryset(request)
        chosen = request.GET.get(TENANT_FILTER_PARAM, "")
        if chosen.isdigit():
            queryset = queryset.filter(tenant_id=int(chosen))
        return queryset, request_zone(request)

    def get_urls(self) -> list[Any]:
        return [
            path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name="unsubscribe_dashboard"),
            path("export/", self.admin_site.admin_view(self.export_view), name="unsubscribe_export"),
            path("case/", self.admin_site.admin_view(self.case_view), name="unsubscribe_case"),
            path(
                "<path:object_id>/proof/",
                self.admin_site.admin_view(self.proof_view),
                name="unsubscribe_unsubscriberequest_proof",
            ),
            *super().get_urls(),
        ]

    def _days(self, request: HttpRequest, default: int, low: int, high: int) -> int:
        try:
            return min(max(int(request.GET.get("days", default)), low), high)
        except ValueError:
            return default

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """Requests per day by channel, time to complete, SLA: the numbers compared over time."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        days = self._days(request, 30, 7, 365)
        queryset, zone = self._report_scope(request)
        board = reports.dashboard(queryset, days=days, zone=zone)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Unsubscribe dashboard"),
            "board": board,
            "days": days,
            # the days links and the export keep the tenant picked (and so the zone)
            "tenant_query": urlencode({TENANT_FILTER_PARAM: request.GET[TENANT_FILTER_PARAM]})
            if TENANT_FILTER_PARAM in request.GET
            else "",
            "bars": reports.bar_chart(board),
            "line": " ".join(reports.line_points(board)),
            "legend": [
                (c, reports.CHANNEL_COLOURS.get(c, "#999"), RequestChannel(c).label) for c in board.channels
            ],
            "on_time": reports.on_time_series(queryset, zone=zone),
            "violations": reports.violation_bars(queryset, zone=zone),
        }
        return TemplateResponse(request, "admin/unsubscribe/unsubscriberequest/dashboard.html", context)

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        """Every request this user may see, received in the last `days` days (default 365),
        days counted as on the dashboard: from midnight in the tenant's zone, today included."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        days = self._days(request, 365, 1, 3660)
        queryset, zone = self._report_scope(request)
        since = reports.days_start(days=days, zone=zone)
        return self._csv_response(
            request, queryset.filter(received_at__gte=since), zone, what=f"requests of {days} days (CSV)"
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        """A request's page holds personal data (its masked number, evidence, texts): each view of
        it is an entry in the tenant's audit record (who looked at which request)."""
        response = super().change_view(request, object_id, form_url, extra_context)
        shown = (getattr(response, "context_data", None) or {}).get("original")
        if request.method == "GET" and response.status_code == 200 and isinstance(shown, UnsubscribeRequest):
            audit_access(
                tenant_ids=[shown.tenant_id],
                kind="access.request_viewed",
                actor=user_actor(request.user),
                reference=shown.reference,
                payload={"phone_masked": shown.phone_masked},
            )
        return response

    def proof_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The request's proof pack (unsubscribe/proofs), for a regulator: a ZIP in the staff
        member's language. Another tenant's request is a 404 (get_object reads the scoped
        queryset); the download is recorded as an export of personal data."""
        found = self.get_object(request, object_id)
        if found is None:
            raise Http404
        if not self.has_view_permission(request, found):
            raise PermissionDenied
        pack = proof_pack_export(request=found, actor=user_actor(request.user), via="admin")
        response = HttpResponse(pack.content, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{pack.filename}"'
        return response

    def case_view(self, request: HttpRequest) -> HttpResponse:
        """A number's case: every request, suppression added or lifted, reply, message sent,
        voice call, consent record, deactivation or reassignment and subscription of the number
        at each tenant this user sees, on one timeline, newest first.

        The number comes by POST only (never in a URL, an access log or the browser's
        history), is normalised and digested per tenant before any look-up, and is neither
        stored nor logged; the page shows it masked. The visit itself is recorded in the audit
        record of every tenant looked at (who, and that tenant's digest and the masked number).
        """
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = CaseLookupForm(request.POST if request.method == "POST" else None)
        rows = None
        masked = ""
        if form.is_valid():
            e164 = form.cleaned_data["number"]
            tenant_ids = (
                list(Tenant.objects.values_list("pk", flat=True))
                if request.user.is_superuser
                else request_tenant_ids(request)
            )
            digests = phones.tenant_phone_hashes(e164, tenant_ids)
            rows = case_timeline(digests=digests)
            masked = phones.mask(e164)
            audit_access(
                tenant_ids=list(digests),
                kind="access.case_viewed",
                actor=user_actor(request.user),
                payload={"phone_masked": masked},
                per_tenant={tenant_id: {"phone_hash": digest} for tenant_id, digest in digests.items()},
            )
            form = CaseLookupForm()  # the answer holds the number masked only
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Case by number"),
            "form": form,
            "rows": rows,
            "masked": masked,
        }
        return TemplateResponse(request, "admin/unsubscribe/unsubscriberequest/case.html", context)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        """Filing a request goes through the same service as every channel."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        tenants = self.writable_tenants(request)
        form = FileRequestForm(request.POST or None, tenants=tenants)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            method = (
                VerificationMethod.AGENT_ASSERTION
                if data["channel"] == "hotline"
                else VerificationMethod.PARTNER_ASSERTION
            )
            try:
                filed = unsubscribe_request_create(
                    tenant=data["tenant"],
                    phone=data["phone"],
                    channel=data["channel"],
                    verification_method=method,
                    verification_evidence={
                        "agent": request.user.get_username(),
                        "note": data["agent_note"],
                        "filed_in": "admin",
                        "at": timezone.now().isoformat(),
                    },
                    services=list(data["services"]),
                    filed_by=f"staff {request.user.get_username()} (admin)",
                )
            except UnsubscribeError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(
                    request,
                    _("Request %(ref)s filed; the number is suppressed.") % {"ref": filed.request.reference},
                )
                return HttpResponseRedirect(
                    reverse("admin:unsubscribe_unsubscriberequest_change", args=[filed.request.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": _("File an unsubscribe request"),
            "opts": self.model._meta,
        }
        return render(request, "admin/unsubscribe/unsubscriberequest/file.html", context)


@admin.register(Suppression)
class SuppressionAdmin(ScopeNameMixin, PhoneSearchMixin, ReadOnlyAdminMixin, TenantScopedAdmin):
    list_select_related = ["tenant", "request"]  # request is nullable: Django would not join it
    list_display = ["phone_masked", "scope_name", "created_at", "request", "tenant"]
    list_filter = ["tenant", ScopeFilter]
    search_fields = ["scope"]
    readonly_fields = ("tenant", "phone_masked", "scope_name", "request", "created_at")
    fields = readonly_fields


@admin.register(SuppressionEvent)
class SuppressionEventAdmin(ScopeNameMixin, PhoneSearchMixin, ReadOnlyAdminMixin, TenantScopedAdmin):
    list_select_related = ["tenant", "request"]
    list_display = ["created_at", "phone_masked", "scope_name", "action", "channel_name", "request", "tenant"]
    list_filter = ["tenant", "action", ChannelFilter]
    search_fields = ["scope"]
    readonly_fields = (
        "tenant",
        "created_at",
        "phone_masked",
        "scope_name",
        "action",
        "channel_name",
        "request",
        "evidence",
    )
    fields = readonly_fields

    @admin.display(description=_("channel"), ordering="channel")
    def channel_name(self, obj: SuppressionEvent) -> str:
        return str(dict(RequestChannel.choices).get(obj.channel, obj.channel))


@admin.register(Step)
class StepAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["request", "kind", "where", "status", "attempts", "finished_at", "tenant"]
    list_filter = ["tenant", "kind", "status"]
    search_fields = ["request__reference", "target_name"]

    @admin.display(description=_("target"), ordering="target_name")
    def where(self, obj: Step) -> str:
        # target_name is the English snapshot; a source's label reads in the staff's language.
        return step_staff_label(obj)


@admin.register(ChannelSetting)
class ChannelSettingAdmin(TenantScopedAdmin):
    list_display = ["channel", "enabled", "tenant", "updated_at"]
    list_filter = ["tenant", "channel", "enabled"]
    fieldsets = [
        (None, {"fields": ["tenant", "channel", "enabled", "confirmation_channel"]}),
        (
            _("Reply SMS"),
            {
                "fields": ["reply_numbers", "extra_keywords"],
                "description": _(
                    "The answer to HELP replies is the tenant's “Help reply” template (Notifications)."
                ),
            },
        ),
        (_("App"), {"fields": ["app_path_zh", "app_path_en"]}),
        (
            _("Hotline / IVR"),
            {"fields": ["hotline_number", "hotline_hours", "hotline_menu_key", "ivr_enabled"]},
        ),
    ]


@admin.register(DeadlineRegime)
class DeadlineRegimeAdmin(TenantScopedAdmin):
    """A tenant's own deadline rules, and its settings of the built-in ones (same regime and rule)."""

    list_display = [
        "regime",
        "rule",
        "name",
        "amount",
        "unit",
        "calendar",
        "countries",
        "channels",
        "is_active",
    ]
    list_filter = ["tenant", "regime", "is_active"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "tenant",
                    "regime",
                    "rule",
                    "name",
                    "measure",
                    "amount",
                    "unit",
                    "calendar",
                    "countries",
                    "channels",
                    "source",
                    "is_active",
                ],
                "description": _(
                    "Built in: cn / termination (1 working day, China's calendar), cn / erasure (15 working days), "
                    "us / revocation (10 business days), us / confirmation (5 minutes), mailbox / one_click "
                    "(48 hours, email). A row with the same regime and rule replaces the built-in one, an inactive "
                    "row switches it off; any other row adds a rule. The provider's own SLA is the tenant's SLA hours."
                ),
            },
        )
    ]


class _CalendarAdmin(TenantScopedAdmin):
    """A change to a calendar computes the open requests' deadlines on it again."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        before = (form.initial.get("tenant"), form.initial.get("calendar")) if change else None
        super().save_model(request, obj, form, change)
        deadlines_recompute(tenant=obj.tenant, calendar=obj.calendar)
        # moved to another calendar or tenant: the one it left is computed again too
        if before and before[0] and before != (obj.tenant_id, obj.calendar):
            deadlines_recompute(tenant=Tenant.objects.get(pk=before[0]), calendar=before[1])

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)
        deadlines_recompute(tenant=obj.tenant, calendar=obj.calendar)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        touched = {(day.tenant, day.calendar) for day in queryset.select_related("tenant")}
        super().delete_queryset(request, queryset)
        for tenant, calendar in touched:
            deadlines_recompute(tenant=tenant, calendar=calendar)


@admin.register(CalendarDay)
class CalendarDayAdmin(_CalendarAdmin):
    """Working days and holidays staff enter: a year the library does not cover yet, or a
    single day that differs."""

    list_display = ["date", "calendar", "working", "note", "tenant"]
    list_filter = ["tenant", "calendar", "working"]
    date_hierarchy = "date"
    fields = ["tenant", "calendar", "date", "working", "note"]


@admin.register(CalendarYear)
class CalendarYearAdmin(_CalendarAdmin):
    """Staff mark a year entered once its holidays and adjusted working days are in: only then
    is a year the library does not cover known (its deadlines stop being provisional)."""

    list_display = ["year", "calendar", "note", "tenant"]
    list_filter = ["tenant", "calendar"]
    fields = ["tenant", "calendar", "year", "note"]
