"""Writing the audit record: appends to each tenant's hash chain, and signed checkpoints.

`audit_append` / `audit_append_many` write entries in the caller's transaction, so an entry
exists exactly when what it records does. Appends of one tenant are serialised by a short lock
on its `AuditHead` row (select_for_update), taken as late as the caller allows: a service
function on a hot path wraps its work in `audit_batch()`, and the entries its rows produce
(history rows through `records.py`, suppression events) are appended together when the batch
ends, just before the transaction commits; outside a batch each entry is appended at once.

An entry whose rows a rolled-back savepoint undid is dropped with them: a batch keeps its
entries as markers in Django's on-commit list, which a savepoint rollback prunes (the marker
itself does nothing after the commit).

`LANZUAN_AUDIT=0` switches the record off for the benchmark's baseline only
(bench/bench_audit.py); settings refuse it unless DEBUG is on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from lanzuan import signing_keys
from tenants.models import Tenant
from unsubscribe.models import AuditCheckpoint, AuditEntry, AuditHead

from .canonical import (
    GENESIS_HASH,
    canonical,
    entry_content,
    entry_hash,
    payload_check,
    row_digest,
    sha256,
)

logger = logging.getLogger(__name__)

SYSTEM = "system"


@dataclass
class Entry:
    """One entry to append (its position and hashes are given at the append)."""

    tenant_id: int
    kind: str
    object_model: str = ""
    object_id: str = ""
    reference: str = ""
    actor: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    record_digest: str = ""


def audit_enabled() -> bool:
    return bool(getattr(settings, "LANZUAN_AUDIT", True))


# Who acts, when the row itself does not say (history rows name their user): an API key, a gateway.
_actor: ContextVar[str] = ContextVar("lanzuan_audit_actor", default="")
_batch_depth: ContextVar[int] = ContextVar("lanzuan_audit_batch", default=0)
# Set while a function records what it does itself (the retention purge lists what it removed).
_suspended: ContextVar[bool] = ContextVar("lanzuan_audit_suspended", default=False)


@contextmanager
def audit_actor(actor: str) -> Iterator[None]:
    token = _actor.set(actor[:120])
    try:
        yield
    finally:
        _actor.reset(token)


def audit_actor_set(actor: str) -> None:
    """Name the actor for the rest of the enclosing `audit_actor(...)` block (an API call, once
    its key is known)."""
    _actor.set(actor[:120])


def current_actor(default: str = SYSTEM) -> str:
    return _actor.get() or default


@contextmanager
def audit_suspended() -> Iterator[None]:
    """Rows written here get no entry of their own: the caller records them (a purge)."""
    token = _suspended.set(True)
    try:
        yield
    finally:
        _suspended.reset(token)


def audit_is_suspended() -> bool:
    return _suspended.get()


class _Pending:
    """An entry waiting for its batch to end, kept in the connection's on-commit list so that a
    savepoint rollback drops it with the rows it records. Called after the commit: nothing to do."""

    __slots__ = ("done", "entry")

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.done = False

    def __call__(self) -> None:
        return None


@contextmanager
def audit_batch() -> Iterator[None]:
    """Collect the entries of the enclosed work and append them in one go at its end (one lock
    of the tenant's head, one insert). Use right inside the atomic block of the work, so that an
    error rolls back both: `with transaction.atomic(), audit_batch(): ...`. Nested batches append
    at the outermost end."""
    depth = _batch_depth.get()
    token = _batch_depth.set(depth + 1)
    try:
        yield
    except BaseException:
        _batch_depth.reset(token)
        if depth == 0:
            _flush(failed=True)
        raise
    _batch_depth.reset(token)
    if depth == 0:
        _flush(failed=False)


def _flush(*, failed: bool) -> None:
    connection = transaction.get_connection()
    pending = [
        func
        for _sids, func, _robust in connection.run_on_commit
        if isinstance(func, _Pending) and not func.done
    ]
    for marker in pending:
        marker.done = True
    if failed:
        # The work raised: the atomic block right around the batch rolls it back, rows and entries
        # together. (No statement here: the transaction may be aborted, and the caller's own
        # error, an IntegrityError it handles, must reach it as it is.)
        return
    audit_append_many(entries=[marker.entry for marker in pending])


def audit_record(entry: Entry) -> None:
    """Append `entry` now, or at the end of the enclosing batch."""
    if not audit_enabled():
        return
    connection = transaction.get_connection()
    if _batch_depth.get() and connection.in_atomic_block:
        transaction.on_commit(_Pending(entry))
    else:
        audit_append_many(entries=[entry])


def audit_append(
    *,
    tenant_id: int,
    kind: str,
    object_model: str = "",
    object_id: str = "",
    reference: str = "",
    actor: str = "",
    payload: dict[str, Any] | None = None,
    record_digest: str = "",
) -> AuditEntry | None:
    """Append one entry to the tenant's chain, in the caller's transaction."""
    rows = audit_append_many(
        entries=[
            Entry(tenant_id, kind, object_model, object_id, reference, actor, payload or {}, record_digest)
        ]
    )
    return rows[0] if rows else None


def audit_append_many(*, entries: Sequence[Entry], at: datetime | None = None) -> list[AuditEntry]:
    """Append entries (of one tenant or several) in order: one lock per tenant's head, one
    insert, one update of the heads. Returns the rows written (none with the audit off)."""
    if not entries or not audit_enabled():
        return []
    now = at or timezone.now()
    with transaction.atomic(savepoint=False):
        heads = _lock_heads(sorted({entry.tenant_id for entry in entries}), now=now)
        rows: list[AuditEntry] = []
        for entry in entries:
            head = heads[entry.tenant_id]
            rows.append(_link(head, entry, now))
        AuditEntry.objects.bulk_create(rows)
        if len(heads) == 1:  # the usual case: a plain UPDATE costs far less to build than bulk_update's CASE
            (head,) = heads.values()
            AuditHead.objects.for_tenant(head.tenant_id).filter(pk=head.pk).update(
                seq=head.seq, hash=head.hash
            )
        else:
            AuditHead.objects.for_tenants(list(heads)).bulk_update(list(heads.values()), ["seq", "hash"])
    return rows


def _link(head: AuditHead, entry: Entry, now: datetime) -> AuditEntry:
    seq = head.seq + 1
    payload = payload_check(entry.payload)
    actor = (entry.actor or current_actor())[:120]
    content = entry_content(
        tenant_id=entry.tenant_id,
        seq=seq,
        kind=entry.kind,
        object_model=entry.object_model,
        object_id=entry.object_id,
        reference=entry.reference,
        actor=actor,
        payload=payload,
        record_digest=entry.record_digest,
        created_at=now,
    )
    row = AuditEntry(
        tenant_id=entry.tenant_id,
        seq=seq,
        kind=entry.kind,
        object_model=entry.object_model,
        object_id=entry.object_id,
        reference=entry.reference,
        actor=actor,
        payload=payload,
        record_digest=entry.record_digest,
        prev_hash=head.hash,
        hash=entry_hash(content, head.hash),
        created_at=now,
    )
    head.seq, head.hash = seq, row.hash
    return row


def _lock_heads(tenant_ids: list[int], *, now: datetime) -> dict[int, AuditHead]:
    """The tenants' heads, locked in tenant order (no deadlock between two multi-tenant appends).
    A tenant without one starts its chain here: the head, then the genesis entry."""
    heads = {
        head.tenant_id: head
        for head in AuditHead.objects.for_tenants(tenant_ids).select_for_update().order_by("tenant_id")
    }
    missing = [tenant_id for tenant_id in tenant_ids if tenant_id not in heads]
    if missing:
        # Two first appends may race: the unique tenant decides, the loser waits on the lock.
        AuditHead.objects.bulk_create(
            [AuditHead(tenant_id=tenant_id, seq=0, hash=GENESIS_HASH) for tenant_id in missing],
            ignore_conflicts=True,
        )
        for head in AuditHead.objects.for_tenants(missing).select_for_update().order_by("tenant_id"):
            heads[head.tenant_id] = head
            if head.seq == 0:
                genesis = _link(head, _genesis_entry(head.tenant_id), now)
                genesis.save(force_insert=True)
    return heads


def _genesis_entry(tenant_id: int) -> Entry:
    """The chain's first entry. It names, per cross-checked table, the last row id the tenant
    had when the chain began: older rows predate the record and are not cross-checked."""
    from .records import tracked  # noqa: PLC0415 — records reads the app registry, ready by now

    # One statement for every table (a new tenant's first append: each test's tenants pay it).
    tables = tracked()
    selects: list[str] = []
    params: list[Any] = []
    for table in tables:
        newest = table.rows(tenant_id).order_by("-pk").values_list("pk", flat=True)[:1]
        sql, table_params = newest.query.sql_with_params()
        selects.append(f"({sql})")
        params.extend(table_params)
    with transaction.get_connection().cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(selects), params)
        tops = cursor.fetchone()
    watermarks = {table.label: int(top or 0) for table, top in zip(tables, tops, strict=True)}
    return Entry(
        tenant_id=tenant_id,
        kind="audit.genesis",
        actor=SYSTEM,
        payload={"watermarks": watermarks},
    )


# --- access to personal data -------------------------------------------------------------------


def audit_access(
    *,
    tenant_ids: Sequence[int],
    kind: str,
    actor: str,
    reference: str = "",
    payload: dict[str, Any] | None = None,
    per_tenant: dict[int, dict[str, Any]] | None = None,
) -> None:
    """A staff member looked at or downloaded personal data: one entry in each tenant's chain
    whose data it was (`per_tenant` adds what differs by tenant, such as that tenant's digest)."""
    entries = [
        Entry(
            tenant_id=tenant_id,
            kind=kind,
            reference=reference,
            actor=actor,
            payload={**(payload or {}), **((per_tenant or {}).get(tenant_id, {}))},
        )
        for tenant_id in sorted(set(tenant_ids))
    ]
    audit_append_many(entries=entries)


def user_actor(user: Any) -> str:
    return f"user:{user.pk}" if getattr(user, "pk", None) else SYSTEM


# --- rows recorded by their own function --------------------------------------------------------


def rows_digests(rows: Sequence[models.Model]) -> list[list[Any]]:
    """[[model label, pk, digest], ...]: the rows as they are now."""
    return [[row._meta.label_lower, str(row.pk), row_digest(row)] for row in rows]


def audit_rows_changed(
    *, tenant_id: int, kind: str, rows: Sequence[models.Model], reference: str = "", note: str = ""
) -> None:
    """Rows changed on purpose without a history row of their own (a redaction): their new
    digests, so verification expects them as they are now."""
    if not rows:
        return
    audit_record(
        Entry(
            tenant_id=tenant_id,
            kind=kind,
            reference=reference,
            actor=SYSTEM,
            payload={"rows": rows_digests(rows), **({"note": note} if note else {})},
        )
    )


def audit_rows_removed(
    *,
    tenant_id: int,
    kind: str,
    removed: dict[str, dict[str, str]],
    changed: Sequence[models.Model] = (),
    references: Sequence[str] = (),
) -> AuditEntry | None:
    """Rows deleted on purpose (the retention purge): their ids and digests, by model, so
    verification knows they were removed and what they were; `changed` rows (a foreign key
    set to null by the deletion) with their new digests."""
    payload: dict[str, Any] = {
        "removed": {
            label: [[pk, digest] for pk, digest in sorted(rows.items())] for label, rows in removed.items()
        },
        "removed_digest": _removed_digest(removed),
        "rows": rows_digests(changed),
        "references": sorted(references),
    }
    return audit_append(tenant_id=tenant_id, kind=kind, actor=SYSTEM, payload=payload)


def _removed_digest(removed: dict[str, dict[str, str]]) -> str:
    return sha256(canonical({label: sorted(rows.items()) for label, rows in removed.items()}))


# --- signed checkpoints -------------------------------------------------------------------------


def checkpoint_message(*, tenant_slug: str, seq: int, hash_: str, created_at: datetime) -> bytes:
    """What a checkpoint's signature covers (the README shows how to check it offline)."""
    return canonical({"tenant": tenant_slug, "seq": seq, "hash": hash_, "created_at": created_at})


def audit_checkpoint(
    *, tenant: Tenant, reason: str = "periodic", force: bool = False
) -> AuditCheckpoint | None:
    """Sign the tenant's chain head. None when the chain has not moved since the last checkpoint
    (unless `force`), or has not started."""
    head = AuditHead.objects.for_tenant(tenant).filter(tenant=tenant).first()
    if head is None or head.seq == 0:
        return None
    last = AuditCheckpoint.objects.for_tenant(tenant).order_by("-created_at", "-pk").first()
    if last is not None and last.seq == head.seq and not force:
        return None
    now = timezone.now()
    signature = signing_keys.sign(
        checkpoint_message(tenant_slug=tenant.slug, seq=head.seq, hash_=head.hash, created_at=now)
    )
    return AuditCheckpoint.objects.create(
        tenant=tenant,
        tenant_slug=tenant.slug,
        seq=head.seq,
        hash=head.hash,
        created_at=now,
        key_id=signature.key_id,
        signature=signature.value_b64,
        reason=reason,
    )


def audit_chains_start() -> int:
    """Start the chain of every tenant that has none (a tenant from before the record): its
    genesis entry fixes which rows predate the record. Returns how many were started."""
    missing = list(
        Tenant.objects.exclude(
            pk__in=AuditHead.objects.unscoped(reason="which tenants have an audit chain").values("tenant_id")
        ).values_list("pk", flat=True)
    )
    if missing and audit_enabled():
        with transaction.atomic():
            heads = _lock_heads(sorted(missing), now=timezone.now())
            AuditHead.objects.for_tenants(list(heads)).bulk_update(list(heads.values()), ["seq", "hash"])
    return len(missing)


def audit_checkpoints_sign() -> int:
    """Beat: start any missing chain, then sign every tenant's head that moved since its last
    checkpoint."""
    audit_chains_start()
    signed = 0
    for tenant in Tenant.objects.order_by("pk"):
        if audit_checkpoint(tenant=tenant) is not None:
            signed += 1
    return signed
