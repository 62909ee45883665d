"""Which rows the audit record cross-checks, and the entries their writes produce.

Cross-checked ("tracked") tables, per tenant: every django-simple-history table of a model that
belongs to a tenant (the request's and each step's history: its state changes and step results;
the configuration models' history: who changed what), the append-only `SuppressionEvent` rows
and the live `Step` rows. Each row written there gets an entry carrying the row's digest:

- a history row, through simple-history's `post_create_historical_record` signal
  (`history_row_recorded`, connected in unsubscribe/apps.py). A bulk history write
  (`bulk_create_with_history`) sends no signal: its caller appends `history_rows_record(rows)`;
- a suppression event, by `suppressions/services.py` (`suppression_events_record`);
- a step row, with the history row its save writes (the entry lists both).

`audit_verify` (verify.py) re-reads these tables and compares them with what the entries say.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import models

from tenants.models import Tenant
from tenants.scoping import TenantOwnedModel
from unsubscribe.models import Step, SuppressionEvent, UnsubscribeRequest

from .canonical import canonical, row_content, row_digest, sha256
from .services import Entry, audit_enabled, audit_is_suspended, audit_record, current_actor


@dataclass(frozen=True)
class Tracked:
    model: type[models.Model]
    label: str
    tenant_column: str  # "tenant_id", or "id" for the tenant's own history

    def rows(self, tenant_id: int) -> models.QuerySet[Any]:
        """The tenant's rows of this table (history models have a plain manager: filtered here)."""
        if issubclass(self.model, TenantOwnedModel):
            return self.model.objects.for_tenant(tenant_id)
        rows: models.QuerySet[Any] = self.model.objects.filter(  # type: ignore[attr-defined]
            **{self.tenant_column: tenant_id}
        )
        return rows


@functools.cache
def tracked() -> tuple[Tracked, ...]:
    tables = [Tracked(SuppressionEvent, SuppressionEvent._meta.label_lower, "tenant_id")]
    tables.append(Tracked(Step, Step._meta.label_lower, "tenant_id"))
    for model in apps.get_models():
        base = getattr(model, "instance_type", None)  # simple-history's historical models name their model
        if base is None or not hasattr(model, "history_id"):
            continue
        if base is Tenant:
            tables.append(Tracked(model, model._meta.label_lower, "id"))
        elif any(f.name == "tenant" for f in base._meta.concrete_fields):
            tables.append(Tracked(model, model._meta.label_lower, "tenant_id"))
    return tuple(sorted(tables, key=lambda t: t.label))


@functools.cache
def _by_model() -> dict[type[models.Model], Tracked]:
    return {table.model: table for table in tracked()}


def tracked_by_label() -> dict[str, Tracked]:
    return {table.label: table for table in tracked()}


def _config_digest(history_row: models.Model) -> str:
    """A configuration version's digest without the history bookkeeping: comparable across versions."""
    content = {k: v for k, v in row_content(history_row).items() if not k.startswith("history_")}
    return sha256(canonical(content))


# Tenants being deleted (with every row of theirs, their audit record included): nothing to record.
_tenants_deleting: set[int] = set()


def tenant_pre_delete(sender: Any, instance: Tenant, **kwargs: Any) -> None:
    _tenants_deleting.add(instance.pk)


def tenant_post_delete(sender: Any, instance: Tenant, **kwargs: Any) -> None:
    _tenants_deleting.discard(instance.pk)


def history_row_recorded(sender: Any, instance: models.Model, history_instance: Any, **kwargs: Any) -> None:
    """simple-history wrote `history_instance`: its entry, now or at the end of the batch."""
    if not audit_enabled() or audit_is_suspended():
        return
    table = _by_model().get(sender)
    if table is None:
        return
    entry = history_entry(table, instance, history_instance)
    if entry is not None and entry.tenant_id not in _tenants_deleting:
        audit_record(entry)


def history_rows_record(rows: Sequence[Any]) -> None:
    """Entries for history rows written in bulk (`bulk_create_with_history`), which send no signal."""
    for row in rows:
        table = _by_model().get(type(row))
        if table is not None:
            entry = history_entry(table, row.instance, row)
            if entry is not None:
                audit_record(entry)


def history_entry(table: Tracked, instance: models.Model, history_row: Any) -> Entry | None:
    tenant_id = instance.pk if table.tenant_column == "id" else getattr(instance, "tenant_id", None)
    if not tenant_id:
        return None
    history_type = history_row.history_type
    suffix = {"+": "created", "~": "changed", "-": "deleted"}[history_type]
    user_id = getattr(history_row, "history_user_id", None)
    actor = f"user:{user_id}" if user_id else current_actor()
    common: dict[str, Any] = {
        "tenant_id": tenant_id,
        "object_model": table.label,
        "object_id": str(history_row.pk),
        "record_digest": row_digest(history_row),
        "actor": actor,
    }
    if isinstance(instance, UnsubscribeRequest):
        payload: dict[str, Any] = {
            "request_id": instance.pk,
            "history_type": history_type,
            "state": instance.state,
        }
        stash = getattr(instance, "_audit_suppression_events", None)
        if history_type == "-" and stash:
            # The deletion set these events' request to null: they are expected as they are now.
            events = SuppressionEvent.objects.for_tenant(tenant_id).filter(pk__in=stash)
            payload["rows"] = [[e._meta.label_lower, str(e.pk), row_digest(e)] for e in events]
        kind = "request.filed" if history_type == "+" else f"request.{suffix}"
        return Entry(kind=kind, reference=instance.reference, payload=payload, **common)
    if isinstance(instance, Step):
        request = instance._state.fields_cache.get("request")  # never a query for the reference
        step_row = [Step._meta.label_lower, str(instance.pk), row_digest(instance)]
        payload = {
            "step_id": instance.pk,
            "request_id": instance.request_id,
            "history_type": history_type,
            "step": instance.kind,
            "at": instance.source or (f"target:{instance.target_id}" if instance.target_id else ""),
            "status": instance.status,
            "attempts": instance.attempts,
            "receipt_sha256": sha256(instance.receipt.encode()) if instance.receipt else "",
            "receipt_lines": instance.receipt_lines,
        }
        if history_type == "-":
            payload["removed"] = {step_row[0]: [[step_row[1], step_row[2]]]}
        else:
            payload["rows"] = [step_row]
        kind = "step.planned" if history_type == "+" else f"step.{suffix}"
        return Entry(
            kind=kind,
            reference=getattr(request, "reference", "") if request is not None else "",
            payload=payload,
            **common,
        )
    previous = history_row.prev_record if history_type != "+" else None
    changed: list[str] = []
    if previous is not None:
        now, before = row_content(history_row), row_content(previous)
        changed = sorted(
            k for k in now if not k.startswith("history_") and canonical(now[k]) != canonical(before.get(k))
        )
    return Entry(
        kind=f"config.{suffix}",
        payload={
            "model": instance._meta.label_lower,
            "object_id": str(instance.pk),
            "history_type": history_type,
            "before_digest": _config_digest(previous) if previous is not None else "",
            "after_digest": _config_digest(history_row),
            "changed": changed,
        },
        **common,
    )


def request_pre_delete(sender: Any, instance: UnsubscribeRequest, **kwargs: Any) -> None:
    """Before an ORM deletion of a request (the purge records its own): the suppression events
    whose request the deletion will set to null, for the request's "deleted" entry."""
    if not audit_enabled() or audit_is_suspended() or instance.tenant_id in _tenants_deleting:
        return
    instance._audit_suppression_events = list(  # type: ignore[attr-defined]
        SuppressionEvent.objects.for_tenant(instance.tenant_id)
        .filter(request_id=instance.pk)
        .values_list("pk", flat=True)
    )


def suppression_events_record(events: Sequence[SuppressionEvent], *, reference: str = "") -> None:
    """One entry per suppression event just written (in bulk), each with the event's digest."""
    for event in events:
        audit_record(
            Entry(
                tenant_id=event.tenant_id,
                kind=f"suppression.{event.action}",
                object_model=SuppressionEvent._meta.label_lower,
                object_id=str(event.pk),
                reference=reference,
                actor=f"channel:{event.channel}" if event.channel else current_actor(),
                payload={
                    "scope": event.scope,
                    "phone_hash": event.phone_hash,
                    "phone_masked": event.phone_masked,
                    "channel": event.channel,
                },
                record_digest=row_digest(event),
            )
        )
