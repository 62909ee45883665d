"""Admin for the voice menu: gateway credentials (write-only secrets), the prompt texts
with a preview of the whole call, and the calls received (number masked, keys, outcome).
Scoping comes from TenantScopedAdmin; writes from services."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from lanzuan import phones
from tenants.admin import ReadOnlyAdminMixin, TenantScopedAdmin, number_digest_filter
from tenants.models import Tenant
from tenants.scoping import request_tenant_ids

from . import services
from .forms import VoiceCredentialForm, VoicePromptForm
from .models import VoiceCall, VoiceCredential, VoicePrompt
from .prompts import (
    DEFAULTS,
    EN,
    LANGUAGES,
    SAMPLE_VALUES,
    SAMPLE_VALUES_EN,
    VARIABLES,
    PromptBook,
    prompt_errors,
)

SCRIPT_URL_NAME = "voice_voiceprompt_script"


@admin.register(VoiceCredential)
class VoiceCredentialAdmin(TenantScopedAdmin):
    form = VoiceCredentialForm
    list_display = ["provider", "enabled", "has_secret", "webhook_url", "tenant", "updated_at"]
    list_filter = ["tenant", "provider", "enabled"]
    list_select_related = ["tenant"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields: list[str] = ["tenant", "provider", "enabled", "voice_zh", "voice_en"]
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
    def has_secret(self, obj: VoiceCredential) -> bool:
        return bool(obj.secret)

    @admin.display(description=_("webhook URL"))
    def webhook_url(self, obj: VoiceCredential) -> str:
        name = "voice:twilio-hook" if obj.provider == "twilio" else "voice:generic-hook"
        return settings.PUBLIC_BASE_URL + reverse(name, kwargs={"tenant_slug": obj.tenant.slug})


@admin.register(VoicePrompt)
class VoicePromptAdmin(TenantScopedAdmin):
    form = VoicePromptForm
    list_display = ["key", "language", "text", "tenant", "updated_at"]
    list_filter = ["tenant", "key", "language"]
    list_select_related = ["tenant"]
    search_fields = ["text"]
    readonly_fields = ["preview", "available_variables", "built_in_text"]
    fieldsets = [
        (None, {"fields": ["tenant", "key", "language", "text"]}),
        (_("Preview"), {"fields": ["preview", "available_variables", "built_in_text"]}),
    ]
    change_list_template = "admin/voice/voiceprompt/change_list.html"

    @admin.display(description=_("preview"))
    def preview(self, obj: VoicePrompt | None) -> SafeString:
        if obj is None or not obj.pk:
            return format_html("<p>{}</p>", _("Save to see the preview."))
        problems = prompt_errors(obj.key, obj.text)
        if problems:
            return format_html('<ul class="errorlist"><li>{}</li></ul>', " ".join(problems))
        samples = {
            **(SAMPLE_VALUES_EN if obj.language == EN else SAMPLE_VALUES),
            "tenant_name": obj.tenant.name,
        }
        text = PromptBook(obj.tenant).text(obj.key, obj.language, samples)
        return format_html("<p>{}</p><p class='help'>{}</p>", text, _("Rendered with sample values."))

    @admin.display(description=_("available variables"))
    def available_variables(self, obj: VoicePrompt | None) -> str:
        if obj is None or not obj.key:
            return "—"
        return ", ".join("{" + name + "}" for name in sorted(VARIABLES.get(obj.key, ()))) or "—"

    @admin.display(description=_("built-in text"))
    def built_in_text(self, obj: VoicePrompt | None) -> str:
        if obj is None or not obj.key or obj.language not in LANGUAGES:
            return "—"
        return DEFAULTS.get((obj.key, obj.language), "—")

    def get_urls(self) -> list[Any]:
        script = path("script/", self.admin_site.admin_view(self.script_view), name=SCRIPT_URL_NAME)
        return [script, *super().get_urls()]

    def script_view(self, request: HttpRequest) -> HttpResponse:
        """The whole call in both languages with the tenant's current texts: what a caller hears."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        tenants = Tenant.objects.filter(is_active=True)
        if not (request.user.is_active and request.user.is_superuser):
            tenants = tenants.filter(pk__in=request_tenant_ids(request))
        wanted = request.GET.get("tenant", "")
        tenant = (tenants.filter(pk=int(wanted)).first() if wanted.isdigit() else None) or tenants.first()
        scripts = (
            [(language, services.voice_script(tenant=tenant, language=language)) for language in LANGUAGES]
            if tenant is not None
            else []
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Preview the voice menu"),
            "tenant": tenant,
            "tenants": tenants,
            "scripts": scripts,
        }
        return TemplateResponse(request, "admin/voice/voiceprompt/script.html", context)


@admin.register(VoiceCall)
class VoiceCallAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Records, not configuration: nobody edits them; kept for compliance. The raw number
    is never shown."""

    list_display = ["started_at", "caller_masked", "keys", "outcome", "step", "request", "provider", "tenant"]
    list_filter = ["outcome", "provider", "tenant"]
    list_select_related = ["tenant", "request"]
    search_fields = ["call_id", "request__reference"]
    date_hierarchy = "started_at"
    readonly_fields = (
        "tenant",
        "provider",
        "call_id",
        "caller_masked",
        "called",
        "language",
        "step",
        "service_code",
        "keys",
        "attempts",
        "outcome",
        "request",
        "started_at",
        "updated_at",
        "ended_at",
    )
    fields = readonly_fields

    @admin.display(description=_("keys pressed"))
    def keys(self, obj: VoiceCall) -> str:
        return " ".join(entry.get("digits") or "∅" for entry in obj.digits) or "—"

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any], search_term: str) -> Any:
        """A number is searched by its hash, never matched in clear."""
        term = search_term.strip()
        if term and sum(ch.isdigit() for ch in term) >= 5:
            try:
                e164 = phones.normalise(term)
            except phones.InvalidPhoneNumber:
                pass
            else:
                return queryset.filter(number_digest_filter(request, "caller_hash", e164)), False
        return super().get_search_results(request, queryset, search_term)
