"""Normalisation: every slip people make is mapped to one form before rules or model see the text.

``normalise("Ｓ.Ｔ.Ｏ.Ｐ!!")`` -> ``"stop"``, ``normalise("退 訂")`` -> ``"退订"``, ``pinyin("腿订")`` ->
``"tuiding"`` (the same as for 退订: a same-sound slip of the input method reads the same).

Kept pure Python and table driven so that it is fast (the webhook path, >5,000 replies/s a core):
traditional -> simplified is a per-character table read once from OpenCC's own dictionary (the full
OpenCC segmenter costs ~65 µs a message and changes nothing for short replies), pinyin is a
per-character table filled from ``pypinyin`` as characters are first seen.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from pathlib import Path

import opencc
from pypinyin import Style, lazy_pinyin

# Emoji that say "stop" by themselves, and the ones that say "yes"; every other emoji means nothing.
STOP_EMOJI = "🛑⛔🚫🔕📵🙅"
YES_EMOJI = "👍👌✅✔☑"
STOP_TOKEN = "xstopx"
YES_TOKEN = "xyesx"
_EMOJI_TOKENS = {ord(c): f" {STOP_TOKEN} " for c in STOP_EMOJI} | {
    ord(c): f" {YES_TOKEN} " for c in YES_EMOJI
}

_APOSTROPHES = re.compile("['’‘`´]")
# A space between a run of ASCII letters/digits and a run of anything else ("回复td退订" -> "回复 td 退订").
_SCRIPT_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[^\x00-\x7f])|(?<=[^\x00-\x7f])(?=[a-z0-9])")
# Chinese and Japanese are written without spaces: a space between two such characters is noise ("退 订").
_HAN = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_GAP = re.compile(rf"(?<=[{_HAN}]) (?=[{_HAN}])")
# Two or more single letters in a row were one word typed spaced or dotted ("s t o p", "T.D").
_SPACED_LETTERS = re.compile(r"(?<![a-z0-9])[a-z](?: [a-z](?![a-z0-9]))+")
_REPEATS = re.compile(r"(.)\1{2,}")  # "stoppppp" -> "stopp", "哈哈哈哈" stays, "!!!!" goes anyway
_NON_WORD = re.compile(r"[\W_]+")
_HAN_CHAR = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@functools.cache
def _t2s_table() -> dict[int, str]:
    path = Path(opencc.__file__).with_name("dictionary") / "TSCharacters.txt"
    table: dict[int, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and len(parts[0]) == 1:
            table[ord(parts[0])] = parts[1].split(" ")[0]
    # Variants OpenCC keeps as they are but that mean the same in a reply.
    table |= {ord("\u5443"): "呃", ord("係"): "系", ord("咗"): "咗"}
    return table


def _strip_accents(s: str) -> str:
    if s.isascii() or unicodedata.is_normalized("NFKD", s):  # Chinese has nothing to decompose
        return s
    decomposed = unicodedata.normalize("NFKD", s)
    return unicodedata.normalize("NFKC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def _join_letters(m: re.Match[str]) -> str:
    return m.group(0).replace(" ", "")


def normalise(text: str) -> str:
    """The one form rules and model read: NFKC, simplified, case-folded, no accents or punctuation."""
    s = unicodedata.normalize("NFKC", text)  # full-width "ＴＤ" -> "TD", "？" -> "?"
    if not s.isascii():
        s = s.translate(_EMOJI_TOKENS).translate(_t2s_table())  # "退訂" -> "退订"
    s = _strip_accents(s.casefold())  # "ARRÊT" -> "arret": accents are typed or not at random
    s = _APOSTROPHES.sub("", s)  # "don't" -> "dont"
    # Punctuation, brackets (【】[]()), symbols and emoji separate words and mean nothing more.
    # Line by line: letters on separate lines ("R\n\nT" under a pasted advert) are not one word.
    lines = (
        [_NON_WORD.sub(" ", line).strip() for line in s.split("\n")]
        if "\n" in s
        else [_NON_WORD.sub(" ", s).strip()]
    )
    s = " ".join(_SPACED_LETTERS.sub(_join_letters, line) for line in lines if line)
    if not s:
        return s
    if not s.isascii():
        s = _HAN_GAP.sub("", s)
        s = _SCRIPT_BOUNDARY.sub(" ", s)
    return _REPEATS.sub(r"\1\1", s)


# The sender's own opt-out instruction inside a pasted advert ("回T退订", "Reply STOP to opt out") is
# not the person's words: in a long message it becomes one neutral token, so that only a code the
# person added counts.
PASTED_LENGTH = 40
INSTRUCTION_TOKEN = "xinstrx"
_INSTRUCTION = re.compile(
    r"(?:拒收请回复?|退订请?回复?|回复?|发送?)\s?(?:td|t|n|r|qx|stop)\s?(?:退订|拒收)?"
    r"|(?:reply|txt|text|msg|send)\s(?:stop|help|end|start)(?:\s(?:to|for)\s(?:opt out|optout|end|cancel|stop|unsubscribe|quit|help|more info))?"
    r"|(?:stop|help)\s(?:to|for)\s(?:opt out|optout|end|cancel|stop|unsubscribe|quit|help)"
)


def strip_instructions(norm: str) -> str:
    if len(norm) < PASTED_LENGTH:
        return norm
    return " ".join(_INSTRUCTION.sub(f" {INSTRUCTION_TOKEN} ", norm).split())


# A long digit run (a phone or order number, a member id) is context, not meaning: beside words it is
# dropped, alone it is one placeholder, so that "退订，我的另一个号是13912345678" reads like "退订，我的
# 另一个号是" and the digits' many n-grams do not drown the words. Kept: the hotlines that mean something (12321 is the spam
# complaint line, 12315 the consumer one, 10086/10010/10000 the carriers).
NUMBER_TOKEN = "xnumx"
_DIGIT_RUN = re.compile(r"(?<![0-9])(?!(?:12321|12315|10086|10010|10000)(?![0-9]))[0-9]{5,}")


def model_view(norm: str, question: bool) -> tuple[str, str]:
    """What the model reads: the normalised text without the advert's own instruction, long digit
    runs as one placeholder, a trailing " ?" when the reply was a question, and the pinyin."""
    norm = strip_instructions(norm)
    if _DIGIT_RUN.search(norm):
        numbered = _DIGIT_RUN.sub(f" {NUMBER_TOKEN} ", norm).split()
        words = [w for w in numbered if w != NUMBER_TOKEN]
        # beside words the number says nothing (it must not pull towards "other" either); alone, it is
        # a number (codes and digits are "other")
        norm = " ".join(words or numbered)
    return (f"{norm} ?" if question else norm), pinyin(norm)


def _char_pinyin(char: str) -> str:
    if not _HAN_CHAR.match(char):
        return char
    readings = lazy_pinyin(char, style=Style.NORMAL, errors="ignore")
    return readings[0] if readings else char


class _PinyinTable(dict[int, str]):
    """A str.translate table filled as characters are first seen (pypinyin once per character)."""

    def __missing__(self, codepoint: int) -> str:
        value = self[codepoint] = _char_pinyin(chr(codepoint))
        return value


_PINYIN = _PinyinTable()


def pinyin(norm: str) -> str:
    """Toneless pinyin of a normalised text, no spaces: 退订, 腿订, "tui ding" and "tuiding" all read
    "tuiding" (people type pinyin with and without spaces)."""
    norm = norm.replace(" ", "")
    return norm if norm.isascii() else norm.translate(_PINYIN)
