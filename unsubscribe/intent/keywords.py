"""The tables the intent classifier reads: keywords, polite filler, look-alikes and phrase patterns.

Everything here is written in *normalised* form (see ``classifier.normalise``): NFKC, simplified
Chinese, case-folded, accents and apostrophes dropped ("don't" -> "dont", "ARRÊT" -> "arret"),
punctuation/brackets/emoji turned into single spaces, and a space between Latin and Chinese runs
("回复TD退订" -> "回复 td 退订"). Keep it that way when adding entries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

Intent = Literal["unsubscribe", "resubscribe", "help", "status", "other"]


class Where(IntEnum):
    """Where a keyword counts. Higher values include the lower ones."""

    # Only when it is the entire message: single letters ("T", "N", "R") are far too common as
    # parts of ordinary text, and even "T 谢谢" is not what the carriers' convention means.
    EXACT = 1
    # The entire message once polite filler is removed ("cancel please", "我要取消", "yes thanks"):
    # ordinary words such as "cancel", "end", "yes", "取消" mean something else inside a sentence
    # ("cancel my order", "the end", "取消订单").
    ALONE = 2
    # Distinctive enough to count anywhere in a longer message ("TD 谢谢", "please STOP").
    ANYWHERE = 3


# --- unsubscribe -------------------------------------------------------------------------------

UNSUBSCRIBE_KEYWORDS: dict[str, Where] = {
    # Chinese carriers' conventions (回复TD/T/N/R退订) and the plain words people reply with.
    "td": Where.ANYWHERE,
    "t": Where.EXACT,
    "n": Where.EXACT,
    "r": Where.EXACT,
    "退订": Where.ANYWHERE,
    "取消订阅": Where.ANYWHERE,
    "退出": Where.ANYWHERE,
    "拒收": Where.ANYWHERE,
    "取消": Where.ALONE,  # "取消订单" is about an order, not about marketing
    # CTIA / TCPA standard opt-out words, plus the usual variants.
    "stop": Where.ANYWHERE,  # "stop by", "don't stop" are removed first (see LOOKALIKES)
    "stopall": Where.ANYWHERE,
    "stop all": Where.ANYWHERE,
    "unsubscribe": Where.ANYWHERE,
    "unsub": Where.ANYWHERE,
    "optout": Where.ANYWHERE,
    "opt out": Where.ANYWHERE,  # also "OPT-OUT": the hyphen becomes a space
    "revoke": Where.ANYWHERE,
    "cancel": Where.ALONE,  # "cancel my order"
    "end": Where.ALONE,  # "the end of the month"
    "quit": Where.ALONE,  # "I quit my job"
    "remove": Where.ALONE,  # "remove me" is a phrase below; "remove the old one" is not
    # French (Canadian carriers honour it next to STOP).
    "arret": Where.ANYWHERE,
    "arretez": Where.ANYWHERE,
}

# Typos are only looked for in unsubscribe keywords: missing an opt-out is the top complaint in this
# domain, whereas re-subscribing somebody needs their explicit words, never a guess.
TYPO_MIN_LENGTH = 4  # "td", "end" have too many one-key neighbours to guess at
TYPO_ANYWHERE_MIN_LENGTH = 6  # inside a longer message only long words: "unsubscrbe me"

# Real words one edit away from a keyword; they are not typos ("shop" is not "stop").
NOT_TYPOS: frozenset[str] = frozenset(
    {
        "shop", "step", "atop", "stoop", "stomp", "slop", "stow",
        "quite", "quiz", "suit", "quid", "quilt",
        "cancer", "remote", "arrest", "revote",
    }
)  # fmt: skip

# A whole message this vague may be an opt-out, or may be an answer to something else: ask.
WEAK_UNSUBSCRIBE: frozenset[str] = frozenset(
    {
        "不要", "不用", "不需要", "不必", "够了", "烦", "烦死了", "别", "算了",
        "no", "nope", "nah", "no thanks", "not interested", "enough",
    }
)  # fmt: skip


# --- resubscribe -------------------------------------------------------------------------------

RESUBSCRIBE_KEYWORDS: dict[str, Where] = {
    # Note 取消退订 literally "cancel the unsubscribe": it means *re*-subscribe. It contains 退订,
    # which is why the longest match wins (see classifier._resolve_overlaps).
    "取消退订": Where.ANYWHERE,
    "重新订阅": Where.ANYWHERE,
    "恢复订阅": Where.ANYWHERE,
    "订阅": Where.ALONE,  # inside a message it is usually "取消订阅" or "订阅了什么"
    "恢复": Where.ALONE,
    "start": Where.ALONE,  # "I'll start tomorrow"
    "unstop": Where.ANYWHERE,
    "subscribe": Where.ALONE,
    "resubscribe": Where.ANYWHERE,
    # "resume everything": the words that lift an all-marketing opt-out (inbound.services)
    "恢复全部": Where.ANYWHERE,
    "全部恢复": Where.ANYWHERE,
    "resume": Where.ALONE,
    "resume all": Where.ANYWHERE,
}


# --- answers to a clarification ("reply TD to confirm") ---------------------------------------

# A bare yes is never a re-subscription: it means what the question we asked means.
CLARIFY_YES: frozenset[str] = frozenset(
    {
        "是", "是的", "对", "对的", "好", "好的", "确认", "确定", "嗯", "可以", "行", "要", "没错",
        "yes", "y", "yeah", "yep", "yup", "ok", "okay", "sure", "confirm", "confirmed", "correct",
    }
)  # fmt: skip
CLARIFY_NO: frozenset[str] = frozenset(
    # Not "N" (a carrier's opt-out code) nor 不要/不用 (they said that about the messages).
    {"不", "不是", "否", "没有", "不对", "no", "nope", "nah", "not"}
)  # fmt: skip


# --- status ------------------------------------------------------------------------------------

# "退订成功了吗", "did my stop work?", "am I unsubscribed": whether an opt-out took effect.
STATUS_QUESTION = re.compile(
    r"(退订|取消订阅)(成功|生效|好)?了(吗|没|么)|(退订|取消订阅)(成功|生效)(了)?(吗|没|么)?"
    r"|(是否|有没有)(退订|已退订)(成功)?|退订(进度|状态|结果)"
    r"|\b(am i|was i|have i been|is my number) (unsubscribed|opted out|removed)\b"
    r"|\bdid (my|the) (stop|unsubscribe|opt out|optout|td)( request)? (work|go through)\b"
    r"|\b(status of my|my) (unsubscribe|opt out|optout) (request|status)\b"
)
# "you still text me after I unsubscribed": a complaint, so an unsubscribe, not a status question.
STILL_COMING = re.compile(r"还(在|是|一直)?(发|收到)|仍然|依然|\bstill\b")


# --- help --------------------------------------------------------------------------------------

# A message made only of question marks is help too; normalisation removes "?", so the classifier
# checks for it before normalising.
HELP_KEYWORDS: dict[str, Where] = {
    "help": Where.ANYWHERE,
    "info": Where.ALONE,
    "帮助": Where.ANYWHERE,
    "客服": Where.ANYWHERE,
}


# --- polite filler -----------------------------------------------------------------------------

# Words that do not change what a short reply means: "STOP please", "TD 谢谢", "我要取消了".
POLITE_FILLER_EN: tuple[str, ...] = (
    "please", "pls", "plz", "thank you", "thanks", "thankyou", "thx", "ty",
    "ok", "okay", "now", "asap", "just", "hi", "hello", "hey", "sir", "madam",
)  # fmt: skip
POLITE_FILLER_ZH: tuple[str, ...] = (
    "谢谢", "谢", "您好", "你好", "麻烦", "请", "帮我", "我要", "我想", "好的",
    "一下", "了", "吧", "啊", "呀", "哦", "嗯", "呢", "嘛",
)  # fmt: skip


# --- negation and look-alikes ------------------------------------------------------------------

# Removed from the message before any keyword is looked for, so the "stop" in "stop by" or the
# 退订 in 不要退订 never counts. Only *imperative* negation: "我没有退订成功" (I didn't manage to
# unsubscribe) and "you won't stop texting me" are still complaints that want out.
LOOKALIKES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "negated",
        re.compile(
            r"(不要|不用|不想|不必|不需要|无需|别|不)(帮我|给我)?(取消退订|退订|取消订阅|退出|拒收|取消)"
        ),
    ),
    (
        "negated",
        re.compile(
            r"\b(dont|do not)( ever)? (stop|unsubscribe|unsub|cancel|opt out|optout|quit|end|remove)\b"
        ),
    ),
    # "stop" as a verb of movement or a noun, not as a request. Not "stop at": "stop at once!".
    ("look-alike", re.compile(r"\bstop (by|over|off|in)\b")),
    ("look-alike", re.compile(r"\b(bus|next|last|full|pit|one|non|first|truck) stop\b")),
    ("look-alike", re.compile(r"\bstop (sign|light|watch)\b")),
)


# --- plain-language phrases --------------------------------------------------------------------


@dataclass(frozen=True)
class Phrase:
    intent: Intent
    pattern: re.Pattern[str]
    confidence: float
    label: str


def _p(intent: Intent, pattern: str, confidence: float, label: str) -> Phrase:
    return Phrase(intent, re.compile(pattern), confidence, label)


PHRASES_ZH: tuple[Phrase, ...] = (
    # 别再发了 / 不要再给我发短信了 / 停止推送 / 请勿打扰 / 烦死了别发了
    _p(
        "unsubscribe",
        r"(不要|别|不许|不准|禁止|停止|请勿|勿)(再|继续)?(给我|向我|跟我|对我|和我)?(发|传|推送|打电话|打扰|骚扰|联系|烦)",
        0.85,
        "zh: stop sending",
    ),
    # 不想收到 / 不要再收到 / 不需要接收
    _p("unsubscribe", r"不(想|愿意|需要|希望|要)(再|继续)?(收到|接收|收|接到|看到)", 0.8, "zh: do not want"),
    _p("unsubscribe", r"不再(接收|收到|需要|订阅|使用)", 0.8, "zh: no longer"),
    _p(
        "unsubscribe",
        r"(停止|取消|关闭|退掉|关掉)(所有|全部)?(的)?(订阅|服务|短信|推送|营销|广告|通知|消息)",
        0.85,
        "zh: cancel service",
    ),
    _p(
        "unsubscribe",
        r"(从|把我|将我).{0,6}(名单|列表).{0,4}(删除|移除|去掉|删掉|移出)",
        0.8,
        "zh: remove me",
    ),
    _p("unsubscribe", r"(删除|删掉|移除)(我的)?(号码|手机号|电话|个人信息|信息)", 0.8, "zh: remove me"),
    _p("unsubscribe", r"(拉黑|屏蔽|黑名单)", 0.75, "zh: block"),
    # Abuse and complaints: somebody threatening to report the sender certainly wants out.
    _p("unsubscribe", r"(再发|还发|再打|再骚扰).{0,4}(投诉|举报|报警|起诉)", 0.9, "zh: complaint"),
    _p("unsubscribe", r"(投诉|举报|12321|报警|起诉|骚扰|垃圾短信|诈骗)", 0.8, "zh: complaint"),
    # Re-subscribing: only explicit words.
    _p("resubscribe", r"(重新|恢复|再次|继续)(订阅|接收|开通)", 0.85, "zh: subscribe again"),
    _p("help", r"(怎么|如何)(回事|办|操作|联系)|人工|咨询|什么意思|你们是谁|是谁", 0.75, "zh: question"),
)

PHRASES_EN: tuple[Phrase, ...] = (
    _p(
        "unsubscribe",
        r"\bstop (texting|txting|messaging|sending|contacting|calling|emailing|spamming|bothering|pestering)\b",
        0.85,
        "en: stop sending",
    ),
    _p(
        "unsubscribe",
        r"\b(dont|do not|never)( ever)? (text|txt|message|msg|sms|contact|call|email|send|spam|bother)\b",
        0.85,
        "en: do not text",
    ),
    _p(
        "unsubscribe",
        r"\b(remove|delete|drop|unsubscribe) me\b|\bopt me out\b|\btake me (off|out)\b",
        0.85,
        "en: remove me",
    ),
    _p("unsubscribe", r"\bremove (my|this) (number|phone|details|data|info)\b", 0.85, "en: remove me"),
    _p("unsubscribe", r"\b(no more|enough) (texts?|messages?|sms|spam|emails?)\b", 0.8, "en: no more"),
    _p(
        "unsubscribe",
        r"\b(dont|do not|no longer) want (these|this|your|any|them|to (get|receive))\b",
        0.8,
        "en: do not want",
    ),
    _p("unsubscribe", r"\b(leave me alone|go away)\b", 0.8, "en: leave me alone"),
    # The FCC 2024 rule counts any reasonable way of revoking; "wrong number" revokes for the number.
    _p("unsubscribe", r"\bwrong number\b", 0.75, "en: wrong number"),
    _p(
        "unsubscribe",
        r"\b(spam|spammers?|spamming|harass\w*|scam\w*|report (you|this)|sue you|lawsuit|lawyer|attorney|illegal|fcc|ftc)\b",
        0.8,
        "en: complaint",
    ),
    _p(
        "resubscribe",
        r"\b(re subscribe|subscribe me|sign me (back )?up|opt (me )?(back )?in|start (sending|texting) (me )?again)\b",
        0.85,
        "en: subscribe again",
    ),
    _p(
        "help",
        r"\b(help me|more info|information|customer service|support|how do i|what is this|who is this|who are you)\b",
        0.75,
        "en: question",
    ),
)

PHRASES: tuple[Phrase, ...] = PHRASES_ZH + PHRASES_EN
