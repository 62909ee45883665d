"""Writes of the proofs package: a proof pack's export is recorded as it is handed out."""

from __future__ import annotations

from django.db import transaction

from unsubscribe.audit.selectors import covering_checkpoint
from unsubscribe.audit.services import audit_append, audit_checkpoint
from unsubscribe.models import UnsubscribeRequest

from .pack import ProofPack, proof_pack_build

EXPORT_KIND = "export.proof_pack"


def proof_pack_export(*, request: UnsubscribeRequest, actor: str, via: str) -> ProofPack:
    """The request's proof pack, for staff (`via` "admin") or a partner (`via` "api").

    A pack is an export of personal data: who took it is appended to the tenant's audit record
    first, in the same transaction, so the pack's chain proof holds its own export entry. When no
    signed checkpoint covers the request's entries yet, the chain head is signed now (reason
    "proof_pack"), so the proof ends in a signature."""
    with transaction.atomic():
        entry = audit_append(
            tenant_id=request.tenant_id,
            kind=EXPORT_KIND,
            reference=request.reference,
            actor=actor,
            payload={"via": via, "phone_masked": request.phone_masked},
        )
        if entry is not None and covering_checkpoint(entry) is None:
            audit_checkpoint(tenant=request.tenant, reason="proof_pack")
        pack = proof_pack_build(request=request)
    return pack
