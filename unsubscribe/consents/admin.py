"""Admin of the consent-evidence ledger and of reported number deactivations and reassignments
(issue 16): the records, read-only; a CSV upload of reports; the pieces the subscription and
request pages show (imported by unsubscribe/admin.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from lanzuan import phones
from tenants.admin import (
    AdminMixin,
    ReadOnlyAdminMixin,
    TenantScopedAdmin,
    TenantScopedInline,
    number_digest_filter,
)
from tenants.models import Tenant

from ..models import ConsentRecord, ConsentWording, NumberEvent, Subscription
from ..reassignments.selectors import number_event_dates, void_since, voided_subscriptions
from ..reassignments.services import MAX_EVENT_ITEMS, number_events_from_csv, number_events_record
from .selectors import consent_records, record_void_since, wordings

MAX_CSV_BYTES = 2 * 1024 * 1024


class PageEventDays(AdminMixin):
    """A list of rows keyed by a number's digest: the reported deactivation and reassignment days
    of every row on the page, read in one query per tenant, not one per row. Each row gets them
    as `_event_days`; a row's page (no list) reads its own."""

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        digests: dict[int, set[str]] = {}
        for row in changelist.result_list:
            digests.setdefault(row.tenant_id, set()).add(row.phone_hash)
        days = {
            (tenant_id, digest): found
            for tenant_id, wanted in digests.items()
            for digest, found in number_event_dates(tenant=tenant_id, digests=wanted).items()
        }
        for row in changelist.result_list:
            row._event_days = days.get((row.tenant_id, row.phone_hash), [])
        return changelist


class _NumberSearch(admin.ModelAdmin[Any]):
    """Search by number: normalised and digested, never matched in clear."""

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


class RevokedFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("active", _("Active")), ("revoked", _("Revoked")), ("minimised", _("Minimised"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "minimised":
            return queryset.filter(minimised_at__isnull=False)
        return queryset


@admin.register(ConsentRecord)
class ConsentRecordAdmin(PageEventDays, ReadOnlyAdminMixin, _NumberSearch, TenantScopedAdmin):
    list_display = [
        "phone_masked",
        "service",
        "source",
        "given_at",
        "revoked_at",
        "revoked_by_request",
        "void_text",
        "minimised_at",
        "tenant",
    ]
    list_filter = ["tenant", "source", RevokedFilter]
    list_select_related = ["service", "revoked_by_request", "tenant"]
    search_fields = ["service__code"]
    readonly_fields = (
        "tenant",
        "phone_masked",
        "service",
        "source",
        "source_detail",
        "given_at",
        "wording_text",
        "wording_sha256",
        "evidence_order_id",
        "evidence_page_version",
        "evidence_ip",
        "captured_by",
        "recorded_at",
        "revoked_at",
        "revoked_by_request",
        "void_text",
        "minimised_at",
    )
    fields = readonly_fields

    @admin.display(description=_("void"))
    def void_text(self, obj: ConsentRecord) -> str:
        days = getattr(obj, "_event_days", None)
        day = record_void_since(obj) if days is None else void_since(obj.given_at, days, obj.tenant.zoneinfo)
        return str(_("Void: the number changed hands on %(day)s") % {"day": day.isoformat()}) if day else "—"

    @admin.display(description=_("wording"))
    def wording_text(self, obj: ConsentRecord) -> str:
        return wordings(tenant=obj.tenant_id, hashes=[obj.wording_sha256]).get(obj.wording_sha256, "—")


@admin.register(ConsentWording)
class ConsentWordingAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["sha256", "short_text", "created_at", "tenant"]
    list_filter = ["tenant"]
    search_fields = ["sha256", "text"]
    readonly_fields = ("tenant", "sha256", "text", "created_at")
    fields = readonly_fields

    @admin.display(description=_("wording"))
    def short_text(self, obj: ConsentWording) -> str:
        return obj.text[:80]


class NumberEventUploadForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), label=_("Tenant"))
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_("Columns: phone, event (deactivated or reassigned), date (YYYY-MM-DD)."),
    )

    def __init__(self, *args: Any, tenants: QuerySet[Tenant], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tenant"].queryset = tenants  # type: ignore[attr-defined]
        if tenants.count() == 1:
            self.fields["tenant"].initial = tenants.first()

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_CSV_BYTES:
            raise forms.ValidationError(_("At most 2 MB per file; split it into several files."))
        return upload


@admin.register(NumberEvent)
class NumberEventAdmin(ReadOnlyAdminMixin, _NumberSearch, TenantScopedAdmin):
    records_deletable = True  # a report made by mistake may be withdrawn
    list_display = [
        "phone_masked",
        "kind",
        "occurred_on",
        "voided_count",
        "reported_by",
        "created_at",
        "tenant",
    ]
    list_filter = ["tenant", "kind"]
    readonly_fields = (
        "tenant",
        "phone_masked",
        "kind",
        "occurred_on",
        "voided_count",
        "reported_by",
        "created_at",
    )
    fields = readonly_fields
    change_list_template = "admin/unsubscribe/numberevent/change_list.html"

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        """Each report's count of voided subscriptions, for the whole page in one query per tenant."""
        changelist = super().get_changelist_instance(request)
        events: list[NumberEvent] = list(changelist.result_list)
        consents: dict[tuple[int, str], list[datetime]] = {}
        for tenant_id in {event.tenant_id for event in events}:
            rows = (
                Subscription.objects.for_tenant(tenant_id)
                .filter(phone_hash__in={e.phone_hash for e in events if e.tenant_id == tenant_id})
                .exclude(consent_at=None)
                .values_list("phone_hash", "consent_at")
            )
            for digest, consent_at in rows:
                if consent_at is not None:
                    consents.setdefault((tenant_id, digest), []).append(consent_at)
        for event in events:
            zone = event.tenant.zoneinfo
            event._voided = sum(  # type: ignore[attr-defined]
                1
                for consent_at in consents.get((event.tenant_id, event.phone_hash), [])
                if consent_at.astimezone(zone).date() <= event.occurred_on
            )
        return changelist

    @admin.display(description=_("subscriptions voided"))
    def voided_count(self, obj: NumberEvent) -> int:
        voided = getattr(obj, "_voided", None)
        return voided_subscriptions(obj).count() if voided is None else int(voided)

    def get_urls(self) -> list[Any]:
        return [
            path(
                "upload/",
                self.admin_site.admin_view(self.upload_view),
                name="unsubscribe_numberevent_upload",
            ),
            *super().get_urls(),
        ]

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        if not self._may_write(request):
            raise PermissionDenied
        form = NumberEventUploadForm(
            request.POST or None, request.FILES or None, tenants=self.writable_tenants(request)
        )
        if request.method == "POST" and form.is_valid():
            tenant = form.cleaned_data["tenant"]
            try:
                text = form.cleaned_data["file"].read().decode("utf-8-sig")
                items: list[Any] = list(number_events_from_csv(text))
            except UnicodeDecodeError:
                form.add_error("file", _("The file is not UTF-8 text."))
            except ValueError as exc:
                form.add_error("file", str(exc))
            else:
                if len(items) > MAX_EVENT_ITEMS:
                    form.add_error("file", _("At most 10,000 rows per file."))
                else:
                    result = number_events_record(
                        tenant=tenant, items=items, reported_by=f"CSV upload by {request.user}"
                    )
                    messages.success(
                        request,
                        _("%(recorded)s recorded, %(duplicates)s already on record, %(invalid)s invalid.")
                        % {
                            "recorded": result.recorded,
                            "duplicates": result.duplicates,
                            "invalid": result.invalid,
                        },
                    )
                    for error in result.errors[:20]:
                        messages.warning(
                            request,
                            _("line %(line)s: %(problem)s")
                            % {
                                "line": error["index"] + 2,
                                "problem": f"{error['field']}: {error['message']}",
                            },
                        )
                    return HttpResponseRedirect(reverse("admin:unsubscribe_numberevent_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": _("Upload number deactivations and reassignments"),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/unsubscribe/numberevent/upload.html", context)


# --- on the subscription and request pages ----------------------------------------------------


class ConsentVoidFilter(admin.SimpleListFilter):
    """Subscriptions whose consent a deactivation or reassignment of the number voided (its day
    on or after the consent's, in the zone the page counts days in)."""

    title = _("consent void (number changed hands)")
    parameter_name = "consent_void"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Void")), ("no", _("Stands"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() not in ("yes", "no"):
            return queryset
        # The events are few next to the subscriptions: the void ones are found by their numbers'
        # events, each in its tenant's own time zone (void_since), and listed by id.
        events = NumberEvent.objects.for_tenants(
            set(queryset.order_by().values_list("tenant_id", flat=True).distinct())
        ).values_list("tenant_id", "phone_hash", "occurred_on")
        days: dict[tuple[int, str], list[date]] = {}
        for tenant_id, digest, day in events:
            days.setdefault((tenant_id, digest), []).append(day)
        zones = {t.pk: t.zoneinfo for t in Tenant.objects.filter(pk__in={k[0] for k in days})}
        void = (
            [
                pk
                for pk, tenant_id, digest, consent_at in queryset.filter(
                    phone_hash__in={k[1] for k in days}, consent_at__isnull=False
                ).values_list("pk", "tenant_id", "phone_hash", "consent_at")
                if void_since(consent_at, days[(tenant_id, digest)], zones[tenant_id]) is not None
            ]
            if days
            else []
        )
        if self.value() == "yes":
            return queryset.filter(pk__in=void)
        return queryset.exclude(pk__in=void)


def subscription_void_since(subscription: Subscription) -> str:
    """The subscription page's and list's "consent void since" (empty: it stands); on a list,
    from the page's event days (PageEventDays)."""
    if subscription.consent_at is None:
        return ""
    zone = subscription.tenant.zoneinfo
    days = getattr(subscription, "_event_days", None)
    if days is not None:
        day = void_since(subscription.consent_at, days, zone)
        return day.isoformat() if day else ""
    given_on = subscription.consent_at.astimezone(zone).date()
    day = (
        NumberEvent.objects.for_tenant(subscription.tenant_id)
        .filter(phone_hash=subscription.phone_hash, occurred_on__gte=given_on)
        .order_by("occurred_on")
        .values_list("occurred_on", flat=True)
        .first()
    )
    return day.isoformat() if day else ""


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="minutes") if moment else "—"


def subscription_consents_table(subscription: Subscription) -> SafeString:
    """The consent records of the subscription's number and service, newest first."""
    records = list(
        consent_records(tenant=subscription.tenant_id, phone_hash=subscription.phone_hash).filter(
            service_id=subscription.service_id
        )[:50]
    )
    if not records:
        return format_html("{}", _("No consent record."))
    words = wordings(tenant=subscription.tenant_id, hashes=[r.wording_sha256 for r in records])
    rows = format_html_join(
        "",
        '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
        (
            (
                reverse("admin:unsubscribe_consentrecord_change", args=[r.pk]),
                _when(r.given_at),
                r.get_source_display(),
                words.get(r.wording_sha256, "—")[:120],
                _when(r.revoked_at),
                r.revoked_by_request.reference if r.revoked_by_request else "—",
                record_void_since(r) or "—",
            )
            for r in records
        ),
    )
    return format_html(
        '<table data-testid="consent-records"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th>'
        "<th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
        _("consent time"),
        _("source"),
        _("wording"),
        _("revoked"),
        _("revoked by request"),
        _("void since"),
        rows,
    )


class RevokedConsentInline(TenantScopedInline):
    """On a request's page: the consents it revoked."""

    model = ConsentRecord
    fk_name = "revoked_by_request"
    extra = 0
    can_delete = False
    readonly_fields = (
        "phone_masked",
        "service",
        "source",
        "given_at",
        "wording_sha256",
        "revoked_at",
        "minimised_at",
    )
    fields = readonly_fields
    verbose_name = _("revoked consent")
    verbose_name_plural = _("consents it revoked")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True  # shown on a request's page, which the parent admin has already scoped
