"""Rule-based unsubscribe-intent classifier for inbound SMS replies.

Pure Python and deterministic, so that an administrator can read *why* a reply was treated as an
opt-out (``IntentResult.matched``) and a regulator can be shown the rules. The tables live in
``keywords.py``; this module has one ``normalise()`` and one ``classify()`` plus small helpers.

How a message is read, in order:

1. only question marks ("?", "？？") -> help;
2. ``normalise()``; nothing left (empty, emoji only) -> other;
3. negations and look-alikes ("不要退订", "don't stop", "stop by") are cut out of the text;
4. the whole message: an exact keyword (0.97), a keyword with polite words around it ("TD 谢谢",
   "please stop": 0.8), a weak reply such as "不要" (0.5: ask), a one-key typo ("stpo": 0.7);
5. otherwise keywords and phrase patterns anywhere in the text; where matches overlap the longest
   wins (so 取消退订 beats the 退订 inside it); unsubscribe beats help; unsubscribe *and*
   resubscribe in one message is unclear, so we ask;
6. a bare keyword in a question ("stop it?", "TD?") is unclear too, so we ask.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import opencc

from .keywords import (
    CLARIFY_NO,
    CLARIFY_YES,
    HELP_KEYWORDS,
    LOOKALIKES,
    NOT_TYPOS,
    PHRASES,
    POLITE_FILLER_EN,
    POLITE_FILLER_ZH,
    RESUBSCRIBE_KEYWORDS,
    STATUS_QUESTION,
    STILL_COMING,
    TYPO_ANYWHERE_MIN_LENGTH,
    TYPO_MIN_LENGTH,
    UNSUBSCRIBE_KEYWORDS,
    WEAK_UNSUBSCRIBE,
    Intent,
    Where,
)

Action = Literal["act", "clarify", "reply_help", "reply_status", "none"]

# What we last asked the number: "clarification" = we asked it to confirm an opt-out.
CONTEXT_CLARIFICATION = "clarification"

# Below this an unsubscribe/resubscribe is not acted on: the sender replies asking to confirm.
CLARIFY_THRESHOLD = 0.6

EXACT_CONFIDENCE = 0.97  # the whole message is a keyword
IN_MESSAGE_CONFIDENCE = 0.8  # a keyword inside a longer message, or with polite words
TYPO_CONFIDENCE = 0.7  # one key away from an unsubscribe keyword
WEAK_CONFIDENCE = 0.5  # "不要", "no": probably, but ask
QUESTION_CONFIDENCE = 0.55  # "stop it?": probably, but ask
CONFLICT_CONFIDENCE = 0.5  # both "stop" and "start" in one message
NOTHING_CONFIDENCE = 0.9  # no signal at all: confidently "other"
DISARMED_CONFIDENCE = 0.8  # a look-alike or negation was all there was ("stop by", "不要退订")


@dataclass(frozen=True)
class IntentResult:
    intent: Intent
    confidence: float
    action: Action
    matched: str  # the rule that decided, shown to the administrator


@dataclass(frozen=True)
class _Hit:
    intent: Intent
    confidence: float
    matched: str
    start: int = 0
    end: int = 0
    bare_keyword: bool = False  # a keyword, not a phrase: "?" turns it into a question


_KeywordTable = tuple[Intent, str, dict[str, Where]]  # (intent, "keyword" | "tenant keyword", words)

_LATIN_WORD = re.compile(r"[a-z]+")
# A space between a run of ASCII letters/digits and a run of anything else ("回复td退订").
_SCRIPT_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[^\x00-\x7f])|(?<=[^\x00-\x7f])(?=[a-z0-9])")
_APOSTROPHES = re.compile("['’‘`´]")


@functools.cache
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def normalise(text: str) -> str:
    """The canonical form every table is written in: "【退訂】" -> "退订", "ＳＴＯＰ!!" -> "stop"."""
    s = unicodedata.normalize("NFKC", text)  # full-width "ＴＤ" -> "TD", "？" -> "?"
    s = _t2s().convert(s)  # traditional -> simplified: "退訂" -> "退订"
    s = s.casefold()
    # Drop accents ("arrêt" -> "arret"): people type them or not at random.
    s = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))
    s = unicodedata.normalize("NFKC", s)
    s = _APOSTROPHES.sub("", s)  # "don't" -> "dont", so one spelling in the tables
    # Punctuation, brackets (【】[]()), symbols and emoji separate words and mean nothing more.
    s = "".join(c if c.isalnum() else " " for c in s)
    s = _SCRIPT_BOUNDARY.sub(" ", s)
    return " ".join(s.split())


def classify(
    text: str,
    *,
    extra_unsubscribe_keywords: Iterable[str] = (),
    extra_resubscribe_keywords: Iterable[str] = (),
    context: str | None = None,
) -> IntentResult:
    """Classify one inbound reply. The extra keywords are the tenant's own, matched exactly.

    `context` is what we last asked the number: after a clarification ("clarification")
    a short yes means unsubscribe and a short no means other; without one a bare yes is other.
    """
    tables: list[_KeywordTable] = [
        ("unsubscribe", "tenant keyword", _tenant_table(extra_unsubscribe_keywords)),
        ("unsubscribe", "keyword", UNSUBSCRIBE_KEYWORDS),
        ("resubscribe", "tenant keyword", _tenant_table(extra_resubscribe_keywords)),
        ("resubscribe", "keyword", RESUBSCRIBE_KEYWORDS),
        ("help", "keyword", HELP_KEYWORDS),
    ]

    compact = unicodedata.normalize("NFKC", text).strip()
    if compact and set(compact) <= {"?", " "}:
        return _result(_Hit("help", EXACT_CONFIDENCE, "exact keyword '?'"))

    norm = normalise(text)
    if not norm:
        return _result(_Hit("other", 1.0, "empty (no words)"))

    if context == CONTEXT_CLARIFICATION:
        answer = _clarification_answer(norm)
        if answer is not None:
            return _result(answer)
    status = _status_question(norm)
    if status is not None:
        return _result(status)

    norm, disarmed = _cut_lookalikes(norm)
    hit = (_whole_message(norm, tables) or _anywhere(norm, tables)) if norm else None
    if hit is None:
        if disarmed:
            return _result(_Hit("other", DISARMED_CONFIDENCE, "; ".join(disarmed)))
        return _result(_Hit("other", NOTHING_CONFIDENCE, "no keyword or phrase"))

    if hit.bare_keyword and "?" in compact and hit.intent in ("unsubscribe", "resubscribe"):
        hit = _Hit(
            hit.intent,
            min(hit.confidence, QUESTION_CONFIDENCE),
            f"{hit.matched}, but asked as a question",
        )
    return _result(hit)


# --- helpers -----------------------------------------------------------------------------------


def _result(hit: _Hit) -> IntentResult:
    action: Action
    if hit.intent == "other":
        action = "none"
    elif hit.intent == "help":
        action = "reply_help"
    elif hit.intent == "status":
        action = "reply_status"
    elif hit.confidence < CLARIFY_THRESHOLD:
        action = "clarify"
    else:
        action = "act"
    return IntentResult(hit.intent, hit.confidence, action, hit.matched)


def _clarification_answer(norm: str) -> _Hit | None:
    """A short yes or no to "reply TD to confirm": yes confirms the opt-out, no is other."""
    stripped = _strip_filler(norm) or norm
    if norm in CLARIFY_YES or stripped in CLARIFY_YES:
        return _Hit("unsubscribe", EXACT_CONFIDENCE, f"yes '{stripped}' to a clarification")
    if norm in CLARIFY_NO or stripped in CLARIFY_NO:
        return _Hit("other", EXACT_CONFIDENCE, f"no '{stripped}' to a clarification")
    return None


def _status_question(norm: str) -> _Hit | None:
    """ "退订成功了吗", "am I unsubscribed?": the person asks whether an opt-out worked. A complaint
    that messages still come is an unsubscribe, so it is not looked at here."""
    if STILL_COMING.search(norm):
        return None
    m = STATUS_QUESTION.search(norm)
    if m is None:
        return None
    return _Hit("status", IN_MESSAGE_CONFIDENCE, f"status question '{m.group(0)}'")


def _tenant_table(keywords: Iterable[str]) -> dict[str, Where]:
    """Tenant keywords count where a built-in one of the same shape would."""
    table: dict[str, Where] = {}
    for keyword in keywords:
        word = normalise(keyword)
        if len(word) <= 1:
            table[word] = Where.EXACT
        elif len(word) >= 4 or not word.isascii():  # "tdqx", "退订回复"
            table[word] = Where.ANYWHERE
        else:  # "qx": too short to look for inside sentences
            table[word] = Where.ALONE
    table.pop("", None)
    return table


def _cut_lookalikes(norm: str) -> tuple[str, list[str]]:
    """Remove "不要退订", "don't stop", "stop by" ... so their keywords do not count."""
    found: list[str] = []
    for label, pattern in LOOKALIKES:
        for m in pattern.finditer(norm):
            found.append(f"{label}: '{m.group(0)}'")
        norm = pattern.sub(" ", norm)
    return " ".join(norm.split()), found


@functools.cache
def _filler_pattern() -> re.Pattern[str]:
    english = "|".join(re.escape(w) for w in sorted(POLITE_FILLER_EN, key=len, reverse=True))
    chinese = "|".join(re.escape(w) for w in sorted(POLITE_FILLER_ZH, key=len, reverse=True))
    return re.compile(rf"\b({english})\b|{chinese}")


def _strip_filler(norm: str) -> str:
    return " ".join(_filler_pattern().sub(" ", norm).split())


def _whole_message(norm: str, tables: list[_KeywordTable]) -> _Hit | None:
    for intent, source, table in tables:
        if norm in table:
            return _Hit(intent, EXACT_CONFIDENCE, f"exact {source} '{norm}'", bare_keyword=True)

    stripped = _strip_filler(norm)
    for intent, source, table in tables:
        if table.get(stripped, Where.EXACT) >= Where.ALONE:
            matched = f"{source} '{stripped}' with polite words"
            return _Hit(intent, IN_MESSAGE_CONFIDENCE, matched, bare_keyword=True)

    for candidate in (norm, stripped):
        if candidate in WEAK_UNSUBSCRIBE:
            return _Hit("unsubscribe", WEAK_CONFIDENCE, f"weak signal '{candidate}'")

    if _LATIN_WORD.fullmatch(stripped) and not _is_known_word(stripped, tables):
        for keyword in UNSUBSCRIBE_KEYWORDS:
            if len(keyword) >= TYPO_MIN_LENGTH and keyword.isalpha() and _one_edit_apart(stripped, keyword):
                matched = f"'{stripped}' looks like a typo of keyword '{keyword}'"
                return _Hit("unsubscribe", TYPO_CONFIDENCE, matched, bare_keyword=True)
    return None


def _anywhere(norm: str, tables: list[_KeywordTable]) -> _Hit | None:
    hits: list[_Hit] = []
    for intent, source, table in tables:
        for keyword, where in table.items():
            if where == Where.ANYWHERE:
                for m in _keyword_pattern(keyword).finditer(norm):
                    matched = f"{source} '{keyword}' in message"
                    hits.append(_Hit(intent, IN_MESSAGE_CONFIDENCE, matched, m.start(), m.end(), True))
    for phrase in PHRASES:
        for m in phrase.pattern.finditer(norm):
            matched = f"phrase ({phrase.label}) '{m.group(0)}'"
            hits.append(_Hit(phrase.intent, phrase.confidence, matched, m.start(), m.end()))
    for m in _LATIN_WORD.finditer(norm):
        word = m.group(0)
        if _is_known_word(word, tables):
            continue
        for keyword, where in UNSUBSCRIBE_KEYWORDS.items():
            if (
                where == Where.ANYWHERE
                and len(keyword) >= TYPO_ANYWHERE_MIN_LENGTH
                and keyword.isalpha()
                and _one_edit_apart(word, keyword)
            ):
                matched = f"'{word}' looks like a typo of keyword '{keyword}'"
                hits.append(_Hit("unsubscribe", TYPO_CONFIDENCE, matched, m.start(), m.end(), True))

    hits = _resolve_overlaps(hits)
    intents = {hit.intent for hit in hits}
    if {"unsubscribe", "resubscribe"} <= intents:
        both = "; ".join(hit.matched for hit in hits if hit.intent != "help")
        return _Hit("unsubscribe", CONFLICT_CONFIDENCE, f"conflicting: {both}")
    for intent in ("unsubscribe", "resubscribe", "help"):
        candidates = [hit for hit in hits if hit.intent == intent]
        if candidates:
            return max(candidates, key=lambda hit: hit.confidence)
    return None


def _resolve_overlaps(hits: list[_Hit]) -> list[_Hit]:
    """Where matches overlap keep the longest: 取消退订 (resubscribe) over the 退订 inside it,
    "stop sending" (phrase) over "stop" (keyword)."""
    kept: list[_Hit] = []
    for hit in sorted(hits, key=lambda h: (h.start - h.end, -h.confidence, h.start)):
        if all(hit.end <= other.start or hit.start >= other.end for other in kept):
            kept.append(hit)
    return kept


@functools.lru_cache(maxsize=1024)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    # Whole words only: "stop" is not in "unstop", "td" is not in "ltd". Chinese has no spaces, but
    # normalise() puts one between Latin and Chinese, so the same rule works for both.
    return re.compile(rf"(?<![a-z0-9]){re.escape(keyword)}(?![a-z0-9])")


def _is_known_word(word: str, tables: list[_KeywordTable]) -> bool:
    return word in NOT_TYPOS or word in WEAK_UNSUBSCRIBE or any(word in table for _, _, table in tables)


def _one_edit_apart(a: str, b: str) -> bool:
    """At most one insertion, deletion, substitution or swap of neighbours ("stpo" ~ "stop")."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        i = diffs[0]
        return len(diffs) == 2 and diffs[1] == i + 1 and a[i] == b[i + 1] and a[i + 1] == b[i]
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long[i]:
        i += 1
    return short[i:] == long[i + 1 :]
