"""Render `{name}` texts safely, validate them, and count SMS characters and segments.

Texts are written by tenant administrators, so the syntax is deliberately tiny:
plain `{name}` from the event's variables, `{{` and `}}` for literal braces. No
attribute or index access (`{reference.__class__}`), no conversions, no format
specs: str.format would otherwise let a template reach into Python objects.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .events import CONFIRMATION_EVENTS, EVENT_VARIABLES

_formatter = string.Formatter()
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_LITERAL_LINK = re.compile(r"(https?://|www\.)", re.IGNORECASE)


class TemplateSyntaxError(ValueError):
    """The text is not a valid template; str(exc) is a user-facing message."""


def variables_in(text: str) -> list[str]:
    """The variable names a text uses, in order; raises TemplateSyntaxError on bad syntax."""
    try:
        parsed = list(_formatter.parse(text))
    except ValueError:
        raise TemplateSyntaxError(_("Unbalanced braces. Write {{ and }} for a literal brace.")) from None
    names: list[str] = []
    for _literal, field_name, format_spec, conversion in parsed:
        if field_name is None:
            continue
        if not _NAME.match(field_name) or format_spec or conversion:
            raise TemplateSyntaxError(
                _("“{%(field)s}” is not allowed: use plain variables such as {reference}.")
                % {"field": field_name}
            )
        names.append(field_name)
    return names


def text_errors(text: str, event: str) -> list[str]:
    """Problems with one subject or body for this event (empty when it is fine)."""
    try:
        used = variables_in(text)
    except TemplateSyntaxError as exc:
        return [str(exc)]
    allowed = EVENT_VARIABLES.get(event, frozenset())
    errors: list[str] = []
    unknown = sorted(set(used) - allowed)
    if unknown:
        errors.append(
            ngettext(
                "Unknown variable %(names)s. Available: %(allowed)s.",
                "Unknown variables %(names)s. Available: %(allowed)s.",
                len(unknown),
            )
            % {"names": _braced(unknown), "allowed": _braced(sorted(allowed))}
        )
    if event in CONFIRMATION_EVENTS and _LITERAL_LINK.search(_without_variables(text)):
        errors.append(
            str(
                _(
                    "Confirmations must carry no marketing: links are only allowed through "
                    "variables such as {status_url}."
                )
            )
        )
    return errors


class _StrictValues(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


def render(text: str, values: Mapping[str, str]) -> str:
    """Fill `{name}` from values; raises ValueError naming a variable it has no value for."""
    variables_in(text)  # refuses attribute access and format specs before str.format sees them
    try:
        return text.format_map(_StrictValues(values))
    except KeyError as exc:
        raise ValueError(f"no value for the variable {{{exc.args[0]}}}") from None


def _without_variables(text: str) -> str:
    return "".join(literal for literal, *_rest in _formatter.parse(text))


def _braced(names: Iterable[str]) -> str:
    return ", ".join("{" + name + "}" for name in names)


# --- SMS length -------------------------------------------------------------------

# GSM 03.38 default alphabet, and the extension table whose characters take two septets.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsLength:
    characters: int
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int

    @property
    def single_limit(self) -> int:
        return 160 if self.encoding == "GSM-7" else 70

    @property
    def part_limit(self) -> int:
        return 153 if self.encoding == "GSM-7" else 67


def sms_length(text: str) -> SmsLength:
    """Characters and segments: GSM-7 160 in one message, 153 per part; UCS-2 70, 67 per part."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text):
        encoding = "GSM-7"
        units = sum(2 if ch in GSM7_EXTENDED else 1 for ch in text)
        single, part = 160, 153
    else:
        encoding = "UCS-2"
        units = len(text.encode("utf-16-le")) // 2  # an emoji is two units
        single, part = 70, 67
    if units == 0:
        segments = 0
    elif units <= single:
        segments = 1
    else:
        segments = math.ceil(units / part)
    return SmsLength(characters=len(text), encoding=encoding, units=units, segments=segments)
