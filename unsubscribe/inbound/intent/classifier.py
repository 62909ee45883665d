"""Reply-SMS intent: normalisation, then explainable rules for whole-message codes, then a model.

How a reply is read, in order (``IntentResult.matched`` names the step that decided):

1. only question marks ("?", "？？") -> help;
2. ``normalise()`` (full width, spaced/dotted letters, traditional -> simplified, accents, emoji);
   nothing left -> other;
3. a reply to our clarification question (``context="clarification"``): a short yes -> unsubscribe,
   a short no -> other (INTENT.md "Context"); a yes never lifts an opt-out;
4. the tenant's keywords, then the carrier/regulator codes (TD, T, N, R, 退订, STOP, START, HELP …)
   as the whole message, with polite words around them; the same-sound slips of 退订 (腿订, tui ding);
   one-key typos of the long codes ("stpo"); a long (pasted) message that starts or ends with a
   code the person added (the advert's own "回T退订" does not count). A bare code asked as a question ("STOP?"), or a bare
   "no" / "不要" without our question -> unsubscribe, but clarify;
   A reply whose first clause is an opt-out code, with context after a separator ("退订，我的另一个号是
   139…") -> unsubscribe;
5. everything else: the model (character n-grams of the text and of its pinyin, long digit runs left
   out, a linear model, calibrated on dev). Certain -> act; unsure between unsubscribe and the rest, or a
   guess whose runner-up is unsubscribe -> clarify. A re-subscription lifts an opt-out, so the model is
   not enough: without a resume word (``rules.resume_cue``) it is not one at all, and it acts only when
   certain (bar tuned on dev for 99 % precision) and not asked as a question ("退订以后还能恢复吗" is
   help); an unsure one restores nothing (action none).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from . import model, rules
from .normalise import INSTRUCTION_TOKEN, PASTED_LENGTH, model_view, normalise, pinyin, strip_instructions

Intent = model.Label
Action = Literal["act", "clarify", "reply_help", "reply_status", "none"]
CLARIFICATION = "clarification"

CODE_CONFIDENCE = 0.99  # the whole message is a code
POLITE_CODE_CONFIDENCE = 0.95  # a code with polite words or emoji around it
SOUND_CONFIDENCE = 0.93  # a same-sound slip of 退订
TYPO_CONFIDENCE = 0.9  # one key away from a long code
QUESTION_CONFIDENCE = 0.55  # "STOP?": probably, but ask
CONTEXT_CONFIDENCE = 0.95  # yes / no to our clarification question
TENANT_IN_MESSAGE_CONFIDENCE = 0.9
WEAK_CONFIDENCE = 0.5  # "no", "不要" without our question: maybe an opt-out, so ask
BARE_YES_CONFIDENCE = 0.9  # "yes", "好的" without our question: nothing to act on (never a resubscription)


@dataclass(frozen=True)
class IntentResult:
    intent: Intent
    confidence: float
    action: Action
    matched: str  # the rule, or "model", that decided: shown to the tenant's staff


_REPLY_ACTION: dict[str, Action] = {"help": "reply_help", "status": "reply_status", "other": "none"}


def _decided(intent: Intent, confidence: float, matched: str, *, unsure: bool = False) -> IntentResult:
    if intent in ("unsubscribe", "resubscribe"):
        action: Action = "clarify" if unsure else "act"
    else:
        action = _REPLY_ACTION[intent]
    return IntentResult(intent, confidence, action, matched)


def classify(
    text: str,
    *,
    extra_unsubscribe_keywords: Iterable[str] = (),
    context: str | None = None,
    extra_resubscribe_keywords: Iterable[str] = (),
) -> IntentResult:
    """Classify one inbound reply. The extra keywords are the tenant's own, matched like the codes;
    ``context="clarification"`` when the last message we sent this number asked to confirm a stop."""
    compact = unicodedata.normalize("NFKC", text).strip()
    if compact and set(compact) <= {"?", " "}:
        return _decided("help", CODE_CONFIDENCE, "code '?'")
    question = "?" in compact

    norm = normalise(text)
    if not norm:
        return _decided("other", 1.0, "empty (no words)")
    core = rules.core(norm)
    hit = (
        _yes_or_no(norm, core, context)
        or _tenant_keyword(norm, core, extra_unsubscribe_keywords, extra_resubscribe_keywords)
        or _code(norm, core, question)
        or (None if question else _pasted_code(norm))
    )
    if hit is not None:
        return hit
    if not question and not rules.asks(norm) and rules.leading_code(compact):
        return _decided("unsubscribe", POLITE_CODE_CONFIDENCE, "a code as the first clause, context after it")
    return _model(norm, question)


def _yes_or_no(norm: str, core: str, context: str | None) -> IntentResult | None:
    """A yes or a no: an answer to our clarification, or (without one) nothing or a maybe."""
    if context == CLARIFICATION:
        if rules.is_yes(norm, core):
            return _decided("unsubscribe", CONTEXT_CONFIDENCE, f"'{norm}' answers yes to our clarification")
        if rules.is_no(norm, core):
            return _decided("other", CONTEXT_CONFIDENCE, f"'{norm}' answers no to our clarification")
    elif rules.is_yes(norm, core):
        return _decided("other", BARE_YES_CONFIDENCE, f"a bare yes ('{norm}') without a question of ours")
    elif norm in rules.WEAK_UNSUBSCRIBE or core in rules.WEAK_UNSUBSCRIBE:
        return _decided(
            "unsubscribe", WEAK_CONFIDENCE, f"a bare '{norm}' without a question of ours: ask", unsure=True
        )
    return None


def _tenant_keyword(
    norm: str, core: str, unsubscribe_keywords: Iterable[str], resubscribe_keywords: Iterable[str]
) -> IntentResult | None:
    tables: tuple[tuple[Intent, Iterable[str]], ...] = (
        ("unsubscribe", unsubscribe_keywords),
        ("resubscribe", resubscribe_keywords),
    )
    for intent, keywords in tables:
        words, anywhere = rules.tenant_table(tuple(keywords))
        if norm in words or core in words:
            return _decided(intent, CODE_CONFIDENCE, f"tenant keyword '{core if core in words else norm}'")
        if anywhere is not None and (m := anywhere.search(norm)):
            return _decided(intent, TENANT_IN_MESSAGE_CONFIDENCE, f"tenant keyword '{m.group(0)}' in message")
    return None


def _pasted_code(norm: str) -> IntentResult | None:
    """A long message (a pasted advert) that starts or ends with a code the person added: "TD【某店】…"."""
    if len(norm) < 2 * PASTED_LENGTH:
        return None
    stripped = strip_instructions(norm)
    if INSTRUCTION_TOKEN not in stripped and "http" not in stripped:
        return None  # a long sentence of the person's own, not an advert: the model reads it
    words = stripped.split()
    for edge in (words[0], words[-1], " ".join(words[:2]), " ".join(words[-2:])):
        if edge in rules.PASTED_EDGE:
            return _decided("unsubscribe", POLITE_CODE_CONFIDENCE, f"code '{edge}' added to a pasted message")
    return None


def _code(norm: str, core: str, question: bool) -> IntentResult | None:
    polite = core != norm
    tables: tuple[tuple[Intent, Collection[str]], ...] = (
        ("unsubscribe", rules.UNSUBSCRIBE_CODES),
        ("resubscribe", rules.RESUBSCRIBE_CODES),
        ("help", rules.HELP_CODES),
    )
    for intent, codes in tables:
        if core in codes:
            label = f"code '{core}'" + (" with polite words" if polite else "")
            if question and intent != "help":
                return _decided(intent, QUESTION_CONFIDENCE, f"{label}, but asked as a question", unsure=True)
            return _decided(intent, POLITE_CODE_CONFIDENCE if polite else CODE_CONFIDENCE, label)
    if question:
        return None
    sound = pinyin(core)
    if sound in rules.UNSUBSCRIBE_PINYIN or rules.sounds_like_tuiding(core):
        return _decided("unsubscribe", SOUND_CONFIDENCE, f"'{core}' sounds like 退订 (tuiding)")
    if core in rules.TD_NEIGHBOURS:
        return _decided(
            "unsubscribe", QUESTION_CONFIDENCE, f"'{core}' is one key from code 'td': ask", unsure=True
        )
    if " " not in core and (code := rules.typo_of(core)):
        return _decided("unsubscribe", TYPO_CONFIDENCE, f"'{core}' looks like a typo of code '{code}'")
    return None


UNSURE = 0.5  # a top answer below this is a guess: if the runner-up is unsubscribe, ask


def _model(norm: str, question: bool) -> IntentResult:
    params = model.shipped()
    probs = model.probabilities(params, *model_view(norm, question))
    t = params.thresholds
    # (a resubscribe share under 1 % cannot win: it is dropped without looking for the word, which
    # keeps the common path fast)
    if probs[1] > 0 and (probs[1] < 0.01 or not rules.resume_cue(norm)):
        # No resume / subscribe / restore word: whatever the model says, this is not a re-subscription
        # ("稍后回复", "退订以后还能恢复吗" without a resume word): read it as the best of the rest.
        rest = 1.0 - probs[1]
        probs = [p / rest if i != 1 else 0.0 for i, p in enumerate(probs)] if rest > 0 else probs
    ranked = sorted(range(len(probs)), key=probs.__getitem__, reverse=True)
    best, second = ranked[0], ranked[1]
    intent = model.LABELS[best]
    confidence = probs[best]
    p_unsub = probs[0]
    matched = f"model ({intent} {confidence:.2f})"
    if intent == "unsubscribe":
        return _decided(intent, confidence, matched, unsure=confidence < t["act_unsubscribe"])
    if intent == "resubscribe":
        # A wrong re-subscription lifts an opt-out: act only on a clear, certain request with a resume
        # word, never on a question ("can I opt back in later?" is about the procedure).
        if confidence >= t["act_resubscribe"] and not question and not rules.asks(norm):
            return _decided(intent, confidence, matched)
        if p_unsub >= t["guard"]:
            return IntentResult(
                "unsubscribe", p_unsub, "clarify", f"{matched}, unsure; unsubscribe {p_unsub:.2f}: ask"
            )
        # unsure: nothing is restored (a clarification would ask about stopping, not resuming)
        return IntentResult(intent, confidence, "none", f"{matched}, unsure: nothing restored")
    if p_unsub >= t["guard"] or (confidence < UNSURE and second == 0):
        # never silence on a likely opt-out: one clarification question instead
        return IntentResult(intent, confidence, "clarify", f"{matched}, unsubscribe {p_unsub:.2f}: ask")
    return _decided(intent, confidence, matched)
