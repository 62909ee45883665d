"""The partner API's JSON parser: DRF's, with limits.

- size: a body larger than settings.DATA_UPLOAD_MAX_MEMORY_SIZE is refused with a 413
  before it is read (DRF reads the stream itself, so Django's own check on
  `request.body` never runs for JSON); the CSV/multipart upload paths keep their
  own limits (scrub.py, the admin import).
- depth: nesting deeper than MAX_DEPTH is refused with a 400 (no endpoint takes more
  than a few levels; 5,000 levels made json raise RecursionError, a 500).
- messages: translated, never Python's own text (a codec's or json's message).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.parsers import BaseParser, JSONParser

MAX_DEPTH = 32
_CONTAINERS = (dict, list)


class BodyTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "too_large"


def _too_deep(data: Any) -> bool:
    """Iterative, so that checking a deep structure cannot itself recurse too far."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                return True
            children = value.values() if isinstance(value, dict) else value
            # A list of 10,000 numbers (no container in it) costs one pass in C.
            if any(issubclass(kind, _CONTAINERS) for kind in set(map(type, children))):
                stack.extend((child, depth + 1) for child in children if isinstance(child, _CONTAINERS))
    return False


def _limit() -> int | None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return int(limit) if limit is not None else None


def _read_text(stream: IO[bytes], parser_context: Mapping[str, Any]) -> str:
    """The body as text, refused with a 413 past the limit (by its Content-Length, then as read)."""
    encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
    limit = _limit()
    request = parser_context.get("request")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
    except ValueError:
        length = 0
    if limit is not None and length > limit:
        raise BodyTooLarge(_too_large_message(limit))
    raw = stream.read() if limit is None else stream.read(limit + 1)
    if limit is not None and len(raw) > limit:
        raise BodyTooLarge(_too_large_message(limit))
    try:
        return str(codecs.decode(raw, encoding))
    except (UnicodeDecodeError, LookupError):
        raise exceptions.ParseError(_("The body is not valid UTF-8 text.")) from None


def _too_large_message(limit: int) -> str:
    return _("The body is larger than %(size)s MB.") % {"size": round(limit / (1024 * 1024), 1)}


def refuse_constant(name: str) -> Any:
    """json.loads' parse_constant: NaN and Infinity are not JSON (RFC 8259), whatever Python's
    json accepts."""
    raise ValueError(name)


class LimitedJSONParser(JSONParser):
    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        text = _read_text(stream, parser_context or {})
        try:
            data = json.loads(text, parse_constant=refuse_constant)
        except RecursionError:
            raise exceptions.ParseError(self._too_deep_message()) from None
        except ValueError:
            raise exceptions.ParseError(_("The body is not valid JSON.")) from None
        if _too_deep(data):
            raise exceptions.ParseError(self._too_deep_message())
        return data

    @staticmethod
    def _too_deep_message() -> str:
        return _("The JSON is nested more than %(depth)s levels deep.") % {"depth": MAX_DEPTH}


class LimitedCSVParser(BaseParser):
    """A `text/csv` body as text, with the JSON parser's size limit; the view reads the rows."""

    media_type = "text/csv"

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:  # the text; DRF's stubs expect a mapping, as most parsers give
        return _read_text(stream, parser_context or {})


def body_too_large(limit: int) -> BodyTooLarge:
    """The parser's 413, for a caller that refuses a body by its Content-Length (upload_limits.py)."""
    return BodyTooLarge(_too_large_message(limit))
