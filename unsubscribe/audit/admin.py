"""The audit record in the admin, read-only: a tenant's entries and signed checkpoints
(imported by unsubscribe/admin.py). Nobody adds, edits or deletes them here."""

from __future__ import annotations

from django.contrib import admin

from tenants.admin import ReadOnlyAdminMixin, TenantScopedAdmin
from unsubscribe.models import AuditCheckpoint, AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["seq", "created_at", "kind", "reference", "actor", "tenant"]
    list_select_related = ["tenant"]
    list_filter = ["tenant", "kind"]
    search_fields = ["reference", "kind", "object_id"]
    readonly_fields = (
        "tenant",
        "seq",
        "created_at",
        "kind",
        "reference",
        "actor",
        "object_model",
        "object_id",
        "record_digest",
        "payload",
        "prev_hash",
        "hash",
    )
    fields = readonly_fields


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["created_at", "seq", "reason", "key_id", "tenant"]
    list_select_related = ["tenant"]
    list_filter = ["tenant", "reason"]
    readonly_fields = ("tenant", "tenant_slug", "seq", "hash", "created_at", "reason", "key_id", "signature")
    fields = readonly_fields
