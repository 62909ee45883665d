"""Limits on what the partner API takes as uploads (issue 19, item 11): a scrub job's
list (`POST /api/v1/scrub-jobs`, multipart) and a subscription import
(`POST /api/v1/subscriptions/import`, a JSON body).

Each upload view calls `upload_receive(request, tenant=…, kind=…)` before it touches the
body. In this order, every refusal a problem document:

1. no Content-Length (a chunked body, which Django would read as empty) → 411 `length_required`;
2. one upload too large, refused before a byte of it is read: a scrub list over
   LANZUAN_SCRUB_MAX_UPLOAD_BYTES → 413 `upload_too_large`; an import over the JSON body
   limit (DATA_UPLOAD_MAX_MEMORY_SIZE) → 413 `too_large`, the JSON parser's own answer;
3. the API key's day used up → 413 `upload_quota_exceeded` with Retry-After (seconds until
   midnight in the tenant's time zone): LANZUAN_UPLOADS_PER_KEY_PER_DAY uploads, or
   LANZUAN_UPLOAD_BYTES_PER_KEY_PER_DAY bytes of request bodies (this one's Content-Length
   included). Otherwise the upload is counted now, before it is read;
4. while the body is read, `lanzuan.uploads.SizeLimitedUploadHandler` stops a scrub list
   whose file passes the limit (the Content-Length check allows for the multipart framing)
   → 413 `upload_too_large`; the partial temporary file is deleted and the upload uncounted.

So an upload refused before it is read, or stopped while it is read, is not counted; one
that was read counts whatever the answer (a list naming an unknown service, an import with
invalid items or too many): it was received.

The counters are kept per API key (its id, a random UUID; never the key's hash) and per
day of the tenant's calendar, in the cache (Redis in production, shared by every web
process), like the rate limits (throttling.py) and the one-time-code limits
(optout/limits.py). Two uploads racing for the last place are settled by the cache's
atomic increment: the one that lands past the limit gives its place back.

The admin's CSV import has its own per-upload limit, LANZUAN_IMPORT_MAX_UPLOAD_BYTES
(unsubscribe/admin.py); staff have no key and no daily budget.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework.request import Request

from lanzuan.uploads import (
    ENVELOPE,
    declared_length,
    discard_partial_uploads,
    limit_uploads,
    size_text,
)
from lanzuan.uploads import UploadTooLarge as StreamTooLarge
from tenants.models import Tenant, TenantAPIKey

from . import examples
from .errors import LengthRequired, UploadQuotaExceeded, UploadTooLarge
from .parsers import body_too_large
from .problems import PROBLEM_CONTENT_TYPE, ProblemSerializer

# The counters outlive their day by this much (the cache drops them after).
_KEEP_AFTER_DAY = timedelta(hours=1)


class UploadKind(enum.Enum):
    SCRUB = "scrub"  # a multipart file, up to LANZUAN_SCRUB_MAX_UPLOAD_BYTES
    IMPORT = "import"  # a JSON body, up to DATA_UPLOAD_MAX_MEMORY_SIZE


def scrub_max_upload_bytes() -> int:
    limit: int = settings.LANZUAN_SCRUB_MAX_UPLOAD_BYTES
    return limit


def upload_too_large(max_bytes: int) -> UploadTooLarge:
    return UploadTooLarge(
        _("The file is larger than %(size)s, the most one upload may be; split the list.")
        % {"size": size_text(max_bytes)},
        title=_("Upload too large"),
    )


# --- the day, in the tenant's calendar ------------------------------------------------------


def upload_day(tenant: Tenant, *, now: datetime | None = None) -> tuple[date, int]:
    """Today in the tenant's time zone, and the whole seconds until its next midnight there
    (computed in UTC, so a daylight-saving change is counted right)."""
    zone = tenant.zoneinfo
    local = (now or timezone.now()).astimezone(zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)
    left = (midnight.astimezone(UTC) - local.astimezone(UTC)).total_seconds()
    return local.date(), max(1, math.ceil(left))


def _keys(api_key: TenantAPIKey, day: date) -> tuple[str, str]:
    base = f"uploads:{api_key.pk}:{day.isoformat()}"
    return f"{base}:count", f"{base}:bytes"


def _add(key: str, amount: int, *, ttl: int) -> int:
    """Add to a counter atomically (Redis INCRBY) and return the new value."""
    if cache.add(key, amount, timeout=ttl):
        return amount
    try:
        value = cache.incr(key, amount)
    except ValueError:  # expired between add() and incr()
        cache.add(key, amount, timeout=ttl)
        return amount
    cache.touch(key, ttl)  # the file cache's incr rewrites the entry without its expiry
    return int(value)


def _give_back(key: str, amount: int, *, ttl: int) -> None:
    try:
        cache.decr(key, amount)
        cache.touch(key, ttl)
    except ValueError:
        pass


def uploads_used(*, api_key: TenantAPIKey, tenant: Tenant) -> tuple[int, int]:
    """(uploads, bytes) this key has used today: for the admin, support and tests."""
    day, _left = upload_day(tenant)
    count_key, bytes_key = _keys(api_key, day)
    return int(cache.get(count_key, 0)), int(cache.get(bytes_key, 0))


@dataclass(frozen=True)
class Taken:
    """One upload counted in a key's day; `give_back()` uncounts it (in that same day)."""

    count_key: str
    bytes_key: str
    size: int
    ttl: int

    def give_back(self) -> None:
        _give_back(self.bytes_key, self.size, ttl=self.ttl)
        _give_back(self.count_key, 1, ttl=self.ttl)


def upload_quota_take(*, api_key: TenantAPIKey, tenant: Tenant, size: int) -> Taken:
    """Count one upload of `size` bytes for the key today, or raise UploadQuotaExceeded
    (and count nothing) when it would pass the day's number of uploads or of bytes."""
    day, left = upload_day(tenant)
    ttl = left + int(_KEEP_AFTER_DAY.total_seconds())
    count_key, bytes_key = _keys(api_key, day)
    max_count: int = settings.LANZUAN_UPLOADS_PER_KEY_PER_DAY
    max_bytes: int = settings.LANZUAN_UPLOAD_BYTES_PER_KEY_PER_DAY
    title = _("Daily upload limit reached")
    zone = tenant.time_zone
    if _add(count_key, 1, ttl=ttl) > max_count:
        _give_back(count_key, 1, ttl=ttl)
        raise UploadQuotaExceeded(
            _(
                "This API key has made %(count)s uploads today, the most one key may make a day; "
                "try again after midnight (%(zone)s)."
            )
            % {"count": f"{max_count:,}", "zone": zone},
            title=title,
            retry_after=left,
        )
    if _add(bytes_key, size, ttl=ttl) > max_bytes:
        _give_back(bytes_key, size, ttl=ttl)
        _give_back(count_key, 1, ttl=ttl)
        raise UploadQuotaExceeded(
            _(
                "This upload would take this API key past %(size)s of uploads today, the most one key "
                "may send a day; try again after midnight (%(zone)s)."
            )
            % {"size": size_text(max_bytes), "zone": zone},
            title=title,
            retry_after=left,
        )
    return Taken(count_key=count_key, bytes_key=bytes_key, size=size, ttl=ttl)


# --- the guard of an upload view ------------------------------------------------------------


def upload_receive(request: Request, *, tenant: Tenant, kind: UploadKind) -> Any:
    """Check, count and read an upload (see the module's docstring); returns `request.data`.
    Call it before anything else reads the body."""
    length = declared_length(request._request)
    if length is None:
        raise LengthRequired(
            _("Send the upload with a Content-Length header; a chunked body cannot be read."),
            title=_("Length required"),
        )
    if kind is UploadKind.SCRUB:
        max_bytes = scrub_max_upload_bytes()
        if length > max_bytes + ENVELOPE:
            raise upload_too_large(max_bytes)
    else:
        json_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if json_limit is not None and length > int(json_limit):
            raise body_too_large(int(json_limit))
    api_key = request.auth
    assert isinstance(api_key, TenantAPIKey)  # upload views are for API keys only
    taken = upload_quota_take(api_key=api_key, tenant=tenant, size=length)
    if kind is UploadKind.SCRUB:
        limit_uploads(request._request, max_bytes)
    try:
        return request.data
    except StreamTooLarge as exc:
        discard_partial_uploads(request._request)
        taken.give_back()  # stopped, not received: uncounted
        raise upload_too_large(exc.limit) from None


# --- OpenAPI ---------------------------------------------------------------------------------

LIMITS_NOTE = """

**Limits.** Each API key may upload {count} times a day and {size} in all (request bodies; days in your
tenant's time zone, `time_zone` in `GET /api/v1/me`); over that, 413 `upload_quota_exceeded` with
`Retry-After` (seconds until midnight there). The body needs a `Content-Length` header (a chunked body: 411
`length_required`). An upload refused unread (or stopped while read) is not counted; one that was read is,
whatever the answer.
"""

SCRUB_LIMITS_NOTE = (
    LIMITS_NOTE
    + """One list may be up to {scrub} (10,000,000 numbers, one a line, fit); a larger one is refused with 413
`upload_too_large` before it is read.
"""
)

IMPORT_LIMITS_NOTE = (
    LIMITS_NOTE
    + """One call's body may be up to {json} (413 `too_large`).
"""
)


def limits_note(template: str) -> str:
    """A note for an operation's description, with the limits as this deployment sets them."""
    json_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return template.format(
        count=f"{settings.LANZUAN_UPLOADS_PER_KEY_PER_DAY:,}",
        size=size_text(settings.LANZUAN_UPLOAD_BYTES_PER_KEY_PER_DAY),
        scrub=size_text(scrub_max_upload_bytes()),
        json=size_text(int(json_limit)) if json_limit is not None else "any size",
    )


UPLOAD_RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    int,
    OpenApiParameter.HEADER,
    response=[413],
    description="With `upload_quota_exceeded`: seconds until this API key's upload day starts again "
    "(midnight in the tenant's time zone).",
)


def _example(status: int, code: str, title: str, detail: str, field: str | None = None) -> OpenApiExample:
    errors = [{"field": field, "message": detail}] if field else []
    return examples.problem_document_example(status, code, title, detail, errors)


_QUOTA_EXAMPLE = _example(
    413,
    "upload_quota_exceeded",
    "Daily upload limit reached",
    "This API key has made 200 uploads today, the most one key may make a day; try again after midnight "
    "(Asia/Shanghai).",
)
_LENGTH_EXAMPLE = _example(
    411,
    "length_required",
    "Length required",
    "Send the upload with a Content-Length header; a chunked body cannot be read.",
)


def upload_problems(kind: UploadKind) -> dict[Any, OpenApiResponse]:
    """The 411 and 413 answers of an upload operation, with an example of each code."""
    if kind is UploadKind.SCRUB:
        too_large = [
            _example(
                413,
                "upload_too_large",
                "Upload too large",
                "The file is larger than 200 MB, the most one upload may be; split the list.",
                field="file",
            ),
            _example(
                413,
                "too_many_numbers",
                "Too large",
                "At most 10,000,000 numbers per list; this file has 10,000,002 lines.",
                field="file",
            ),
        ]
        description = (
            "`upload_too_large`: the file is over the size limit; `too_many_numbers`: over 10,000,000 "
            "lines; `upload_quota_exceeded`: this API key's uploads of the day are used up (see Retry-After)."
        )
    else:
        too_large = [
            _example(413, "too_large", "Too large", "The body is larger than 5 MB."),
            _example(
                413,
                "too_many_numbers",
                "Too large",
                "At most 10,000 subscriptions per call; this one has 12,000.",
                field="body",
            ),
        ]
        description = (
            "`too_large`: the body is over the JSON size limit; `too_many_numbers`: over 10,000 items; "
            "`upload_quota_exceeded`: this API key's uploads of the day are used up (see Retry-After)."
        )
    return {
        (411, PROBLEM_CONTENT_TYPE): OpenApiResponse(
            ProblemSerializer,
            description="No Content-Length header (a chunked body).",
            examples=[_LENGTH_EXAMPLE],
        ),
        (413, PROBLEM_CONTENT_TYPE): OpenApiResponse(
            ProblemSerializer, description=description, examples=[*too_large, _QUOTA_EXAMPLE]
        ),
    }
