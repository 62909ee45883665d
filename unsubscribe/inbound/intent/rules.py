"""The explainable layer: the carrier and regulator codes, and the tenant's own keywords, matched
against the whole (normalised) message. Anything they do not decide goes to the model.

Everything is written in normalised form (see ``normalise.py``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from pypinyin import Style, pinyin

from .normalise import STOP_TOKEN, YES_TOKEN, normalise

# The opt-out codes (China: 回复TD/T/N/R退订; CTIA/TCPA: STOP and its companions; Canada: ARRET).
UNSUBSCRIBE_CODES: frozenset[str] = frozenset(
    {
        "td", "t", "n", "r", "退订", "取消", "stop", "stopall", "stop all", "unsubscribe", "unsub", "cancel",
        "end", "quit", "revoke", "optout", "opt out", "remove", "arret", "stopp", STOP_TOKEN,
        # the carriers' own: QX is 取消 (qu xiao) by its initials, QXDG 取消订购 (cancel the order of
        # a value-added service); 0000 is not here: a bare code or number is "other" (INTENT.md)
        "qx", "qxdg", "取消订购",
        # the common cancel / unsubscribe words of other languages, as the whole reply (CANCEL in any
        # language): French, Italian, Spanish, Portuguese, German, Dutch, Japanese, Korean, Russian
        "annuler", "desabonner", "desinscrire", "desinscription", "disdire", "disdici", "disdetta",
        "disiscrivimi", "cancellami", "cancelar", "baja", "darme de baja", "descadastrar", "abbestellen",
        "abmelden", "kundigen", "afmelden", "uitschrijven", "配信停止", "ストップ", "수신거부", "отписаться",
    }
)  # fmt: skip
SINGLE_LETTER_CODES = frozenset({"t", "n", "r"})
# What counts at the start or end of a pasted advert, besides the multi-letter codes.
PASTED_EDGE = (UNSUBSCRIBE_CODES - SINGLE_LETTER_CODES - {"end", "remove", "cancel", "quit"}) | {
    "remove me", "stop texting", "stop sending", "unsubscribe me", "opt me out", "别再发了", "别发了", "不要再发了",
    "拒收", "取消订阅", "我要退订", "请退订",
}  # fmt: skip
RESUBSCRIBE_CODES: frozenset[str] = frozenset(
    {"start", "unstop", "subscribe", "重新订阅", "取消退订", "恢复接收", "重新开通", "恢复订阅"}
)
HELP_CODES: frozenset[str] = frozenset({"help", "info", "帮助", "求助", "客服", "人工客服", "转人工"})

# A whole reply this vague, without our question, may be an opt-out or an answer to something else: ask.
WEAK_UNSUBSCRIBE: frozenset[str] = frozenset(
    {
        "no",
        "nope",
        "nah",
        "no no",
        "不要",
        "不要了",
        "不用",
        "不用了",
        "不需要",
        "不必",
        "算了",
        "别",
        "唔要",
        "唔使",
        "non",
        "nein",
    }
)

# Same-sound slips of 退订, compared on the pinyin of the whole message ("腿订", "退定", "tui ding").
UNSUBSCRIBE_PINYIN: frozenset[str] = frozenset({"tuiding"})

# Words that do not change what a short reply means: "STOP please", "TD 谢谢", "我要取消".
POLITE_EN = (
    "please", "pls", "plz", "thank you", "thanks", "thankyou", "thx", "ty", "ok", "okay", "now", "asap",
    "just", "hi", "hello", "hey", "sir", "madam", "again", "sorry", "excuse me", "dear", "hi there", "lol",
    "guys", "man", "bro", "ugh", "omg", "umm", "um",
)  # fmt: skip
POLITE_ZH = (
    "谢谢", "谢", "感谢", "您好", "你好", "麻烦", "请", "帮我", "我要", "我想", "好的", "一下", "了", "吧", "啊", "呀",
    "哦", "嗯", "呢", "嘛", "唔该", "多谢", "啦", "亲", "拜托了", "拜托", "喂", "那个", "求求你们", "麻烦你们", "您", "哈",
    "喔", "呗", "辛苦了", "配合", "我说", "客服", "掉", "喇", "吖", "咁", "马上", "立刻", "现在", "赶紧", "就",
)  # fmt: skip

# A reply to our clarification question ("reply TD to confirm you want to stop"): yes or no.
CONTEXT_YES: frozenset[str] = frozenset(
    {
        "是", "是的", "对", "对的", "好", "好的", "确认", "确定", "确认退订", "嗯", "嗯嗯", "行", "可以", "要", "没错", "系",
        "系的", "得", "好呀", "对呀", "是啊", "yes", "y", "ye", "yea", "yeah", "yep", "yup", "ok", "okay", "k",
        "sure", "confirm", "confirmed", "correct", "right", "yes stop", "yess", "absolutely", "definitely",
        "please", "bitte", "sim", "是呀", "系呀", "好的好的", "si", "oui", "ja", "hai", "はい", "ええ",
        "네", "예", "응", "co", "vang", "da", YES_TOKEN,
    }
)  # fmt: skip
CONTEXT_NO: frozenset[str] = frozenset(
    {
        "不", "不是", "不是的", "不用", "不用了", "否", "没有", "不对", "别", "算了", "no", "nope", "nah", "not",
        "dont", "non", "nein", "いいえ", "아니요", "아니", "khong", "唔系", "唔使", "no thanks", "no thank you",
    }
)  # fmt: skip


def is_yes(norm: str, core: str) -> bool:
    """A short yes: "是的", "yes", "yeah sure", "ok 👍" (every word a yes word)."""
    return _all_in(norm, core, CONTEXT_YES)


def is_no(norm: str, core: str) -> bool:
    return _all_in(norm, core, CONTEXT_NO)


def _all_in(norm: str, core: str, words: frozenset[str]) -> bool:
    if norm in words or core in words:
        return True
    parts = core.split()
    return 1 < len(parts) <= 4 and all(p in words for p in parts)


def _pattern(words: Iterable[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])")


_POLITE = re.compile(
    rf"(?<![a-z0-9])(?:{'|'.join(map(re.escape, sorted(POLITE_EN, key=len, reverse=True)))})(?![a-z0-9])"
    rf"|{'|'.join(map(re.escape, sorted(POLITE_ZH, key=len, reverse=True)))}"
)


def strip_polite(norm: str) -> str:
    return " ".join(_POLITE.sub(" ", norm).split())


def core(norm: str) -> str:
    """The message without polite words, and a code typed twice read once ("stop stop" -> "stop")."""
    stripped = strip_polite(norm) or norm
    words = stripped.split()
    if len(words) > 1 and len(set(words)) == 1:
        return words[0]
    if not stripped.isascii() and len(stripped) % 2 == 0 and stripped[: len(stripped) // 2] * 2 == stripped:
        return stripped[: len(stripped) // 2]  # "退订退订"
    return stripped


def one_edit_apart(a: str, b: str) -> bool:
    """At most one insertion, deletion, substitution or swap of neighbours ("stpo" ~ "stop")."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and a[diffs[0]] == b[diffs[1]]
            and a[diffs[1]] == b[diffs[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long[i]:
        i += 1
    return short[i:] == long[i + 1 :]


# Typos are only looked for in long unsubscribe codes: "stpo", "unsubscibe"; shorter ones have too
# many real words one key away. Real words one edit from a code are not typos.
TYPO_CODES = ("stop", "unsubscribe", "cancel", "remove", "revoke", "optout", "stopall", "tuiding")
NOT_TYPOS = frozenset(
    {"shop", "step", "atop", "stoop", "stomp", "slop", "stow", "cancer", "remote", "arrest", "revote", "stops", "top",
     "sto", "store", "story", "stock", "spot", "post", "pots", "tops", "opts", "removed", "canceled", "cancels"}
)  # fmt: skip


# "TD" typed one key off on a QWERTY keyboard, as the whole reply: probably TD, so ask.
_NEAR = {"t": "ryfg5", "d": "sefcxr"}
TD_NEIGHBOURS = frozenset(
    {a + "d" for a in _NEAR["t"]} | {"t" + b for b in _NEAR["d"]} | {"dt", "tdd", "ttd"}
)


def typo_of(word: str) -> str | None:
    if not word.isalpha() or not word.isascii() or word in NOT_TYPOS or len(word) < 4:
        return None
    for code in TYPO_CODES:
        if one_edit_apart(word, code):
            return code
    return None


# --- the tenant's keywords ------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def tenant_table(keywords: tuple[str, ...]) -> tuple[frozenset[str], re.Pattern[str] | None]:
    """Built once per keyword set (a tenant change), not per message: the whole-message words, and a
    pattern for the ones distinctive enough to count inside a sentence (4+ letters, or Chinese)."""
    words = {normalise(k) for k in keywords} - {""}
    anywhere = {w for w in words if len(w) >= 4 or (not w.isascii() and len(w) >= 2)}
    return frozenset(words), (_pattern(anywhere) if anywhere else None)


@functools.lru_cache(maxsize=4096)
def _readings(char: str) -> frozenset[str]:
    return frozenset(pinyin(char, style=Style.NORMAL, heteronym=True, errors="ignore")[0] or ())


def sounds_like_tuiding(core: str) -> bool:
    """Two characters that can be read tui + ding (忒订: 忒 reads te or tui): an input-method slip of 退订."""
    if len(core) != 2 or core.isascii():
        return False
    try:
        return "tui" in _readings(core[0]) and "ding" in _readings(core[1])
    except IndexError:
        return False


# --- what a re-subscription must say --------------------------------------------------------------

# A re-subscription lifts an opt-out: the model alone is never enough. The reply must also carry a
# resume / subscribe / restore word in some language ("恢复接收", "opt me back in", "reanudar"); a reply
# without one ("稍后回复", "我想订餐") is not a re-subscription whatever the model says. Written in
# normalised form (no accents, simplified, case-folded); a necessary cue, not a sufficient one.
_RESUME_CUE = re.compile(
    r"(?<![a-z])(?:start|unstop|resubscri|re subscri|subscri|opt(?:ed)? (?:me )?(?:back )?in|optin|opt in"
    r"|resum|restor|restart|reactivat|re activat|reenabl|re enabl|turn \w+ (?:\w+ )?back on|back on"
    r"|back in|back up|add me|put me back|undo|rejoin|again|continue|keep sending|sign me"
    r"|alta|reanud|suscrib|volver|reabonn|reactiv|abonn|wieder|anmeld|fortsetz|riattiv|iscriv|voltar"
    r"|assin|ativar|dang ky|ky lai|reanu+dar|al+ta|nhan tin lai|gui lai|podpis|подпис|back|changed my mind|reinstat|cancel my opt"
    r"|mistake|accident|by error|por error|vuelvan|reinscri|st+a+r+t|su[bs]+c?r?i|reus?me|unsop|reatci)"
    r"|恢复|重新|退订撤回|撤回退订|撤销退订|取消退订|取消刚才的退订|退订取消|开通|订阅|继续|加回|加返|再发|再收|还要收|还想|又想"
    r"|想再|想收|再开|再登录|登录|开启|作废|撤销|撤回|误|错了|回错|手滑|不小心|给我发|发给我|加回|加进|재구독|다시|구독|수신 동의|재개"
)


def resume_cue(norm: str) -> bool:
    return _RESUME_CUE.search(norm) is not None


# A question about re-subscribing is about the procedure (help), not a request: "退订以后还能恢复吗",
# "can I opt back in later?". Chinese questions often have no question mark, only a particle.
_ASKS = re.compile(
    r"(?:吗|么|呢|不|没)$|能不能|可不可以|能否|是否|还能|还可以|可以吗|怎么|如何|咋|会不会"
    r"|(?<![a-z])(?:can i|could i|how do|how can|how to|is it possible|will i|if i|what if|do i need)(?![a-z])"
)


def asks(norm: str) -> bool:
    return _ASKS.search(norm) is not None


# A reply whose first clause is an unmistakable opt-out code, the rest being context after a
# separator: "退订，我的另一个号是139…，订单号…", "TD. my other number is …". The numbers and names
# after it do not change what the person asked. Not "stop" ("Stop, you're killing me") and not a code
# run into a word ("退订明天的酒店" is a booking): the separator is required.
_LEADING_CODE = re.compile(
    r"^\W*(?:请|麻烦|我要|帮我)?(?:退订|退訂|td|t\.d\.?|unsubscribe|unsub|optout|opt out|拒收|取消订阅|取消訂閱|qx|qxdg)"
    r"\s*[，,。.!！;；:：、]+\s*\S",
    re.IGNORECASE,
)


def leading_code(text: str) -> bool:
    return _LEADING_CODE.match(text) is not None
