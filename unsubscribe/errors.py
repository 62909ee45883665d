"""Errors the unsubscribe services raise; each message is safe to show a person or a partner."""

from __future__ import annotations

from datetime import datetime


class UnsubscribeError(Exception):
    code = "unsubscribe_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownServices(UnsubscribeError):
    code = "unknown_services"


class IdempotencyConflict(UnsubscribeError):
    """The idempotency key was used before with a different request body."""

    code = "idempotency_conflict"


class ResubscribeRefused(UnsubscribeError):
    code = "resubscribe_refused"


class TransientStepError(Exception):
    """Worth retrying: timeouts, connection errors, 5xx, 429."""


class PermanentStepError(Exception):
    """Retrying will not help: 4xx, misconfiguration."""


class StepWaiting(Exception):  # noqa: N818 — a state, not an error
    """Not a failure: the step waits for work that keeps its own schedule (the
    confirmation's message, with its own attempts and lease). Run it again at `until`;
    a wait does not use one of the step's attempts."""

    def __init__(self, reason: str, *, until: datetime) -> None:
        super().__init__(reason)
        self.until = until


class ChannelDisabled(UnsubscribeError):
    """The tenant switched this channel off; callers must still keep what they received."""

    code = "channel_disabled"
