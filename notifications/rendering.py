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

from .catalogue import CONFIRMATION_EVENTS, EVENT_VARIABLES

_formatter = string.Formatter()
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


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
    if event in CONFIRMATION_EVENTS:
        errors.extend(marketing_errors(text))
    return errors


# --- no marketing in confirmations --------------------------------------------------
#
# The confirmation of an opt-out (and the question asking to confirm one) may carry
# no marketing: FCC 47 CFR §64.1200(a)(12) allows one confirmation text with no
# marketing or persuasion, and a tenant's terms promise the same. Staff write these
# texts, so the admin form, the save service and Template.save() all refuse them.

# A literal link (scheme, www., or a host with a path / a known top-level domain):
# our own pages reach the text only through variables such as {status_url}.
_LINK_PATTERNS = [
    re.compile(r"(?:https?|ftp)://\S+", re.IGNORECASE),
    re.compile(r"\bwww\.\S+", re.IGNORECASE),
    re.compile(
        r"\b[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\."
        r"(?:com|cn|net|org|info|biz|io|me|co|cc|tv|top|xyz|shop|store|vip|club|site|online|app|link|ly|gl|ink|hk|tw)"
        r"\b(?:/\S*)?",
        re.IGNORECASE,
    ),
    re.compile(r"\b[a-z0-9-]+\.[a-z]{2,}/\S+", re.IGNORECASE),  # t.cn/xyz, dwz.cn/… short links
]

# Words and shapes of promotional content, in Chinese and English. Each pattern
# stands for a family (折 covers 5折, 八折, 打折, 折扣); matching is case-insensitive.
_PROMOTION_PATTERNS = [
    # Chinese
    r"优惠",
    r"(?:[0-9０-９一二三四五六七八九半.]\s*折)|打折|折扣|折起",
    r"券",
    r"特价|特惠|特卖",
    r"领取|领红包|红包",
    r"限时|限量|秒杀|抢购|抢先",
    r"促销|大促|热卖|爆款|清仓",
    r"免费",
    r"福利|返现|返利|满减|满\s*\d+\s*减|立减|低至|包邮",
    r"赠品|赠送|礼包|礼品|抽奖|中奖",
    r"新品|上新|团购|下单|购买|购物",
    r"积分兑换|会员价|会员日",
    # prices and amounts
    r"[¥￥$€£]\s*\d",
    r"\d+(?:\.\d+)?\s*(?:元|块钱|美元)",
    r"\b(?:RMB|CNY|USD)\s*\d",
    r"\d+(?:\.\d+)?\s*[%％]\s*(?:off|discount)|[%％]\s*off\b",
    # English
    r"\boffers?\b",
    r"\bdiscount(?:s|ed)?\b",
    r"\bcoupons?\b",
    r"\bvouchers?\b",
    r"\bpromo(?:s|tion|tions|tional)?\b",
    r"\bprices?\b|\bpricing\b",
    r"\bfree\b",
    r"\bsales?\b",
    r"\bdeals?\b",
    r"\bbargains?\b|\bclearance\b",
    r"\bcash\s?back\b|\brebates?\b",
    r"\bgifts?\b|\bgiveaways?\b|\bprizes?\b|\bbonus(?:es)?\b|\brewards?\b",
    r"\bbuy\b|\bshop\s+now\b|\border\s+now\b|\bsave\s+(?:up\s+to\s+)?\d",
    r"\blimited[-\s]time\b|\bexclusive\b|\bspecial\b",
    r"\bnew\s+arrivals?\b",
]
_PROMOTION = re.compile("|".join(f"(?:{p})" for p in _PROMOTION_PATTERNS), re.IGNORECASE)
# Wording that names the opt-out itself, not an offer: "免费退订", a toll-free line.
_NOT_PROMOTION = re.compile(
    r"免费退订|退订免费|toll[-\s]free|free\s+of\s+charge\s+to\s+opt\s+out", re.IGNORECASE
)


def marketing_errors(text: str) -> list[str]:
    """Why a confirmation or clarification text counts as marketing (empty when it is clean)."""
    try:
        literal = _without_variables(text)
    except ValueError:
        return []  # the syntax error is reported on its own
    errors: list[str] = []
    links = _unique(
        m.group(0).rstrip(".,;:!?)）。，；：！？") for p in _LINK_PATTERNS for m in p.finditer(literal)
    )
    if links:
        errors.append(
            str(
                _(
                    "Confirmations must carry no marketing: remove the link %(links)s. Links are only "
                    "allowed through variables such as {status_url}."
                )
                % {"links": _quoted(links)}
            )
        )
    words = _unique(m.group(0).strip() for m in _PROMOTION.finditer(_NOT_PROMOTION.sub(" ", literal)))
    if words:
        errors.append(
            str(
                _(
                    "Confirmations and clarifications must carry no marketing (offers, discounts, "
                    "coupons, prices): remove %(words)s."
                )
                % {"words": _quoted(words)}
            )
        )
    return errors


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(item for item in items if item))


def _quoted(items: Iterable[str]) -> str:
    return ", ".join(f"“{item}”" for item in items)


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
