"""Domain events (request.created, request.completed, request.needs_attention,
suppression.added, suppression.lifted, request.deadline_breached, suppression.violated,
request.still_receiving, preference.recorded). The core does not know who listens: the partner
webhooks subscribe here.

Handlers run inside the caller's transaction so that what they record (a
delivery row, say) commits or rolls back with the change itself; they must only
write rows and leave network work to `transaction.on_commit`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[[int, str, dict[str, Any]], None]
_handlers: list[Handler] = []

EVENTS = (
    "request.created",
    "request.completed",
    "request.needs_attention",
    "suppression.added",
    "suppression.lifted",  # a person re-subscribed: verified, with its evidence
    "request.deadline_breached",  # a regime's due time passed unmet (unsubscribe/deadlines/), once each
    "suppression.violated",  # a sender reported messages sent after the opt-out (unsubscribe/sendlogs/)
    "request.still_receiving",  # the person reports messages still arriving after the opt-out
    "preference.recorded",  # a person chose fewer messages or another channel instead of opting out
)


def subscribe(handler: Handler) -> None:
    if handler not in _handlers:
        _handlers.append(handler)


def emit(tenant_id: int, event: str, payload: dict[str, Any]) -> None:
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    for handler in list(_handlers):
        handler(tenant_id, event, payload)
