"""Receipts and errors as staff read them, in their language.

The pipeline stores its receipts and errors (``Step.receipt``, ``Step.last_error``,
``Message.error``, ``UnsubscribeRequest.attention_reason``) as short English sentences:
they are the compliance record and the API returns them as they are, so the stored text
must not change with the reader's language. The admin shows them through
``receipt_display``, which recognises each known sentence and renders it with gettext.

To add a sentence: add its pattern here next to the code that writes it. A sentence
that no pattern knows is shown as stored, so a changed wording degrades to English,
never to an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from notifications.catalogue import MessageChannel
from notifications.models import Message

from .models import Step

_Render = Callable[[re.Match[str]], str]


def _count(match: re.Match[str]) -> int:
    return int(match["count"])


def _exception(name: str) -> str:
    # A few exception classes say more in words; any other is a code, shown as it is.
    known = {
        "ConnectionError": _("connection refused or reset"),
        "ConnectTimeout": _("connection timed out"),
        "ReadTimeout": _("no answer in time"),
        "Timeout": _("timed out"),
        "SSLError": _("TLS certificate or handshake error"),
        "TooManyRedirects": _("too many redirects"),
        "SMTPAuthenticationError": _("SMTP login refused"),
        "SMTPRecipientsRefused": _("recipient refused"),
        "SMTPServerDisconnected": _("server closed the connection"),
        "OSError": _("network error"),
        "gaierror": _("host name not found"),
    }
    return str(known.get(name, name))


def _status(code: str) -> str:
    return str(dict(Message.Status.choices).get(code, code))


def _channel(code: str) -> str:
    return str(dict(MessageChannel.choices).get(code, code))


def _kind(code: str) -> str:
    return str(dict(Step.Kind.choices).get(code, code))


# (pattern of the stored English sentence, how to say it). Patterns are searched, not
# anchored: the request's attention reason embeds the steps' errors.
_SENTENCES: list[tuple[re.Pattern[str], _Render]] = [
    (
        re.compile(r"\bended (?P<count>\d+) subscription\(s\)"),
        lambda m: (
            ngettext("ended %(count)d subscription", "ended %(count)d subscriptions", _count(m))
            % {"count": _count(m)}
        ),
    ),
    (
        re.compile(r"\bremoved the number from (?P<count>\d+) subscription\(s\)"),
        lambda m: (
            ngettext(
                "removed the number from %(count)d subscription",
                "removed the number from %(count)d subscriptions",
                _count(m),
            )
            % {"count": _count(m)}
        ),
    ),
    (
        re.compile(r"\banonymised (?P<count>\d+) profile\(s\)"),
        lambda m: (
            ngettext("anonymised %(count)d profile", "anonymised %(count)d profiles", _count(m))
            % {"count": _count(m)}
        ),
    ),
    (
        re.compile(r"\bdeleted (?P<count>\d+) profile\(s\)"),
        lambda m: (
            ngettext("deleted %(count)d profile", "deleted %(count)d profiles", _count(m))
            % {"count": _count(m)}
        ),
    ),
    (
        re.compile(r"\bcleared the number from (?P<count>\d+) message\(s\)"),
        lambda m: (
            ngettext(
                "cleared the number from %(count)d message",
                "cleared the number from %(count)d messages",
                _count(m),
            )
            % {"count": _count(m)}
        ),
    ),
    (
        re.compile(r"\bmessage (?P<id>\d+) (?P<status>[a-z_]+) via (?P<channel>[a-z_]+)"),
        lambda m: (
            _("message %(id)s: %(status)s, by %(channel)s")
            % {"id": m["id"], "status": _status(m["status"]), "channel": _channel(m["channel"])}
        ),
    ),
    (
        re.compile(r"\btimed out after (?P<seconds>\d+) s\b"),
        lambda m: _("no answer within %(seconds)s s") % {"seconds": m["seconds"]},
    ),
    (
        re.compile(r"\bcould not connect: (?P<error>\w+)"),
        lambda m: _("could not connect (%(error)s)") % {"error": _exception(m["error"])},
    ),
    (
        re.compile(r"\bcould not reach the gateway: (?P<error>\w+)"),
        lambda m: _("could not reach the gateway (%(error)s)") % {"error": _exception(m["error"])},
    ),
    (
        re.compile(r"\b(?P<gateway>Twilio|Aliyun|SMTP) (?:unreachable|unavailable): (?P<error>\w+)"),
        lambda m: (
            _("%(gateway)s could not be reached (%(error)s)")
            % {"gateway": m["gateway"], "error": _exception(m["error"])}
        ),
    ),
    (
        re.compile(r"\bSMTP refused: (?P<error>\w+)"),
        lambda m: _("the mail server refused the message (%(error)s)") % {"error": _exception(m["error"])},
    ),
    (
        re.compile(r"\bcould not write the outbox: (?P<error>.+)$"),
        lambda m: _("could not write the outbox (%(error)s)") % {"error": m["error"]},
    ),
    (
        re.compile(r"\bTwilio accepted the message but returned no sid"),
        lambda m: _("Twilio accepted the message but returned no message id"),
    ),
    (
        re.compile(r"\bno Aliyun template code for the event (?P<event>[a-z_.]+)"),
        lambda m: _("no Aliyun template code for this event (%(event)s)") % {"event": m["event"]},
    ),
    (
        re.compile(r"\bthe one-time code expired before it could be sent"),
        lambda m: _("the one-time code expired before it could be sent"),
    ),
    (
        re.compile(r"\banother worker is sending this message"),
        lambda m: _("another worker is sending this message"),
    ),
    (
        re.compile(r"\bthe recipient was erased before the message was sent"),
        lambda m: _("the recipient was erased before the message was sent"),
    ),
    (
        re.compile(r"\bthe target of this step was removed"),
        lambda m: _("the target of this step was removed"),
    ),
    (
        re.compile(r"\bthe number was already erased; nothing to send to the target"),
        lambda m: _("the number was already erased; nothing to send to the target"),
    ),
    (
        re.compile(r"\bthe number was already erased; no confirmation can be sent"),
        lambda m: _("the number was already erased; no confirmation can be sent"),
    ),
    (
        re.compile(
            r"\bthe number was erased at the erasure deadline \((?P<when>[^)]*)\); the request did not complete"
        ),
        lambda m: (
            _("the number was erased at the erasure deadline (%(when)s); the request did not complete")
            % {"when": m["when"]}
        ),
    ),
    (
        re.compile(
            r"\bnot done by the erasure deadline \((?P<when>[^)]*)\): the number was erased; "
            r"finish this step by hand"
        ),
        lambda m: (
            _("not done by the erasure deadline (%(when)s): the number was erased; finish this step by hand")
            % {"when": m["when"]}
        ),
    ),
    (
        re.compile(r"\bdone at the erasure deadline \((?P<when>[^)]*)\), the request not completed"),
        lambda m: (
            _("done at the erasure deadline (%(when)s), the request not completed") % {"when": m["when"]}
        ),
    ),
    (
        re.compile(r"\bcould not be done at the erasure deadline \((?P<when>[^)]*)\): (?P<error>\w+)"),
        lambda m: (
            _("could not be done at the erasure deadline (%(when)s): %(error)s")
            % {"when": m["when"], "error": _exception(m["error"])}
        ),
    ),
    (
        re.compile(r"\bunknown internal data source '(?P<source>[^']*)'"),
        lambda m: _("unknown internal data source %(source)s") % {"source": m["source"]},
    ),
    (
        re.compile(r"\b(?P<source>[a-z_]+) cannot (?P<kind>terminate|confirm|erase)\b"),
        lambda m: (
            _("the data source %(source)s cannot do this step (%(kind)s)")
            % {"source": m["source"], "kind": _kind(m["kind"])}
        ),
    ),
    (
        re.compile(r"\bno value for the variable \{(?P<name>\w+)\}"),
        lambda m: _("no value for the variable {%(name)s}") % {"name": m["name"]},
    ),
]


def receipt_display(text: str) -> str:
    """A stored receipt or error in the active language (unknown wording as stored)."""
    for pattern, render in _SENTENCES:
        text = pattern.sub(render, text)
    return text
