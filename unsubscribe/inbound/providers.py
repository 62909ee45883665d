"""The three gateway formats: how each proves who sent it, and how its payload reads.

Pure functions over what the view received; each parser returns `Incoming` values or
raises `Malformed` with a reason fit to show the gateway's operator.

- twilio: form fields From, To, Body, MessageSid; X-Twilio-Signature checked with the
  twilio package's RequestValidator over the public URL of this endpoint.
- aliyun: the JSON array Aliyun SMS pushes for uplink (MO) messages: phone_number,
  content, send_time (Beijing time), dest_code, sequence_id, sign_name; a per-tenant
  token in ?token= (Aliyun's console only takes a URL) or the X-Lanzuan-Token header.
- generic: JSON {"from", "to", "text", "message_id", "timestamp"} signed like every
  Lanzuan webhook (lanzuan.signing: X-Lanzuan-Timestamp, X-Lanzuan-Signature).

How a request proves its sender (Twilio's signature, Lanzuan's HMAC) is shared with
the voice menu's webhooks: lanzuan/webhooks.py.
"""

from __future__ import annotations

import hmac
import json
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.http import HttpRequest, QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from lanzuan.webhooks import Malformed

MAX_TEXT_CHARS = 2000  # ten concatenated SMS are ~700 characters; more is not a reply
MAX_BATCH = 500
ALIYUN_TZ = zoneinfo.ZoneInfo("Asia/Shanghai")  # Aliyun reports send_time in Beijing time
ALIYUN_TOKEN_HEADER = "X-Lanzuan-Token"
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class Incoming:
    message_id: str
    from_number: str
    to: str
    body: str
    received_at: datetime | None = None
    sign_name: str = ""


def _text(value: Any, name: str, *, required: bool = True, limit: int = 100) -> str:
    if value is None or value == "":
        if required:
            raise Malformed(_("“%(name)s” is required.") % {"name": name})
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Malformed(_("“%(name)s” must be a string.") % {"name": name})
    text = str(value).strip()
    if len(text) > limit:
        raise Malformed(_("“%(name)s” is too long.") % {"name": name})
    return text


def _body(value: Any, name: str, *, required: bool = True) -> str:
    if value is None:
        if required:
            raise Malformed(_("“%(name)s” is required.") % {"name": name})
        return ""
    if not isinstance(value, str):
        raise Malformed(_("“%(name)s” must be a string.") % {"name": name})
    if len(value) > MAX_TEXT_CHARS:
        raise Malformed(
            _("“%(name)s” is longer than %(limit)d characters.") % {"name": name, "limit": MAX_TEXT_CHARS}
        )
    return value


def _not_in_future(moment: datetime | None) -> datetime | None:
    """A sender's clock ahead of ours is not trusted: we use our own time then."""
    if moment is None or moment > timezone.now() + FUTURE_TOLERANCE:
        return None
    return moment


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Malformed(_("The body is not valid UTF-8 JSON.")) from None


# --- twilio -------------------------------------------------------------------------------


def parse_twilio(form: QueryDict) -> Incoming:
    return Incoming(
        message_id=_text(form.get("MessageSid") or form.get("SmsSid"), "MessageSid"),
        from_number=_text(form.get("From"), "From", limit=64),
        to=_text(form.get("To"), "To", required=False, limit=64),
        body=_body(form.get("Body"), "Body", required=False),  # an MMS may carry none
    )


# --- aliyun -------------------------------------------------------------------------------


def aliyun_token(request: HttpRequest) -> str:
    return request.headers.get(ALIYUN_TOKEN_HEADER) or request.GET.get("token", "")


def aliyun_token_ok(given: str, expected: str) -> bool:
    return bool(given and expected) and hmac.compare_digest(given.encode(), expected.encode())


def _aliyun_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        # Aliyun writes Beijing time with no zone in it.
        moment = datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=ALIYUN_TZ)
    except ValueError:
        return None
    return _not_in_future(moment)


def parse_aliyun(raw: bytes) -> tuple[list[Incoming], list[str]]:
    """The messages that could be read, and a reason for each one that could not.

    Readable messages are kept even when a neighbour is broken: Aliyun retries the
    whole batch on an error answer, and the readable ones are then recognised by
    their sequence_id and not acted on twice.
    """
    data = _json(raw)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise Malformed(_("Expected a JSON array of uplink messages."))
    if len(data) > MAX_BATCH:
        raise Malformed(_("At most %(count)d messages per request.") % {"count": MAX_BATCH})
    messages: list[Incoming] = []
    problems: list[str] = []
    for index, item in enumerate(data):
        try:
            if not isinstance(item, dict):
                raise Malformed(_("not an object"))
            messages.append(
                Incoming(
                    message_id=_text(item.get("sequence_id"), "sequence_id"),
                    from_number=_text(item.get("phone_number"), "phone_number", limit=64),
                    to=_text(item.get("dest_code"), "dest_code", required=False, limit=64),
                    body=_body(item.get("content"), "content"),
                    received_at=_aliyun_time(item.get("send_time")),
                    sign_name=_text(item.get("sign_name"), "sign_name", required=False),
                )
            )
        except Malformed as exc:
            problems.append(f"[{index}] {exc}")
    return messages, problems


# --- generic ------------------------------------------------------------------------------


def _generic_time(value: Any) -> datetime | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return _not_in_future(datetime.fromtimestamp(value, tz=UTC))
        except (OverflowError, OSError, ValueError):
            raise Malformed(_("“timestamp” is out of range.")) from None
    if isinstance(value, str):
        parsed = parse_datetime(value.strip()) if value.strip() else None
        if parsed is None:
            raise Malformed(_("“timestamp” must be ISO 8601 or Unix seconds."))
        if timezone.is_naive(parsed):
            parsed = parsed.replace(tzinfo=UTC)
        return _not_in_future(parsed)
    raise Malformed(_("“timestamp” must be ISO 8601 or Unix seconds."))


def parse_generic(raw: bytes) -> Incoming:
    data = _json(raw)
    if not isinstance(data, dict):
        raise Malformed(_("Expected a JSON object."))
    return Incoming(
        message_id=_text(data.get("message_id"), "message_id"),
        from_number=_text(data.get("from"), "from", limit=64),
        to=_text(data.get("to"), "to", required=False, limit=64),
        body=_body(data.get("text"), "text"),
        received_at=_generic_time(data.get("timestamp")),
    )
