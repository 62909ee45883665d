"""Admin: templates (with a live preview and SMS segment count), gateways (secrets
write-only) and messages (read-only records). Scoping and history come from
TenantScopedAdmin."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from lanzuan.outbound import UnsafeURL, check_host, check_url
from tenants.admin import TenantScopedAdmin, request_tenant_ids
from tenants.models import Tenant
from unsubscribe import phones

from .defaults import default_text
from .events import EVENT_VARIABLES, Channel, Event, sample_values
from .models import GatewayConfig, Message, Template
from .rendering import render, sms_length, text_errors

PREVIEW_URL_NAME = "notifications_template_preview"


def preview_html(
    *, event: str, channel: str, language: str, subject: str, body: str, tenant: Tenant | None
) -> SafeString:
    """The text as a person would receive it, rendered with sample values, and its SMS length."""
    if event not in EVENT_VARIABLES:
        return format_html("<p>{}</p>", _("Choose an event to see the preview."))
    problems = text_errors(subject, event) + text_errors(body, event)
    if problems:
        return format_html(
            '<ul class="errorlist">{}</ul>', format_html_join("", "<li>{}</li>", ((p,) for p in problems))
        )
    values = sample_values(
        tenant_name=tenant.name if tenant else str(_("Example Provider")),
        slug=tenant.slug if tenant else "example",
    )
    rendered_body = render(body, values)
    parts = []
    if subject and channel != Channel.SMS:
        parts.append(format_html("<p><strong>{}</strong> {}</p>", _("Subject:"), render(subject, values)))
    parts.append(
        format_html(
            '<pre style="white-space: pre-wrap; font-size: 1em; max-width: 40em">{}</pre>', rendered_body
        )
    )
    if channel == Channel.SMS:
        length = sms_length(rendered_body)
        parts.append(
            format_html(
                "<p>{} · <strong>{}</strong> · {}</p>",
                ngettext("%(count)d character", "%(count)d characters", length.characters)
                % {"count": length.characters},
                ngettext("%(count)d SMS segment", "%(count)d SMS segments", length.segments)
                % {"count": length.segments},
                _("%(encoding)s: %(single)d in one message, %(part)d per part")
                % {"encoding": length.encoding, "single": length.single_limit, "part": length.part_limit},
            )
        )
    else:
        parts.append(
            format_html(
                "<p>{}</p>",
                ngettext("%(count)d character", "%(count)d characters", len(rendered_body))
                % {"count": len(rendered_body)},
            )
        )
    parts.append(format_html("<p class='help'>{}</p>", _("Rendered with sample values.")))
    return format_html_join("", "{}", ((p,) for p in parts))


class TemplateForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = ["tenant", "event", "channel", "language", "subject", "body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 4, "cols": 80})}


@admin.register(Template)
class TemplateAdmin(TenantScopedAdmin):
    form = TemplateForm
    list_display = ["event", "channel", "language", "short_body", "tenant", "updated_at"]
    list_filter = ["tenant", "event", "channel", "language"]
    search_fields = ["body", "subject"]
    readonly_fields = ["preview", "available_variables", "built_in_text"]
    fieldsets = [
        (None, {"fields": ["tenant", "event", "channel", "language", "subject", "body"]}),
        (_("Preview"), {"fields": ["preview", "available_variables", "built_in_text"]}),
    ]

    class Media:
        js = ["notifications/template_preview.js"]

    @admin.display(description=_("body"))
    def short_body(self, obj: Template) -> str:
        return obj.body if len(obj.body) <= 60 else obj.body[:59] + "…"

    @admin.display(description=_("preview"))
    def preview(self, obj: Template | None) -> SafeString:
        inner = (
            preview_html(
                event=obj.event,
                channel=obj.channel,
                language=obj.language,
                subject=obj.subject,
                body=obj.body,
                tenant=obj.tenant,
            )
            if obj is not None and obj.pk
            else format_html("<p>{}</p>", _("Type a body to see the preview."))
        )
        return format_html(
            '<div id="lanzuan-template-preview" data-preview-url="{}">{}</div>',
            reverse(f"admin:{PREVIEW_URL_NAME}"),
            inner,
        )

    @admin.display(description=_("available variables"))
    def available_variables(self, obj: Template | None) -> SafeString:
        rows = (
            (label, ", ".join("{" + name + "}" for name in sorted(EVENT_VARIABLES[value])))
            for value, label in Event.choices
        )
        return format_html("<dl>{}</dl>", format_html_join("", "<dt>{}</dt><dd><code>{}</code></dd>", rows))

    @admin.display(description=_("built-in text"))
    def built_in_text(self, obj: Template | None) -> SafeString:
        if obj is None or not obj.pk:
            return format_html("<p>{}</p>", _("Shown once the template is saved."))
        default = default_text(obj.event, obj.language)
        return format_html(
            "<p>{}</p><pre style='white-space: pre-wrap'>{}</pre>", default.subject, default.body
        )

    def get_urls(self) -> list[Any]:
        preview = path("preview/", self.admin_site.admin_view(self.preview_view), name=PREVIEW_URL_NAME)
        return [preview, *super().get_urls()]

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """POST the form's fields, get the preview back (the live preview's JavaScript)."""
        if request.method != "POST":
            return HttpResponse(status=405)
        if not self.has_view_permission(request):
            raise PermissionDenied
        tenant = None
        tenant_id = request.POST.get("tenant", "")
        if tenant_id.isdigit():
            tenants = Tenant.objects.all()
            if not (request.user.is_active and request.user.is_superuser):
                tenants = tenants.filter(pk__in=request_tenant_ids(request))
            tenant = tenants.filter(pk=int(tenant_id)).first()
        html = preview_html(
            event=request.POST.get("event", ""),
            channel=request.POST.get("channel", Channel.SMS),
            language=request.POST.get("language", ""),
            subject=request.POST.get("subject", ""),
            body=request.POST.get("body", ""),
            tenant=tenant,
        )
        return JsonResponse({"html": str(html)})


class GatewayConfigForm(forms.ModelForm):
    secret = forms.CharField(
        label=_("Secret"),
        required=False,
        max_length=300,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Write-only: never shown again. Leave empty to keep the current secret."),
    )

    class Meta:
        model = GatewayConfig
        fields = [
            "tenant",
            "channel",
            "kind",
            "is_active",
            "sender_id",
            "template_code",
            "template_codes",
            "endpoint",
            "account_id",
            "secret",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.secret:
            self.fields["secret"].help_text = _(
                "A secret is stored (never shown). Leave empty to keep it, or type a new one to replace it."
            )

    def clean_endpoint(self) -> str:
        url: str = self.cleaned_data.get("endpoint") or ""
        # HTTP endpoints must be public https; an SMTP server must be a public host too.
        try:
            if url and url.split(":", 1)[0] in ("http", "https"):
                check_url(url)
            elif url:
                check_host(urlsplit(url).hostname or "")
        except UnsafeURL as exc:
            raise forms.ValidationError(str(exc)) from None
        return url

    def clean_secret(self) -> str:
        value: str = self.cleaned_data.get("secret") or ""
        if not value and self.instance.pk:
            # The stored value, read again from the database (the instance may be
            # a copy the form has not touched): blank means "keep".
            stored = (
                GatewayConfig.objects.filter(pk=self.instance.pk).values_list("secret", flat=True).first()
            )
            return stored or ""
        return value


@admin.register(GatewayConfig)
class GatewayConfigAdmin(TenantScopedAdmin):
    form = GatewayConfigForm
    secret_fields = ("secret",)
    list_display = ["channel", "kind", "sender_id", "account_id", "has_secret", "is_active", "tenant"]
    list_filter = ["tenant", "channel", "kind", "is_active"]

    @admin.display(description=_("secret set"), boolean=True)
    def has_secret(self, obj: GatewayConfig) -> bool:
        return bool(obj.secret)


@admin.register(Message)
class MessageAdmin(TenantScopedAdmin):
    """Every message sent: read-only, without the raw recipient or any one-time code."""

    list_display = ["created_at", "to_masked", "event", "channel", "language", "status", "attempts", "tenant"]
    list_filter = ["status", "event", "channel", "tenant"]
    search_fields = ["to_masked", "provider_message_id", "dedupe_key"]
    date_hierarchy = "created_at"
    fields = [
        "tenant",
        "event",
        "channel",
        "language",
        "template",
        "to_masked",
        "subject",
        "body",
        "status",
        "attempts",
        "error",
        "gateway",
        "provider_message_id",
        "provider_status",
        "dedupe_key",
        "created_at",
        "next_attempt_at",
        "sent_at",
        "delivered_at",
        "failed_at",
    ]
    readonly_fields = fields
    # Messages have no history table (it would copy the recipient): Django's own log.
    object_history_template = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if self.get_object(request, object_id) is None:
            raise Http404(_("No such object."))
        return admin.ModelAdmin.history_view(self, request, object_id, extra_context)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        # A full number or address finds its messages through the keyed hash.
        term = search_term.strip()
        if term:
            try:
                digest = phones.phone_hash(term.lower() if "@" in term else phones.normalise(term))
            except phones.InvalidPhoneNumber:
                digest = ""
            if digest:
                return queryset.filter(to_hash=digest), False
        return super().get_search_results(request, queryset, search_term)
