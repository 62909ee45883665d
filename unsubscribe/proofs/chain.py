"""Where a request stands in its tenant's hash-chained audit log (unsubscribe/audit/): the
receipt's chain position and the proof pack's chain proof.

The proof lists each entry of the request with its canonical content, so anyone can recompute
`hash = SHA-256(content || prev_hash)` (content as UTF-8, prev_hash as ASCII, hex digest), then
the entries that link the request's first entry to the signed checkpoint that covers its last one
(their content too: audit entries hold digests, masked numbers and references, no personal data),
and the checkpoint with its signature over `{"created_at", "hash", "seq", "tenant"}` in canonical
JSON, checkable with the published key.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from lanzuan import signing_keys
from unsubscribe.audit.canonical import entry_content, entry_hash
from unsubscribe.audit.services import checkpoint_message
from unsubscribe.models import AuditCheckpoint, AuditEntry, UnsubscribeRequest

from .canonical import instant

# Entries between the request's and the checkpoint that the proof carries in full; a longer path
# is left to `audit_verify` (the proof says so).
MAX_PATH = 2000

RECIPE = (
    "hash = hex(SHA-256(content as UTF-8 bytes, then prev_hash as ASCII)); each entry's prev_hash is the "
    "hash of the entry before it; the checkpoint's signature is Ed25519 over its message (canonical JSON), "
    "by the key `kid` published at /.well-known/lanzuan-keys.json."
)


def _of_request(request: UnsubscribeRequest) -> QuerySet[AuditEntry]:
    # A step's entry names the request by id when the step was saved without it loaded.
    return AuditEntry.objects.for_tenant(request.tenant_id).filter(
        Q(reference=request.reference) | Q(payload__request_id=request.pk)
    )


def request_entries(request: UnsubscribeRequest) -> list[AuditEntry]:
    return list(_of_request(request).order_by("seq"))


def request_chain_position(request: UnsubscribeRequest) -> dict[str, Any] | None:
    """The seq and hash of the request's latest audit entry; None when it has none."""
    entry = _of_request(request).order_by("-seq").only("seq", "hash").first()
    return {"seq": entry.seq, "hash": entry.hash} if entry is not None else None


def _content(entry: AuditEntry) -> bytes:
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


def entry_proof(entry: AuditEntry) -> dict[str, Any]:
    content = _content(entry)
    return {
        "seq": entry.seq,
        "kind": entry.kind,
        "at": instant(entry.created_at),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
        "content": content.decode("utf-8"),
        "hash_matches": entry_hash(content, entry.prev_hash) == entry.hash,
    }


def covering_checkpoint(*, tenant_id: int, seq: int) -> AuditCheckpoint | None:
    """The first signed checkpoint at or after `seq`: the shortest path from the entry to a signature."""
    return (
        AuditCheckpoint.objects.for_tenant(tenant_id)
        .filter(seq__gte=seq)
        .order_by("seq", "created_at")
        .first()
    )


def checkpoint_proof(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    message = checkpoint_message(
        tenant_slug=checkpoint.tenant_slug,
        seq=checkpoint.seq,
        hash_=checkpoint.hash,
        created_at=checkpoint.created_at,
    )
    return {
        "tenant": checkpoint.tenant_slug,
        "seq": checkpoint.seq,
        "hash": checkpoint.hash,
        "created_at": instant(checkpoint.created_at),
        "message": message.decode("utf-8"),
        "kid": checkpoint.key_id,
        "alg": signing_keys.ALGORITHM,
        "signature": checkpoint.signature,
        "signature_valid": signing_keys.verify(message, checkpoint.key_id, checkpoint.signature),
    }


def request_chain_proof(request: UnsubscribeRequest) -> dict[str, Any]:
    """Every audit entry of the request with what recomputes its hash, the entries that link them
    to the signed checkpoint covering the last of them, and that checkpoint."""
    entries = request_entries(request)
    proof: dict[str, Any] = {
        "recipe": RECIPE,
        "entries": [entry_proof(e) for e in entries],
        "path": [],
        "checkpoint": None,
    }
    if not entries:
        return proof
    checkpoint = covering_checkpoint(tenant_id=request.tenant_id, seq=entries[-1].seq)
    if checkpoint is None:
        return proof
    proof["checkpoint"] = checkpoint_proof(checkpoint)
    own = {e.seq for e in entries}
    between = (
        AuditEntry.objects.for_tenant(request.tenant_id)
        .filter(seq__gt=entries[0].seq, seq__lte=checkpoint.seq)
        .exclude(seq__in=own)
        .order_by("seq")
    )
    count = between.count()
    if count > MAX_PATH:
        proof["path_omitted"] = count
        return proof
    proof["path"] = [entry_proof(e) for e in between]
    return proof
