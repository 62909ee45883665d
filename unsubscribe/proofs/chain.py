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

from django.db.models import QuerySet

from lanzuan import signing_keys
from unsubscribe.audit.canonical import entry_hash
from unsubscribe.audit.selectors import content_of, covering_checkpoint
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


def _by_reference(request: UnsubscribeRequest) -> QuerySet[AuditEntry]:
    # The (tenant, reference) index: the status page asks this on every view.
    return AuditEntry.objects.for_tenant(request.tenant_id).filter(reference=request.reference)


def _belongs(entry: AuditEntry, request: UnsubscribeRequest) -> bool:
    # A step's entry names its request by id when the step was saved without the request loaded.
    payload = entry.payload if isinstance(entry.payload, dict) else {}
    return entry.reference == request.reference or payload.get("request_id") == request.pk


def request_chain_position(request: UnsubscribeRequest) -> dict[str, Any] | None:
    """The seq and hash of the request's latest audit entry (one that names its reference: the
    request's own changes, its suppression, staff's views and exports); None when it has none."""
    entry = _by_reference(request).order_by("-seq").only("seq", "hash").first()
    return {"seq": entry.seq, "hash": entry.hash} if entry is not None else None


def entry_proof(entry: AuditEntry) -> dict[str, Any]:
    content = content_of(entry)
    return {
        "seq": entry.seq,
        "kind": entry.kind,
        "at": instant(entry.created_at),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
        "content": content.decode("utf-8"),
        "hash_matches": entry_hash(content, entry.prev_hash) == entry.hash,
    }


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
    to the signed checkpoint covering the last of them, and that checkpoint.

    The request's entries are found by its reference, and then, in the range of positions from its
    first entry on (read by the (tenant, seq) key, never a scan of the tenant's record), by the
    request id its steps' entries carry."""
    named = list(_by_reference(request).order_by("seq"))
    proof: dict[str, Any] = {"recipe": RECIPE, "entries": [], "path": [], "checkpoint": None}
    if not named:
        return proof
    checkpoint = covering_checkpoint(named[-1])
    if checkpoint is not None:
        proof["checkpoint"] = checkpoint_proof(checkpoint)
    end = checkpoint.seq if checkpoint is not None else named[-1].seq
    span = AuditEntry.objects.for_tenant(request.tenant_id).filter(seq__gte=named[0].seq, seq__lte=end)
    count = span.count()
    if count > MAX_PATH + len(named):
        proof["entries"] = [entry_proof(entry) for entry in named]
        proof["path_omitted"] = count - len(named)
        return proof
    for entry in span.order_by("seq"):
        proof["entries" if _belongs(entry, request) else "path"].append(entry_proof(entry))
    if checkpoint is None:
        proof["path"] = []  # nothing to link to: the entries in between prove nothing yet
    return proof
