"""Admin: templates (with a live preview and SMS segment count), gateways (secrets
write-only) and messages (read-only records). Scoping and history come from
TenantScopedAdmin."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from lanzuan import phones
from lanzuan.outbound import UnsafeURL, check_host, check_url
from tenants.admin import ReadOnlyAdminMixin, TenantScopedAdmin, number_digest_filter
from tenants.forms import StoredSecretMixin, secret_field
from tenants.models import OPERATIONS_ROLES, Tenant
from tenants.scoping import request_tenant_ids

from .catalogue import EVENT_VARIABLES, Event, MessageChannel, sample_values
from .defaults import default_text
from .models import GatewayConfig, Message, Template
from .rendering import render, sms_length, text_errors
from .services import MessageNotRetryable, message_retry, template_save

PREVIEW_URL_NAME = "notifications_template_preview"
# (event, channel, language) asked for by the add page's URL, for its read-only
# "built-in text" box, which Django renders without the request. Per request, not
# on the shared ModelAdmin.
_built_in_for_add: ContextVar[tuple[str, str, str] | None] = ContextVar("built_in_for_add", default=None)


def _sample_values(tenant: Tenant | None) -> dict[str, str]:
    return sample_values(
        tenant_name=tenant.name if tenant else str(_("Example Provider")),
        slug=tenant.slug if tenant else "example",
    )


def _as_sent(body: str, event: str, tenant: Tenant | None) -> str:
    """The body with sample values when it renders, else as typed (still worth counting)."""
    try:
        return render(body, _sample_values(tenant)) if event in EVENT_VARIABLES else body
    except ValueError:
        return body


def length_html(*, event: str, channel: str, body: str, tenant: Tenant | None) -> SafeString:
    """Characters and SMS segments of what a person would receive (GSM-7 or UCS-2)."""
    text = _as_sent(body, event, tenant)
    if channel != MessageChannel.SMS:
        return format_html(
            "<span>{}</span>",
            ngettext("%(count)d character", "%(count)d characters", len(text)) % {"count": len(text)},
        )
    length = sms_length(text)
    return format_html(
        "<span>{} · <strong>{}</strong> · {}</span>",
        ngettext("%(count)d character", "%(count)d characters", length.characters)
        % {"count": length.characters},
        ngettext("%(count)d SMS segment", "%(count)d SMS segments", length.segments)
        % {"count": length.segments},
        _("%(encoding)s: %(single)d in one message, %(part)d per part")
        % {"encoding": length.encoding, "single": length.single_limit, "part": length.part_limit},
    )


def length_data(*, event: str, channel: str, body: str, tenant: Tenant | None) -> dict[str, Any]:
    text = _as_sent(body, event, tenant)
    if channel != MessageChannel.SMS:
        return {"characters": len(text)}
    length = sms_length(text)
    return {
        "characters": length.characters,
        "encoding": length.encoding,
        "units": length.units,
        "segments": length.segments,
        "single_limit": length.single_limit,
        "part_limit": length.part_limit,
    }


def built_in_html(*, event: str, channel: str, language: str) -> SafeString:
    """The text sent when the tenant has none of its own for this event and language."""
    if event not in EVENT_VARIABLES:
        return format_html("<p>{}</p>", _("Choose an event to see its built-in text."))
    default = default_text(event, language or settings.LANGUAGE_CODE)
    subject = (
        format_html("<p><strong>{}</strong> {}</p>", _("Subject:"), default.subject)
        if channel != MessageChannel.SMS
        else ""
    )
    return format_html(
        "{}<pre style='white-space: pre-wrap; max-width: 40em'>{}</pre>"
        '<p><button type="button" class="button" data-lanzuan-use-built-in>{}</button></p>',
        subject,
        default.body,
        _("Start from the built-in text"),
    )


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
    values = _sample_values(tenant)
    rendered_body = render(body, values)
    parts = []
    if subject and channel != MessageChannel.SMS:
        parts.append(format_html("<p><strong>{}</strong> {}</p>", _("Subject:"), render(subject, values)))
    parts.append(
        format_html(
            '<pre style="white-space: pre-wrap; font-size: 1em; max-width: 40em">{}</pre>', rendered_body
        )
    )
    parts.append(
        format_html("<p>{}</p>", length_html(event=event, channel=channel, body=body, tenant=tenant))
    )
    parts.append(format_html("<p class='help'>{}</p>", _("Rendered with sample values.")))
    return format_html_join("", "{}", ((p,) for p in parts))


class TemplateForm(forms.ModelForm[Template]):
    class Meta:
        model = Template
        fields = ["tenant", "event", "channel", "language", "subject", "body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 4, "cols": 80})}


@admin.register(Template)
class TemplateAdmin(TenantScopedAdmin):
    form = TemplateForm
    list_display = ["event", "channel", "language", "short_body", "sms_segments", "tenant", "updated_at"]
    list_filter = ["tenant", "event", "channel", "language"]
    list_select_related = ["tenant"]
    search_fields = ["body", "subject"]
    readonly_fields = ["body_length", "preview", "available_variables", "built_in_text"]
    fieldsets = [
        (None, {"fields": ["tenant", "event", "channel", "language", "subject", "body", "body_length"]}),
        (_("Built-in text"), {"fields": ["built_in_text"]}),
        (_("Preview"), {"fields": ["preview", "available_variables"]}),
    ]

    class Media:
        js = ["notifications/template_preview.js"]

    @admin.display(description=_("body"))
    def short_body(self, obj: Template) -> str:
        return obj.body if len(obj.body) <= 60 else obj.body[:59] + "…"

    @admin.display(description=_("SMS segments"))
    def sms_segments(self, obj: Template) -> str:
        if obj.channel != MessageChannel.SMS:
            return "—"
        segments = sms_length(_as_sent(obj.body, obj.event, obj.tenant)).segments
        return ngettext("%(count)d SMS segment", "%(count)d SMS segments", segments) % {"count": segments}

    @admin.display(description=_("length"))
    def body_length(self, obj: Template | None) -> SafeString:
        inner = (
            length_html(event=obj.event, channel=obj.channel, body=obj.body, tenant=obj.tenant)
            if obj is not None and obj.pk
            else format_html("<span>{}</span>", _("Type a body to count its characters and SMS segments."))
        )
        return format_html(
            '<div id="lanzuan-template-length" aria-live="polite">{}</div><div class=\'help\'>{}</div>',
            inner,
            _(
                "Counted on the text as sent, with sample values. Chinese text is sent as UCS-2: "
                "70 characters in one SMS, 67 per part when longer; GSM-7: 160, 153 per part."
            ),
        )

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
        initial = _built_in_for_add.get()
        if obj is not None and obj.pk:
            event, channel, language = obj.event, obj.channel, obj.language
        elif initial:
            event, channel, language = initial
        else:
            event, channel, language = "", MessageChannel.SMS, ""
        return format_html(
            '<div id="lanzuan-template-built-in">{}</div><div class="help">{}</div>',
            built_in_html(event=event, channel=channel, language=language),
            _("Sent when the tenant has no text of its own for this event, channel and language."),
        )

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """?event=…&language=…&channel=… prefills the form with the built-in text."""
        initial: dict[str, Any] = dict(super().get_changeform_initial_data(request))
        event = str(initial.get("event") or "")
        if event in EVENT_VARIABLES:
            channel = str(initial.get("channel") or MessageChannel.SMS)
            language = str(initial.get("language") or settings.LANGUAGE_CODE)
            default = default_text(event, language)
            initial.setdefault("body", default.body)
            if channel != MessageChannel.SMS:
                initial.setdefault("subject", default.subject)
        return initial

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The read-only "built-in text" box has no object on the add page: it shows
        # the text for the event and language the link asked for.
        event = request.GET.get("event", "")
        token = _built_in_for_add.set(
            (event, request.GET.get("channel", MessageChannel.SMS), request.GET.get("language", ""))
            if event in EVENT_VARIABLES
            else None
        )
        try:
            response = super().add_view(request, form_url, extra_context)
            if isinstance(response, TemplateResponse):
                response.render()  # while the choice is set: rendering is otherwise lazy
            return response
        finally:
            _built_in_for_add.reset(token)

    def save_model(self, request: HttpRequest, obj: Template, form: Any, change: bool) -> None:
        if not self._may_write(request, obj):
            raise PermissionDenied
        template_save(
            tenant=obj.tenant,
            event=obj.event,
            channel=obj.channel,
            language=obj.language,
            subject=obj.subject,
            body=obj.body,
            template=obj,
        )

    def get_urls(self) -> list[Any]:
        preview = path("preview/", self.admin_site.admin_view(self.preview_view), name=PREVIEW_URL_NAME)
        return [preview, *super().get_urls()]

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """POST the form's fields, get the preview, the length and the built-in text back
        (the live preview's JavaScript)."""
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
        event = request.POST.get("event", "")
        channel = request.POST.get("channel", MessageChannel.SMS)
        language = request.POST.get("language", "")
        body = request.POST.get("body", "")
        html = preview_html(
            event=event,
            channel=channel,
            language=language,
            subject=request.POST.get("subject", ""),
            body=body,
            tenant=tenant,
        )
        default = (
            default_text(event, language or settings.LANGUAGE_CODE) if event in EVENT_VARIABLES else None
        )
        return JsonResponse(
            {
                "html": str(html),
                "length": length_data(event=event, channel=channel, body=body, tenant=tenant),
                "length_html": str(length_html(event=event, channel=channel, body=body, tenant=tenant)),
                "built_in": (
                    {
                        "subject": default.subject if channel != MessageChannel.SMS else "",
                        "body": default.body,
                    }
                    if default
                    else None
                ),
                "built_in_html": str(built_in_html(event=event, channel=channel, language=language)),
            }
        )


class GatewayConfigForm(StoredSecretMixin):
    secret_required = False  # some kinds need none (the file gateway)
    secret = secret_field(
        help_text=_("Write-only: never shown again. Leave empty to keep the current secret."), max_length=300
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
class MessageAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Every message sent: read-only, without the raw recipient or any one-time code.
    "Send again" puts a failed message back in the queue (services.message_retry)."""

    write_roles = OPERATIONS_ROLES  # agents who retry requests may send a failed message again
    actions = ["send_again"]
    list_display = ["created_at", "to_masked", "event", "channel", "language", "status", "attempts", "tenant"]
    list_filter = ["status", "event", "channel", "tenant"]
    search_fields = ["to_masked", "provider_message_id", "dedupe_key"]
    date_hierarchy = "created_at"
    readonly_fields = (
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
    )
    fields = readonly_fields
    # Messages have no history table (it would copy the recipient): Django's own log.
    object_history_template = None

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if self.get_object(request, object_id) is None:
            raise Http404(_("No such object."))
        return admin.ModelAdmin.history_view(self, request, object_id, extra_context)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return self._may_write(request)

    @admin.action(description=_("Send failed messages again"), permissions=["retry"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        sent, refused = 0, []
        for message in queryset:
            if not self._may_write(request, message):
                continue
            try:
                message_retry(message=message)
            except MessageNotRetryable as exc:
                refused.append(f"{message.pk}: {exc}")
                continue
            sent += 1
        if sent:
            self.message_user(
                request,
                ngettext(
                    "%(count)d message put back in the queue: a worker sends it now.",
                    "%(count)d messages put back in the queue: a worker sends them now.",
                    sent,
                )
                % {"count": sent},
                messages.SUCCESS,
            )
        for reason in refused:
            self.message_user(
                request, _("Not sent again: message %(reason)s") % {"reason": reason}, messages.WARNING
            )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        # A full number or address finds its messages through the keyed hash.
        term = search_term.strip()
        if term:
            try:
                recipient = term.lower() if "@" in term else phones.normalise(term)
            except phones.InvalidPhoneNumber:
                recipient = ""
            if recipient:
                return queryset.filter(number_digest_filter(request, "to_hash", recipient)), False
        return super().get_search_results(request, queryset, search_term)
