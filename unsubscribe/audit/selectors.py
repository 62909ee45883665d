"""Reading the audit record: a request's entries and the proof that an entry is in the chain
(for receipts and proof packs).

An entry's proof is its canonical content (`content`, the exact bytes hashed, as UTF-8 text),
`prev_hash` and `hash` = SHA-256(content || prev_hash), and the first signed checkpoint at or
after it. To tie the entry to that checkpoint, a verifier recomputes the hashes of the links
between them (`chain_links`): each link's hash from its content and the previous link's hash,
up to the hash the checkpoint signed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from unsubscribe.models import AuditCheckpoint, AuditEntry

from .canonical import entry_content


def request_entries(*, tenant_id: int, reference: str) -> QuerySet[AuditEntry]:
    """Every entry about one request, in chain order."""
    return AuditEntry.objects.for_tenant(tenant_id).filter(reference=reference).order_by("seq")


def content_of(entry: AuditEntry) -> bytes:
    return entry_content(
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


def covering_checkpoint(entry: AuditEntry) -> AuditCheckpoint | None:
    """The first checkpoint that signed a head at or after the entry (None until one is signed)."""
    return (
        AuditCheckpoint.objects.for_tenant(entry.tenant_id)
        .filter(seq__gte=entry.seq)
        .order_by("seq", "created_at")
        .first()
    )


def entry_proof(entry: AuditEntry) -> dict[str, Any]:
    checkpoint = covering_checkpoint(entry)
    return {
        "seq": entry.seq,
        "kind": entry.kind,
        "content": content_of(entry).decode(),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
        "checkpoint": None
        if checkpoint is None
        else {
            "tenant": checkpoint.tenant_slug,
            "seq": checkpoint.seq,
            "hash": checkpoint.hash,
            "created_at": checkpoint.created_at.isoformat(),
            "kid": checkpoint.key_id,
            "alg": "Ed25519",
            "signature": checkpoint.signature,
        },
    }


def chain_links(*, tenant_id: int, after_seq: int, to_seq: int) -> Iterator[dict[str, Any]]:
    """The links after `after_seq` up to `to_seq`, each with its content and hashes."""
    for entry in (
        AuditEntry.objects.for_tenant(tenant_id)
        .filter(seq__gt=after_seq, seq__lte=to_seq)
        .order_by("seq")
        .iterator(chunk_size=2000)
    ):
        yield {
            "seq": entry.seq,
            "content": content_of(entry).decode(),
            "prev_hash": entry.prev_hash,
            "hash": entry.hash,
        }
