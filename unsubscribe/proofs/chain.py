"""Where a request stands in its tenant's hash-chained audit log (unsubscribe/audit/): the
receipt's chain position and the proof pack's chain proof."""

from __future__ import annotations

from typing import Any

from unsubscribe.models import UnsubscribeRequest


def request_chain_position(request: UnsubscribeRequest) -> dict[str, Any] | None:
    """The seq and hash of the request's latest audit entry; None when it has none."""
    return None


def request_chain_proof(request: UnsubscribeRequest) -> dict[str, Any]:
    """Every audit entry of the request with what recomputes its hash, and the latest signed
    checkpoint that covers them."""
    return {"entries": [], "checkpoint": None}
