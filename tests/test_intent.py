"""The unsubscribe-intent classifier (issue 5): labelled examples in both languages, the confidence
tiers, tenant keywords, and the ``classify_intent`` command's JSON-lines contract.

classify() is pure, so none of this needs the database.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from unsubscribe.intent import CLARIFY_THRESHOLD, IntentResult, classify, normalise

UNSUB, RESUB, HELP, OTHER = "unsubscribe", "resubscribe", "help", "other"

# (message, expected intent, expected action). Every row must pass: see test_accuracy_report.
LABELLED: list[tuple[str, str, str]] = [
    # --- conventions, the whole message is the keyword ----------------------------------------
    ("TD", UNSUB, UNSUB),
    ("T", UNSUB, UNSUB),
    ("退订", UNSUB, UNSUB),
    ("R", UNSUB, UNSUB),
    ("N", UNSUB, UNSUB),
    ("STOP", UNSUB, UNSUB),
    ("STOPALL", UNSUB, UNSUB),
    ("STOP ALL", UNSUB, UNSUB),
    ("UNSUBSCRIBE", UNSUB, UNSUB),
    ("UNSUB", UNSUB, UNSUB),
    ("CANCEL", UNSUB, UNSUB),
    ("END", UNSUB, UNSUB),
    ("QUIT", UNSUB, UNSUB),
    ("REVOKE", UNSUB, UNSUB),
    ("OPTOUT", UNSUB, UNSUB),
    ("OPT-OUT", UNSUB, UNSUB),
    ("OPT OUT", UNSUB, UNSUB),
    ("REMOVE", UNSUB, UNSUB),
    ("ARRET", UNSUB, UNSUB),
    ("ARRÊT", UNSUB, UNSUB),
    ("取消", UNSUB, UNSUB),
    ("退出", UNSUB, UNSUB),
    ("拒收", UNSUB, UNSUB),
    ("td", UNSUB, UNSUB),
    ("Stop", UNSUB, UNSUB),
    ("START", RESUB, RESUB),
    ("UNSTOP", RESUB, RESUB),
    ("YES", OTHER, "none"),  # a bare yes is not a re-subscription (INTENT.md: context)
    ("订阅", RESUB, RESUB),
    ("重新订阅", RESUB, RESUB),
    ("恢复", RESUB, RESUB),
    ("取消退订", RESUB, RESUB),  # "cancel the unsubscribe" = subscribe again
    ("HELP", HELP, HELP),
    ("INFO", HELP, HELP),
    ("帮助", HELP, HELP),
    ("客服", HELP, HELP),
    ("?", HELP, HELP),
    ("？", HELP, HELP),
    # --- normalisation: full width, brackets, punctuation, case, whitespace, traditional -------
    ("ＴＤ", UNSUB, UNSUB),
    ("ｓｔｏｐ", UNSUB, UNSUB),
    ("ＳＴＯＰ　ＡＬＬ", UNSUB, UNSUB),
    ("【退订】", UNSUB, UNSUB),
    ("[TD]", UNSUB, UNSUB),
    ("(stop)", UNSUB, UNSUB),
    ("Stop!!!", UNSUB, UNSUB),
    ("  td  ", UNSUB, UNSUB),
    ("TD。", UNSUB, UNSUB),
    ("退訂", UNSUB, UNSUB),
    ("退訂，謝謝", UNSUB, UNSUB),
    ("取消退訂", RESUB, RESUB),
    ("別再發了", UNSUB, UNSUB),
    ("STOP 😡", UNSUB, UNSUB),
    # --- typos a key away ----------------------------------------------------------------------
    ("stopp", UNSUB, UNSUB),
    ("STPO", UNSUB, UNSUB),
    ("unsubscrbe", UNSUB, UNSUB),
    ("unsubscibe", UNSUB, UNSUB),
    ("Unsubcribe", UNSUB, UNSUB),
    ("cancle", UNSUB, UNSUB),
    ("remvoe", UNSUB, UNSUB),
    ("unsubscrbe me", UNSUB, UNSUB),
    ("shop", OTHER, "none"),  # a real word, not a typo of "stop"
    ("quite", OTHER, "none"),
    # --- keywords inside longer messages -------------------------------------------------------
    ("TD 谢谢", UNSUB, UNSUB),
    ("TD谢谢", UNSUB, UNSUB),
    ("please STOP", UNSUB, UNSUB),
    ("退订，谢谢", UNSUB, UNSUB),
    ("我要退订", UNSUB, UNSUB),
    ("帮我退订一下谢谢", UNSUB, UNSUB),
    ("回复TD退订", UNSUB, UNSUB),
    ("我已经退订了，为什么还在发", UNSUB, UNSUB),
    ("我没有退订成功，还在发", UNSUB, UNSUB),  # "didn't manage to" is not a negated request
    ("stop all messages", UNSUB, UNSUB),
    ("Stop at once!", UNSUB, UNSUB),
    ("Stop. Full stop.", UNSUB, UNSUB),
    ("cancel please", UNSUB, UNSUB),
    ("我要取消", UNSUB, UNSUB),
    ("取消退订，谢谢", RESUB, RESUB),
    ("我要重新订阅", RESUB, RESUB),
    ("Yes please", OTHER, "none"),
    ("UNSTOP please", RESUB, RESUB),
    ("help, what is this?", HELP, HELP),
    ("转人工客服", HELP, HELP),
    # --- plain language, Chinese ---------------------------------------------------------------
    ("别再发了", UNSUB, UNSUB),
    ("别发了", UNSUB, UNSUB),
    ("不要再给我发短信了", UNSUB, UNSUB),
    ("不想收到", UNSUB, UNSUB),
    ("我不想再收到你们的短信了", UNSUB, UNSUB),
    ("烦死了别发了", UNSUB, UNSUB),
    ("不要再打电话了", UNSUB, UNSUB),
    ("请勿打扰", UNSUB, UNSUB),
    ("停止推送", UNSUB, UNSUB),
    ("取消所有订阅", UNSUB, UNSUB),
    ("不再接收", UNSUB, UNSUB),
    ("把我从名单里删除", UNSUB, UNSUB),
    ("别再傳簡訊給我", UNSUB, UNSUB),
    ("恢复订阅", RESUB, RESUB),
    ("我想重新接收短信", RESUB, RESUB),
    # --- plain language, English ---------------------------------------------------------------
    ("please stop texting me", UNSUB, UNSUB),
    ("stop sending me messages", UNSUB, UNSUB),
    ("Stop spamming me", UNSUB, UNSUB),
    ("don't text me anymore", UNSUB, UNSUB),
    ("Don’t text me anymore", UNSUB, UNSUB),
    ("do not contact me", UNSUB, UNSUB),
    ("remove me from your list", UNSUB, UNSUB),
    ("take me off", UNSUB, UNSUB),
    ("take me off your list please", UNSUB, UNSUB),
    ("opt me out", UNSUB, UNSUB),
    ("Please remove my number", UNSUB, UNSUB),
    ("I don't want these messages", UNSUB, UNSUB),
    ("no more texts please", UNSUB, UNSUB),
    ("leave me alone", UNSUB, UNSUB),
    ("wrong number", UNSUB, UNSUB),
    ("you won't stop texting me", UNSUB, UNSUB),
    ("Can you stop texting me?", UNSUB, UNSUB),  # a clear request, even as a question
    ("Arrêtez", UNSUB, UNSUB),
    ("subscribe me again", RESUB, RESUB),
    ("sign me back up", RESUB, RESUB),
    ("who is this?", HELP, HELP),
    ("help me please", HELP, HELP),
    # --- negation and look-alikes --------------------------------------------------------------
    ("不要退订", OTHER, "none"),
    ("不退订", OTHER, "none"),
    ("别退订我", OTHER, "none"),
    ("不要取消退订", OTHER, "none"),
    ("I'll stop by later", OTHER, "none"),
    ("stop by the store", OTHER, "none"),
    ("don't stop", OTHER, "none"),
    ("bus stop", OTHER, "none"),
    ("one stop shop", OTHER, "none"),
    ("cancel my order", OTHER, "none"),
    ("I want to cancel my order", OTHER, "none"),
    ("取消订单", OTHER, "none"),
    ("see you at the end", OTHER, "none"),
    ("I quit my job", OTHER, "none"),
    ("T 谢谢", OTHER, "none"),  # a bare T counts only as the whole message
    ("回复T", OTHER, "none"),
    ("I'll start tomorrow", OTHER, "none"),
    # --- abuse and complaints ------------------------------------------------------------------
    ("再发就投诉", UNSUB, UNSUB),
    ("再发我就举报", UNSUB, UNSUB),
    ("骚扰", UNSUB, UNSUB),
    ("投诉你们", UNSUB, UNSUB),
    ("垃圾短信", UNSUB, UNSUB),
    ("12321举报", UNSUB, UNSUB),
    ("this is spam", UNSUB, UNSUB),
    ("I will report you to the FCC", UNSUB, UNSUB),
    # --- weak signals: ask ---------------------------------------------------------------------
    ("stop it?", UNSUB, "clarify"),
    ("STOP?", UNSUB, "clarify"),
    ("TD?", UNSUB, "clarify"),
    ("不要", UNSUB, "clarify"),
    ("不要了", UNSUB, "clarify"),
    ("no", UNSUB, "clarify"),
    ("No thanks", UNSUB, "clarify"),
    ("not interested", UNSUB, "clarify"),
    ("START?", RESUB, "clarify"),
    ("退订还是取消退订", UNSUB, "clarify"),  # both directions at once
    # --- nothing to act on ---------------------------------------------------------------------
    ("", OTHER, "none"),
    ("   ", OTHER, "none"),
    ("😀😀", OTHER, "none"),
    ("👍", OTHER, "none"),
    ("hello", OTHER, "none"),
    ("ok", OTHER, "none"),
    ("好的谢谢", OTHER, "none"),
    ("明天下午三点见", OTHER, "none"),
    ("what time do you open", OTHER, "none"),
]


# The contract's action names (issue 12): "act" for unsubscribe/resubscribe, "reply_help" for help.
NEW_ACTION = {UNSUB: "act", RESUB: "act", HELP: "reply_help"}


@pytest.mark.parametrize(("text", "intent", "action"), LABELLED)
def test_labelled_examples(text: str, intent: str, action: str) -> None:
    result = classify(text)
    assert (result.intent, result.action) == (intent, NEW_ACTION.get(action, action)), result.matched
    assert 0.0 <= result.confidence <= 1.0
    assert result.matched


def test_accuracy_report(capsys: pytest.CaptureFixture[str]) -> None:
    """The whole table at once, with a per-intent report (shown with ``pytest -s`` or on failure)."""
    wrong: list[str] = []
    per_intent: dict[str, list[int]] = {}
    for text, intent, action in LABELLED:
        result = classify(text)
        ok = (result.intent, result.action) == (intent, NEW_ACTION.get(action, action))
        per_intent.setdefault(intent, [0, 0])[0] += ok
        per_intent[intent][1] += 1
        if not ok:
            wrong.append(f"  {text!r}: expected {intent}/{action}, got {result}")
    correct = len(LABELLED) - len(wrong)
    lines = [f"intent accuracy: {correct}/{len(LABELLED)} = {correct / len(LABELLED):.1%}"]
    lines += [f"  {name:<12} {ok}/{total}" for name, (ok, total) in sorted(per_intent.items())]
    print("\n".join(lines + wrong))
    assert len(LABELLED) >= 80
    assert not wrong, "\n".join(wrong)


# --- confidence tiers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        # exact whole-message keyword
        ("TD", 0.95, 1.0),
        ("【退订】", 0.95, 1.0),
        ("取消退订", 0.95, 1.0),
        ("HELP", 0.95, 1.0),
        # keyword inside a longer message
        ("TD 谢谢", 0.75, 0.85),
        ("please STOP", 0.75, 0.85),
        ("我已经退订了", 0.75, 0.85),
        # typo
        ("stopp", 0.65, 0.75),
        ("unsubscibe", 0.65, 0.75),
        # plain-language phrases
        ("别再发了", 0.75, 0.9),
        ("please stop texting me", 0.75, 0.9),
        ("再发就投诉", 0.75, 0.95),
        # weak: below the threshold
        ("不要", 0.0, CLARIFY_THRESHOLD - 0.01),
        ("stop it?", 0.0, CLARIFY_THRESHOLD - 0.01),
    ],
)
def test_confidence_tiers(text: str, low: float, high: float) -> None:
    assert low <= classify(text).confidence <= high


def test_clarify_threshold_decides_the_action() -> None:
    assert CLARIFY_THRESHOLD == 0.6
    for text, *_ in LABELLED:
        result = classify(text)
        if result.intent in (UNSUB, RESUB):
            assert (result.action == "clarify") == (result.confidence < CLARIFY_THRESHOLD), text
        elif result.intent == HELP:
            assert result.action == "reply_help"
        else:
            assert result.action == "none"


def test_result_is_a_frozen_dataclass_that_explains_itself() -> None:
    result = classify("不要退订")
    assert isinstance(result, IntentResult)
    assert result.intent != UNSUB
    assert "不要退订" in result.matched  # the admin sees which rule decided
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.intent = "unsubscribe"  # type: ignore[misc]
    assert "typo" in classify("stpo").matched
    assert "stop texting" in classify("please stop texting me").matched


# --- tenant keywords ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "unsubscribe_words", "resubscribe_words", "intent", "action"),
    [
        ("QX", ["QX"], [], UNSUB, UNSUB),
        ("qx", ["QX"], [], UNSUB, UNSUB),
        ("ＱＸ 谢谢", ["QX"], [], UNSUB, UNSUB),
        ("QX", [], [], OTHER, "none"),  # not a keyword without the tenant's table
        ("0000", ["0000"], [], UNSUB, UNSUB),
        ("结束推送", ["结束推送"], [], UNSUB, UNSUB),
        ("好的，结束推送吧", ["结束推送"], [], UNSUB, UNSUB),
        ("TDQX", ["tdqx"], [], UNSUB, UNSUB),
        ("DY", [], ["DY"], RESUB, RESUB),
        ("开通优惠", [], ["开通优惠"], RESUB, RESUB),
        ("开通优惠", [], [], OTHER, "none"),
        ("TD", [], ["DY"], UNSUB, UNSUB),  # the built-in keywords still count
        ("X", ["X"], [], UNSUB, UNSUB),
        ("X marks the spot", ["X"], [], OTHER, "none"),  # a one-letter keyword only alone
    ],
)
def test_tenant_keywords(
    text: str, unsubscribe_words: list[str], resubscribe_words: list[str], intent: str, action: str
) -> None:
    result = classify(
        text, extra_unsubscribe_keywords=unsubscribe_words, extra_resubscribe_keywords=resubscribe_words
    )
    assert (result.intent, result.action) == (intent, NEW_ACTION.get(action, action)), result.matched


def test_tenant_keywords_accept_any_iterable() -> None:
    assert classify("QX", extra_unsubscribe_keywords=(w for w in ["QX"])).intent == UNSUB
    assert classify("QX", extra_unsubscribe_keywords=["", "  "]).intent == OTHER


# --- normalise ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＴＤ", "td"),
        ("【退订】", "退订"),
        ("[TD]", "td"),
        ("(Stop)", "stop"),
        ("退訂", "退订"),
        ("  STOP \t ALL  ", "stop all"),
        ("OPT-OUT", "opt out"),
        ("don't", "dont"),
        ("Don’t", "dont"),
        ("ARRÊT", "arret"),
        ("回复TD退订", "回复 td 退订"),
        ("😀👍", ""),
        ("", ""),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


# --- the management command --------------------------------------------------------------------


def run_command(stdin: str, *args: str) -> list[dict[str, object]]:
    out = StringIO()
    call_command("classify_intent", *args, stdin=StringIO(stdin), stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_command_writes_one_json_object_per_line() -> None:
    rows = run_command("TD\n别再发了\n\n取消退订\nhello\n")
    assert rows == [
        {"text": "TD", "intent": "unsubscribe", "confidence": 0.97},
        {"text": "别再发了", "intent": "unsubscribe", "confidence": 0.85},
        {"text": "", "intent": "other", "confidence": 1.0},
        {"text": "取消退订", "intent": "resubscribe", "confidence": 0.97},
        {"text": "hello", "intent": "other", "confidence": 0.9},
    ]


def test_command_output_shape_is_the_contract() -> None:
    out = StringIO()
    call_command("classify_intent", stdin=StringIO("退訂\r\nstpo\n  please STOP  "), stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0] == '{"text": "退訂", "intent": "unsubscribe", "confidence": 0.97}'  # not \uXXXX
    for line in lines:
        row = json.loads(line)
        assert list(row) == ["text", "intent", "confidence"]
        assert row["intent"] in {"unsubscribe", "resubscribe", "help", "other"}
        assert isinstance(row["confidence"], float) and 0 <= row["confidence"] <= 1
        assert row["confidence"] == round(row["confidence"], 2)
    # the original text, only the line ending removed (no trailing newline on the last line)
    assert [json.loads(line)["text"] for line in lines] == ["退訂", "stpo", "  please STOP  "]


def test_command_tenant_keyword_options() -> None:
    rows = run_command(
        "QX\nfoo bar\nDY\nTD\n",
        "--keywords-unsubscribe",
        "QX, foo bar",
        "--keywords-resubscribe",
        "DY",
    )
    assert [row["intent"] for row in rows] == ["unsubscribe", "unsubscribe", "resubscribe", "unsubscribe"]
    assert [row["intent"] for row in run_command("QX\nDY\n")] == ["other", "other"]


def test_command_in_a_real_process_reads_and_writes_utf8() -> None:
    """The pipe other tools use, under a C locale and with a BOM and Windows line endings."""
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii", "DEBUG": "1"}
    completed = subprocess.run(
        [sys.executable, "manage.py", "classify_intent", "--keywords-unsubscribe", "QX"],
        input="\ufeffTD\r\n别再发了\n\nQX\n".encode(),
        capture_output=True,
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        timeout=60,
        check=True,
    )
    rows = [json.loads(line) for line in completed.stdout.decode("utf-8").splitlines()]
    assert rows == [
        {"text": "TD", "intent": "unsubscribe", "confidence": 0.97},
        {"text": "别再发了", "intent": "unsubscribe", "confidence": 0.85},
        {"text": "", "intent": "other", "confidence": 1.0},
        {"text": "QX", "intent": "unsubscribe", "confidence": 0.97},
    ]
