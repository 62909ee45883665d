"""The audit record in the admin, read-only: a tenant's entries and signed checkpoints
(imported by unsubscribe/admin.py). Nobody adds, edits or deletes them here. Codes, digests and
the payload are shown as code: they are the record as it is, in no language."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from tenants.admin import ReadOnlyAdminMixin, TenantScopedAdmin
from unsubscribe.models import AuditCheckpoint, AuditEntry


def _code(value: object) -> SafeString:
    return format_html("<code>{}</code>", value)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["seq", "created_at", "kind_code", "reference", "actor_code", "tenant"]
    list_select_related = ["tenant"]
    list_filter = ["tenant"]
    search_fields = ["reference", "kind", "object_id"]
    readonly_fields = (
        "tenant",
        "seq",
        "created_at",
        "kind_code",
        "reference",
        "actor_code",
        "row",
        "record_digest",
        "details",
        "prev_hash",
        "hash",
    )
    fields = readonly_fields

    @admin.display(description=_("what"), ordering="kind")
    def kind_code(self, obj: AuditEntry) -> SafeString:
        return _code(obj.kind)

    @admin.display(description=_("who"), ordering="actor")
    def actor_code(self, obj: AuditEntry) -> SafeString:
        return _code(obj.actor)

    @admin.display(description=_("row"))
    def row(self, obj: AuditEntry) -> SafeString:
        return _code(f"{obj.object_model} {obj.object_id}".strip())

    @admin.display(description=_("details"))
    def details(self, obj: AuditEntry) -> SafeString:
        return format_html(
            "<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True, ensure_ascii=False)
        )


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["created_at", "seq", "reason_code", "key_code", "tenant"]
    list_select_related = ["tenant"]
    list_filter = ["tenant"]
    readonly_fields = (
        "tenant",
        "signed_tenant",
        "seq",
        "hash",
        "created_at",
        "reason_code",
        "key_code",
        "signed",
    )
    fields = readonly_fields

    @admin.display(description=_("why"), ordering="reason")
    def reason_code(self, obj: AuditCheckpoint) -> SafeString:
        return _code(obj.reason)

    @admin.display(description=_("key id"), ordering="key_id")
    def key_code(self, obj: AuditCheckpoint) -> SafeString:
        return _code(obj.key_id)

    @admin.display(description=_("tenant (as signed)"))
    def signed_tenant(self, obj: AuditCheckpoint) -> SafeString:
        return _code(obj.tenant_slug)

    @admin.display(description=_("signature"))
    def signed(self, obj: AuditCheckpoint) -> SafeString:
        return _code(obj.signature)
