"""Errors of the partner features; like the core's, each message is safe to show.

`status` and `field` tell the problem-details handler how to answer."""

from __future__ import annotations

from unsubscribe.errors import UnknownServices, UnsubscribeError


class PartnerError(UnsubscribeError):
    status = 400
    field: str | None = None
    title: str | None = None  # the problem's title; else the status's


class UnknownService(UnknownServices):
    """An unknown service code given as `service` (rather than in a request's `scope`)."""

    field = "service"


class TooManyNumbers(PartnerError):
    code = "too_many_numbers"
    status = 413

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidUpload(PartnerError):
    code = "invalid_upload"
    field = "file"


class TooManyWebhookEndpoints(PartnerError):
    """The tenant has LANZUAN_MAX_WEBHOOK_ENDPOINTS endpoints already (issue 19, item 8)."""

    code = "too_many_webhook_endpoints"
    status = 409

    def __init__(self, message: str, *, title: str, limit: int) -> None:
        super().__init__(message)
        self.title = title
        self.limit = limit


class UploadTooLarge(PartnerError):
    """One upload is larger than its limit (issue 19, item 11; upload_limits.py)."""

    code = "upload_too_large"
    status = 413
    field = "file"

    def __init__(self, message: str, *, title: str) -> None:
        super().__init__(message)
        self.title = title


class UploadQuotaExceeded(PartnerError):
    """The API key's uploads of the day are used up; `retry_after` seconds to the next day."""

    code = "upload_quota_exceeded"
    status = 413

    def __init__(self, message: str, *, title: str, retry_after: int) -> None:
        super().__init__(message)
        self.title = title
        self.retry_after = retry_after


class LengthRequired(PartnerError):
    """An upload without Content-Length (chunked): Django would read it as empty."""

    code = "length_required"
    status = 411

    def __init__(self, message: str, *, title: str) -> None:
        super().__init__(message)
        self.title = title
