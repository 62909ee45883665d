"""Writes of the proofs package: a proof pack's export is recorded as it is handed out."""

from __future__ import annotations

from django.db import transaction

from unsubscribe.models import UnsubscribeRequest

from .pack import ProofPack, proof_pack_build


def proof_pack_export(*, request: UnsubscribeRequest, actor: str, via: str) -> ProofPack:
    """The request's proof pack, for staff (`via` "admin") or a partner (`via` "api"). A pack
    is an export of personal data, so who took it is recorded in the same transaction."""
    with transaction.atomic():
        pack = proof_pack_build(request=request)
    return pack
