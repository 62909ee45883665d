"""Upload size limits that hold while a request's body is read, not after it was stored.

Django reads a multipart body only when a view (or the CSRF check) first touches
`request.POST`/`request.FILES`/DRF's `request.data`, and streams each file through
`request.upload_handlers`: the first few MB in memory, the rest into a temporary file.
Nothing limits a file's size on the way. Two guards, used together by an upload view
before it touches the body:

- `declared_length(request)`: the body's Content-Length. Under WSGI it is also the most
  Django will read (`LimitedStream`); a body without one (chunked) is read as empty, so
  upload views refuse it rather than answer as if no file had been sent. A view refuses
  a declared length over its limit (plus `ENVELOPE`, the multipart framing and small
  form fields) before a byte of the body is read.
- `limit_uploads(request, limit)`: puts `SizeLimitedUploadHandler` first among the
  upload handlers. It counts the bytes of every file of the request as they arrive and
  raises `UploadTooLarge` once they pass `limit`, before a later handler stores the
  chunk. `discard_partial_uploads(request)` then closes (and so deletes) the temporary
  file a later handler had begun.

These helpers know nothing of tenants or keys; the partner API's per-key daily budget is
in `unsubscribe/partner/upload_limits.py`.
"""

from __future__ import annotations

from typing import IO

from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, QueryDict
from django.utils.datastructures import MultiValueDict

# Room in a multipart body for what is not the file: boundaries, part headers, a few small fields.
ENVELOPE = 64 * 1024


class UploadTooLarge(Exception):
    """The files of one request passed `limit` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"upload larger than {limit} bytes")
        self.limit = limit


def declared_length(request: HttpRequest) -> int | None:
    """The body's Content-Length, or None when the request has none (chunked) or a bad one."""
    raw = str(request.META.get("CONTENT_LENGTH") or "").strip()
    if not raw.isdigit():
        return None
    return int(raw)


def size_text(size: int) -> str:
    """2097152 → "2 MB", 1536 → "1.5 KB": a limit as people read it (binary units)."""
    for unit, factor in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if size >= factor:
            return f"{size / factor:,.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} B"


class SizeLimitedUploadHandler(FileUploadHandler):
    """Counts the bytes of every file of the request and raises UploadTooLarge past `limit`.
    First in the list, so the chunk that passes the limit reaches no handler that stores it."""

    def __init__(self, request: HttpRequest, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0

    def handle_raw_input(
        self,
        input_data: IO[bytes],
        META: dict[str, str],
        content_length: int,
        boundary: str,
        encoding: str | None = None,
    ) -> None:
        if content_length > self.limit + ENVELOPE:
            raise UploadTooLarge(self.limit)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            raise UploadTooLarge(self.limit)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler makes the file


def limit_uploads(request: HttpRequest, limit: int) -> None:
    """Install the guard; call before anything reads the body."""
    request.upload_handlers = [SizeLimitedUploadHandler(request, limit), *request.upload_handlers]


def discard_partial_uploads(request: HttpRequest) -> None:
    """After UploadTooLarge: close the file a handler had begun (a temporary file is deleted
    when closed) and leave the request with no data, as Django does after a parse error."""
    for handler in request.upload_handlers:
        partial = getattr(handler, "file", None)
        if partial is not None:
            partial.close()
    request.POST = QueryDict()
    request._files = MultiValueDict()  # type: ignore[attr-defined]  # what FILES reads; no setter
