"""Admin: webhook endpoints (secret write-only), their delivery log with "Send
again", and scrub jobs. Scoping comes from TenantScopedAdmin, work from services."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from lanzuan.outbound import UnsafeURL, check_url
from tenants.admin import ReadOnlyAdminMixin, TenantScopedAdmin
from unsubscribe.domain_events import EVENTS

from . import webhooks
from .errors import TooManyWebhookEndpoints
from .models import EVENT_CHOICES, ScrubJob, SendLogImport, WebhookDelivery, WebhookEndpoint


class WebhookEndpointForm(forms.ModelForm[WebhookEndpoint]):
    events = forms.MultipleChoiceField(
        label=_("Events"),
        choices=EVENT_CHOICES,
        widget=forms.CheckboxSelectMultiple,
    )
    secret = forms.CharField(
        label=_("Signing secret"),
        required=False,
        max_length=200,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_(
            "Write-only: never shown again. Leave empty to keep the current secret "
            "(or, for a new endpoint, to have one generated and shown once)."
        ),
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["tenant", "url", "description", "events", "secret", "is_active"]

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        try:
            check_url(url)
        except UnsafeURL as exc:
            raise forms.ValidationError(str(exc)) from None
        return url

    def clean_secret(self) -> str:
        value: str = self.cleaned_data.get("secret") or ""
        if value and len(value) < 16:
            raise forms.ValidationError(_("Use at least 16 characters."))
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        tenant = cleaned.get("tenant")
        # a new endpoint, or one moved to another tenant, needs room there
        if tenant is not None and (self.instance.pk is None or self.instance.tenant_id != tenant.pk):
            try:
                webhooks.webhook_endpoint_limit_check(tenant_id=tenant.pk)
            except TooManyWebhookEndpoints as exc:
                raise forms.ValidationError(exc.message, code=exc.code) from None
        return cleaned

    def save(self, commit: bool = True) -> WebhookEndpoint:
        endpoint: WebhookEndpoint = super().save(commit=False)
        endpoint.events = [e for e in EVENTS if e in self.cleaned_data["events"]]
        self.generated_secret = ""
        new_secret = self.cleaned_data.get("secret")
        if new_secret:
            endpoint.secret = new_secret
        elif endpoint.pk:
            # The tenant the row had when the form opened (the form may move it).
            stored_in = self.initial.get("tenant", endpoint.tenant_id)
            endpoint.secret = WebhookEndpoint.objects.for_tenant(stored_in).get(pk=endpoint.pk).secret
        else:
            endpoint.secret = self.generated_secret = webhooks.new_secret()
        if commit:
            endpoint.save()
        return endpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(TenantScopedAdmin):
    form = WebhookEndpointForm
    secret_fields = ("secret",)  # a viewer's read-only page would print it
    list_display = ["url", "event_list", "is_active", "description", "tenant", "created_at"]
    list_filter = ["tenant", "is_active"]
    search_fields = ["url", "description"]

    @admin.display(description=_("events"))
    def event_list(self, obj: WebhookEndpoint) -> str:
        return ", ".join(obj.events or [])

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
        else:
            if not self._may_write(request, obj):
                raise PermissionDenied
            # made by the service, like the API's: the per-tenant cap holds under races too
            endpoint, _secret = webhooks.webhook_endpoint_create(
                tenant=obj.tenant,
                url=obj.url,
                events=obj.events,
                secret=obj.secret,
                description=obj.description,
                is_active=obj.is_active,
            )
            obj.pk, obj.created_at = endpoint.pk, endpoint.created_at
        generated = getattr(form, "generated_secret", "")
        if generated:
            messages.warning(
                request,
                _("The signing secret for %(url)s is: %(secret)s — store it now, it will not be shown again.")
                % {"url": obj.url, "secret": generated},
            )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    records_deletable = True  # delivery logs, not compliance records
    list_display = [
        "created_at",
        "event",
        "endpoint",
        "status",
        "attempts",
        "response_code",
        "next_attempt_at",
        "tenant",
    ]
    list_filter = ["status", "event", "tenant", "endpoint"]
    search_fields = ["event_id", "endpoint__url"]
    date_hierarchy = "created_at"
    actions = ["send_again"]
    readonly_fields = (
        "tenant",
        "endpoint",
        "event",
        "event_id",
        "status",
        "attempts",
        "created_at",
        "last_attempt_at",
        "next_attempt_at",
        "give_up_at",
        "delivered_at",
        "response_code",
        "response_excerpt",
        "last_error",
        "payload_pretty",
    )
    fields = readonly_fields

    @admin.display(description=_("payload"))
    def payload_pretty(self, obj: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, ensure_ascii=False, indent=2))

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return self._may_write(request)

    @admin.action(description=_("Send again"), permissions=["resend"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        sent = 0
        for delivery in queryset:
            if self._may_write(request, delivery):
                webhooks.webhook_delivery_resend(delivery=delivery)
                sent += 1
        messages.success(
            request,
            ngettext("%(count)d delivery queued again.", "%(count)d deliveries queued again.", sent)
            % {"count": sent},
        )


@admin.register(ScrubJob)
class ScrubJobAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    records_deletable = True  # its files go with it (apps.py)
    list_display = [
        "created_at",
        "original_name",
        "status",
        "percent",
        "total_rows",
        "invalid",
        "duplicate",
        "suppressed",
        "sendable",
        "tenant",
    ]
    list_filter = ["status", "tenant"]
    search_fields = ["original_name"]
    readonly_fields = (
        "tenant",
        "original_name",
        "service_code",
        "status",
        "phase",
        "percent",
        "total_rows",
        "rows_done",
        "invalid",
        "duplicate",
        "suppressed",
        "sendable",
        "has_result",
        "error",
        "created_at",
        "started_at",
        "finished_at",
    )
    fields = readonly_fields

    @admin.display(description=_("result available"), boolean=True)
    def has_result(self, obj: ScrubJob) -> bool:
        return bool(obj.result)


@admin.register(SendLogImport)
class SendLogImportAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    records_deletable = True  # its upload goes with it (apps.py)
    list_display = [
        "created_at",
        "original_name",
        "status",
        "rows_done",
        "total_rows",
        "accepted",
        "duplicates",
        "invalid",
        "violations",
        "tenant",
    ]
    list_filter = ["status", "tenant"]
    search_fields = ["original_name"]
    readonly_fields = (
        "tenant",
        "original_name",
        "submitted_by",
        "status",
        "total_rows",
        "rows_done",
        "accepted",
        "duplicates",
        "invalid",
        "violations",
        "errors",
        "error",
        "created_at",
        "started_at",
        "finished_at",
    )
    fields = readonly_fields
