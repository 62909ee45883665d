"""Checking a tenant's audit record: the chain, the signed checkpoints, and the rows it records.

1. The chain: positions 1, 2, 3… without a gap, each entry's `prev_hash` the hash of the one
   before, each `hash` recomputed from the entry's content; the head row ends where the chain ends.
2. The checkpoints: each signature verifies with the published key its `key_id` names
   (lanzuan/signing_keys.py, rotated keys included), and the entry at its position still has
   the hash it signed. Anyone able to write the database can recompute a whole chain; no one
   without the private key can make it match a checkpoint. Entries after the last checkpoint
   are protected by the chain only until the next checkpoint is signed.
3. The rows (records.py `tracked`): every row an entry recorded still has the digest the latest
   entry about it gave (edited otherwise), exists unless an entry says it was removed (deleted
   otherwise), and every row newer than the chain's start has an entry (inserted otherwise).
   Rows older than the chain (ids up to the genesis entry's watermarks) are not cross-checked.

The first problem named is the one at the earliest entry; a row with no entry at all comes after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from lanzuan import signing_keys
from tenants.models import Tenant
from unsubscribe.models import AuditCheckpoint, AuditEntry, AuditHead

from .canonical import GENESIS_HASH, entry_content, entry_hash, row_digest
from .records import tracked
from .services import checkpoint_message


@dataclass(frozen=True)
class Break:
    seq: int | None  # the entry concerned; None for a row no entry records
    kind: str
    reference: str
    what: str

    def __str__(self) -> str:
        where = f"#{self.seq} {self.kind}" if self.seq is not None else _("no entry")
        ref = f" ({self.reference})" if self.reference else ""
        return f"{where}{ref}: {self.what}"


@dataclass
class Report:
    tenant: Tenant
    entries: int = 0
    checkpoints: int = 0
    rows: int = 0
    breaks: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def first(self) -> Break | None:
        return self.breaks[0] if self.breaks else None


def _at(entry: AuditEntry, what: str) -> Break:
    return Break(entry.seq, entry.kind, entry.reference, what)


def tenant_verify(*, tenant: Tenant) -> Report:
    report = Report(tenant)
    breaks: list[Break] = []
    hashes: dict[int, str] = {}
    # (model label, row id) → (digest expected now, or None when removed; the entry that said so)
    expected: dict[tuple[str, str], tuple[str | None, AuditEntry]] = {}
    watermarks: dict[str, int] = {}
    prev_hash, next_seq, chain_ok = GENESIS_HASH, 1, True
    last: AuditEntry | None = None
    for entry in AuditEntry.objects.for_tenant(tenant).order_by("seq").iterator(chunk_size=2000):
        report.entries += 1
        if chain_ok:
            problem = _chain_problem(entry, next_seq=next_seq, prev_hash=prev_hash)
            if problem:
                breaks.append(_at(entry, problem))
                chain_ok = False
        prev_hash, next_seq, last = entry.hash, entry.seq + 1, entry
        hashes[entry.seq] = entry.hash
        _expect(entry, expected, watermarks)
    head = AuditHead.objects.for_tenant(tenant).filter(tenant=tenant).first()
    if head is not None and last is not None and (head.seq, head.hash) != (last.seq, last.hash):
        breaks.append(
            _at(
                last,
                _(
                    "the chain ends at #%(last)s but its head says #%(head)s: entries were removed from its end"
                )
                % {"last": last.seq, "head": head.seq}
                if head.seq != last.seq
                else _("the last entry's hash differs from the head's: the end of the chain was rewritten"),
            )
        )
    elif head is not None and head.seq and last is None:
        breaks.append(
            Break(head.seq, "", "", _("the head says #%(seq)s but no entry is left") % {"seq": head.seq})
        )
    breaks += _checkpoint_breaks(tenant, hashes, report)
    row_breaks, unrecorded = _row_breaks(tenant, expected, watermarks, report)
    breaks += row_breaks
    report.breaks = sorted(breaks, key=lambda b: b.seq or 0) + unrecorded
    return report


def _chain_problem(entry: AuditEntry, *, next_seq: int, prev_hash: str) -> str:
    if entry.seq != next_seq:
        return _("position #%(seq)s follows #%(before)s: an entry was deleted, inserted or moved") % {
            "seq": entry.seq,
            "before": next_seq - 1,
        }
    if entry.prev_hash != prev_hash:
        return _(
            "its previous hash is not the hash of entry #%(before)s: entries were reordered or replaced"
        ) % {"before": entry.seq - 1}
    content = entry_content(
        tenant_id=entry.tenant_id,
        seq=entry.seq,
        kind=entry.kind,
        object_model=entry.object_model,
        object_id=entry.object_id,
        reference=entry.reference,
        actor=entry.actor,
        payload=entry.payload,
        record_digest=entry.record_digest,
        created_at=entry.created_at,
    )
    if entry_hash(content, entry.prev_hash) != entry.hash:
        return _("its content no longer matches its hash: the entry was edited")
    return ""


def _expect(
    entry: AuditEntry,
    expected: dict[tuple[str, str], tuple[str | None, AuditEntry]],
    watermarks: dict[str, int],
) -> None:
    payload: dict[str, Any] = entry.payload if isinstance(entry.payload, dict) else {}
    if entry.kind == "audit.genesis":
        watermarks.update({label: int(top) for label, top in (payload.get("watermarks") or {}).items()})
    if entry.object_model and entry.record_digest:
        expected[(entry.object_model, entry.object_id)] = (entry.record_digest, entry)
    if entry.kind.startswith("access."):  # what staff looked at: no rows of the record
        return
    for label, pk, digest in payload.get("rows") or []:
        expected[(label, str(pk))] = (digest, entry)
    for label, rows in (payload.get("removed") or {}).items():
        for pk, _digest in rows:
            expected[(label, str(pk))] = (None, entry)


def _checkpoint_breaks(tenant: Tenant, hashes: dict[int, str], report: Report) -> list[Break]:
    breaks = []
    for checkpoint in AuditCheckpoint.objects.for_tenant(tenant).order_by("created_at", "pk"):
        report.checkpoints += 1
        message = checkpoint_message(
            tenant_slug=checkpoint.tenant_slug,
            seq=checkpoint.seq,
            hash_=checkpoint.hash,
            created_at=checkpoint.created_at,
        )
        signed_at = checkpoint.created_at.isoformat()
        if not signing_keys.verify(message, checkpoint.key_id, checkpoint.signature):
            breaks.append(
                Break(
                    checkpoint.seq,
                    "checkpoint",
                    "",
                    _("the checkpoint signed at %(at)s does not verify with published key %(kid)s")
                    % {"at": signed_at, "kid": checkpoint.key_id},
                )
            )
        elif hashes.get(checkpoint.seq) != checkpoint.hash:
            breaks.append(
                Break(
                    checkpoint.seq,
                    "checkpoint",
                    "",
                    _(
                        "the chain up to #%(seq)s differs from what the checkpoint signed at %(at)s: it was rewritten"
                    )
                    % {"seq": checkpoint.seq, "at": signed_at},
                )
            )
    return breaks


def _row_breaks(
    tenant: Tenant,
    expected: dict[tuple[str, str], tuple[str | None, AuditEntry]],
    watermarks: dict[str, int],
    report: Report,
) -> tuple[list[Break], list[Break]]:
    breaks: list[Break] = []
    unrecorded: list[Break] = []
    for table in tracked():
        mark = watermarks.get(table.label, 0)
        seen: set[str] = set()
        for row in table.rows(tenant.pk).order_by("pk").iterator(chunk_size=2000):
            report.rows += 1
            pk = str(row.pk)
            known = expected.get((table.label, pk))
            if known is None:
                if row.pk > mark:
                    unrecorded.append(
                        Break(
                            None,
                            "",
                            "",
                            _("row %(row)s has no entry: it was inserted outside the application")
                            % {"row": f"{table.label} {pk}"},
                        )
                    )
                continue
            seen.add(pk)
            digest, entry = known
            if digest is None:
                breaks.append(
                    _at(entry, _("row %(row)s, removed here, exists again") % {"row": f"{table.label} {pk}"})
                )
            elif row_digest(row) != digest:
                breaks.append(
                    _at(
                        entry,
                        _("row %(row)s no longer matches the digest recorded here: it was edited")
                        % {"row": f"{table.label} {pk}"},
                    )
                )
        for (label, pk), (digest, entry) in expected.items():
            if label == table.label and digest is not None and pk not in seen:
                breaks.append(
                    _at(
                        entry,
                        _("row %(row)s recorded here is missing: it was deleted") % {"row": f"{label} {pk}"},
                    )
                )
    return breaks, unrecorded


def audit_verify_all(*, slug: str | None = None) -> list[Report]:
    tenants = Tenant.objects.order_by("slug")
    if slug is not None:
        tenants = tenants.filter(slug=slug)
    return [tenant_verify(tenant=tenant) for tenant in tenants]


def audit_verify_and_flag(*, now: Any = None) -> list[Report]:
    """The daily beat task: verify every tenant and leave the verdict on its head row, where the
    admin's needs-attention queue reads it (attention.py). A break stays flagged until a
    verification passes again."""
    now = now or timezone.now()
    reports = audit_verify_all()
    for report in reports:
        fields: dict[str, Any] = {"verified_at": now}
        if report.ok:
            fields.update(broken_at=None, problem="")
        else:
            fields.update(problem=str(report.first)[:2000])
        updated = AuditHead.objects.for_tenant(report.tenant).filter(tenant=report.tenant)
        if not report.ok:
            updated.filter(broken_at__isnull=True).update(broken_at=now)
        updated.update(**fields)
    return reports
