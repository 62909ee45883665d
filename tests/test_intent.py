"""The reply-intent classifier (issue 12): the labelling rules of INTENT.md on examples of every kind,
the actions, the clarification context, tenant keywords, normalisation, the commands' contracts, the
corpus and its split, the scores on the test split, and that the shipped model is what training makes.

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

import numpy as np
import pytest
from django.core.management import call_command

from unsubscribe.inbound.intent import IntentResult, classify, normalise, pinyin, rules, training
from unsubscribe.inbound.intent import model as intent_model

U, R, H, S, O = "unsubscribe", "resubscribe", "help", "status", "other"  # noqa: E741

# (message, intent, action), all per INTENT.md.
LABELLED: list[tuple[str, str, str]] = [
    # --- the codes, in any form --------------------------------------------------------------------
    ("TD", U, "act"),
    ("T", U, "act"),
    ("N", U, "act"),
    ("R", U, "act"),
    ("退订", U, "act"),
    ("退訂", U, "act"),
    ("STOP", U, "act"),
    ("STOPALL", U, "act"),
    ("UNSUBSCRIBE", U, "act"),
    ("CANCEL", U, "act"),
    ("END", U, "act"),
    ("QUIT", U, "act"),
    ("REVOKE", U, "act"),
    ("OPT-OUT", U, "act"),
    ("REMOVE", U, "act"),
    ("取消", U, "act"),
    ("ＴＤ", U, "act"),
    ("Ｔ Ｄ", U, "act"),
    ("T.D.", U, "act"),
    ("S.T.O.P", U, "act"),
    ("s t o p", U, "act"),
    ("【退订】", U, "act"),
    ("退 订", U, "act"),
    ("Stop!!!", U, "act"),
    ("STOP STOP STOP", U, "act"),
    ("TD 谢谢", U, "act"),
    ("T 谢谢", U, "act"),
    ("please STOP 🙏", U, "act"),
    ("🛑", U, "act"),
    # --- pinyin, same-sound characters and typos ---------------------------------------------------
    ("腿订", U, "act"),
    ("退定", U, "act"),
    ("推订", U, "act"),
    ("tui ding", U, "act"),
    ("tuiding", U, "act"),
    ("忒订", U, "act"),  # 忒 reads te or tui
    ("tuidng", U, "act"),
    ("stpo", U, "act"),
    ("unsubscibe", U, "act"),
    # --- plain requests ----------------------------------------------------------------------------
    ("别再发了", U, "act"),
    ("不要再给我发短信了", U, "act"),
    ("別再傳簡訊給我", U, "act"),
    ("唔好再發", U, "act"),
    ("唔該停咗佢", U, "act"),
    ("please stop texting me", U, "act"),
    ("remove me from your list", U, "act"),
    ("I revoke my consent to receive messages", U, "act"),
    ("再发就投诉", U, "act"),
    ("12321举报", U, "act"),
    ("我已经退订了，为什么还在发", U, "act"),
    ("wrong number, stop texting", U, "act"),
    ("can you stop texting me?", U, "act"),
    ("BAJA", U, "act"),
    ("abmelden", U, "act"),
    ("配信停止", U, "act"),
    ("수신거부", U, "act"),
    ("hủy đăng ký", U, "act"),
    ("Arrêtez", U, "act"),
    ("【某店】双11全场5折，点击 https://t.cn/A6x9 抢购，回T退订\nTD", U, "act"),  # a code added to an advert
    ("TD【某店】双11全场5折，点击 https://t.cn/A6x9 抢购，回T退订", U, "act"),
    ("did my STOP work? you're still texting me", U, "act"),  # a status question that complains
    # --- a bare code asked as a question: ask ------------------------------------------------------
    ("STOP?", U, "clarify"),
    ("TD?", U, "clarify"),
    # --- resubscribe -------------------------------------------------------------------------------
    ("START", R, "act"),
    ("UNSTOP", R, "act"),
    ("取消退订", R, "act"),
    ("取消退訂", R, "act"),
    ("重新订阅", R, "act"),
    ("恢复接收", R, "act"),
    ("I opted out by mistake, restore me", R, "act"),
    ("sign me back up", R, "act"),
    # --- help --------------------------------------------------------------------------------------
    ("HELP", H, "reply_help"),
    ("帮助", H, "reply_help"),
    ("客服", H, "reply_help"),
    ("?", H, "reply_help"),
    ("怎么退订", H, "reply_help"),
    ("how do I unsubscribe?", H, "reply_help"),
    ("what does TD mean", H, "reply_help"),
    ("who is this?", H, "reply_help"),
    ("AYUDA", H, "reply_help"),
    # --- status ------------------------------------------------------------------------------------
    ("退订成功了吗", S, "reply_status"),
    ("did my STOP work?", S, "reply_status"),
    ("am I unsubscribed?", S, "reply_status"),
    # --- other: look-alikes, negations, no stop ----------------------------------------------------
    ("YES", O, "none"),  # a bare yes is not a resubscription
    ("好的", O, "none"),
    ("", O, "none"),
    ("😀😀", O, "none"),
    ("ok", O, "none"),
    ("不要退订", O, "none"),
    ("我没说要退订", O, "none"),
    ("don't unsubscribe me", O, "none"),
    ("我想退订明天的酒店", O, "none"),
    ("我要退货", O, "none"),
    ("取消订单", O, "none"),
    ("别发货了，我要退款", O, "none"),
    ("T恤有XL码吗", O, "none"),
    ("N95口罩还有吗", O, "none"),
    ("TD Bank hours?", O, "none"),
    ("I'll stop by later", O, "none"),
    ("can't stop laughing", O, "none"),
    ("I quit smoking", O, "none"),
    ("cancel my order", O, "none"),
    ("wrong number", O, "none"),
    ("你们是骗子", O, "none"),
    (
        "【某店】双11全场5折，点击 https://t.cn/A6x9 抢购，回T退订 这个活动到几号？",
        O,
        "none",
    ),  # advert + question
    # --- unsure: one clarification, never silence on a likely opt-out -----------------------------
    ("no", U, "clarify"),
    ("不要", U, "clarify"),
    ("TF", U, "clarify"),  # one key from TD
]


@pytest.mark.parametrize(("text", "intent", "action"), LABELLED)
def test_labelled_examples(text: str, intent: str, action: str) -> None:
    result = classify(text)
    assert (result.intent, result.action) == (intent, action), result
    assert 0.0 <= result.confidence <= 1.0
    assert result.matched


def test_result_is_a_frozen_dataclass_that_explains_itself() -> None:
    result = classify("TD")
    assert isinstance(result, IntentResult)
    assert result.matched == "code 'td'"
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.intent = "other"  # type: ignore[misc]
    assert "sounds like 退订" in classify("腿订").matched
    assert "typo" in classify("stpo").matched
    assert classify("麻烦你们以后别再给我发这些了").matched.startswith("model")


def test_actions_follow_intent_and_confidence() -> None:
    for text, *_ in LABELLED:
        result = classify(text)
        if result.intent == U:
            assert result.action in ("act", "clarify"), text
        elif result.intent == R:  # an unsure re-subscription restores nothing
            assert result.action in ("act", "none"), text
        elif result.intent == H:
            assert result.action in ("reply_help", "clarify"), text
        elif result.intent == S:
            assert result.action in ("reply_status", "clarify"), text
        else:
            assert result.action in ("none", "clarify"), text


# --- review of issues 11 + 12 (FINDINGS-11-12: F1, F2, F13) ---------------------------------------


@pytest.mark.parametrize(
    "text",
    ["退订以后还能恢复吗", "稍后回复", "我想订餐", "退订后还能重新订阅吗", "can I opt back in later?",
     "if I unsubscribe, can I resubscribe?", "晚点回复你", "身体恢复了", "回复", "when does the sale start?"],
)  # fmt: skip
def test_f1_a_question_or_chit_chat_never_lifts_an_opt_out(text: str) -> None:
    result = classify(text)
    assert not (result.intent == R and result.action == "act"), result


@pytest.mark.parametrize(
    "text",
    ["START", "重新订阅", "恢复接收", "取消退订", "opt me back in", "I opted out by mistake, restore me"],
)
def test_f1_a_clear_resume_request_still_resubscribes(text: str) -> None:
    assert (classify(text).intent, classify(text).action) == (R, "act")


def test_f1_resubscribe_bar_is_tuned_for_precision() -> None:
    assert intent_model.shipped().thresholds["act_resubscribe"] >= 0.85
    assert not rules.resume_cue(normalise("稍后回复 我想订餐")) and rules.resume_cue(normalise("恢复接收"))


@pytest.mark.parametrize(
    "text",
    ["退订，我的另一个号是13912345678，订单号2025111100", "TD. my other number is 4155550123",
     "请退订！订单号2025111100，手机139-0000-1111", "STOP texting 4155550123 please", "不要了，退了吧"],
)  # fmt: skip
def test_f2_numbers_in_a_reply_do_not_drown_the_stop(text: str) -> None:
    result = classify(text)
    assert result.intent == U and result.action in ("act", "clarify"), result


@pytest.mark.parametrize("text", ["13912345678", "0000", "00000", "订单号2025111100什么时候发货"])
def test_f2_numbers_alone_or_an_order_question_are_other(text: str) -> None:
    assert classify(text).intent == O


@pytest.mark.parametrize("text", ["QX", "qx", "QXDG", "annuler", "Disdire", "Disdici", "désabonner", "BAJA"])
def test_f13_carrier_and_other_languages_cancel_codes(text: str) -> None:
    assert (classify(text).intent, classify(text).action) == (U, "act")


# --- context: the question we asked ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "intent", "action"),
    [
        ("是", U, "act"),
        ("对的", U, "act"),
        ("好", U, "act"),
        ("确认", U, "act"),
        ("yes", U, "act"),
        ("Y", U, "act"),
        ("OK!", U, "act"),
        ("👍", U, "act"),
        ("yes please", U, "act"),
        ("是的谢谢", U, "act"),
        ("不", O, "none"),
        ("不是", O, "none"),
        ("no", O, "none"),
        ("nope", O, "none"),
        ("TD", U, "act"),  # the codes still count
        ("who is this?", H, "reply_help"),
    ],
)
def test_reply_to_a_clarification(text: str, intent: str, action: str) -> None:
    result = classify(text, context="clarification")
    assert (result.intent, result.action) == (intent, action), result


@pytest.mark.parametrize("text", ["是", "yes", "Y", "好的", "OK", "👍", "确认"])
def test_a_yes_without_our_question_is_nothing_and_never_a_resubscription(text: str) -> None:
    assert classify(text).intent == O
    assert classify(text, context="clarification").intent == U  # never resubscribe


# --- tenant keywords -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words", "intent"),
    [
        ("QX", ["QX"], U),
        ("qx", ["QX"], U),
        ("ＱＸ 谢谢", ["QX"], U),
        ("0000", ["0000"], U),
        ("好的，结束推送吧", ["结束推送"], U),
        ("TD", ["QX"], U),  # the built-in codes still count
        ("X", ["X"], U),
    ],
)
def test_tenant_keywords(text: str, words: list[str], intent: str) -> None:
    result = classify(text, extra_unsubscribe_keywords=words)
    assert (result.intent, result.action) == (intent, "act"), result
    assert "tenant keyword" in result.matched or words == ["QX"] and text == "TD"


def test_tenant_keywords_only_as_the_tenant_says() -> None:
    assert classify("JSTS").intent == O
    assert classify("X marks the spot", extra_unsubscribe_keywords=["X"]).intent == O
    assert classify("JSTS", extra_unsubscribe_keywords=(w for w in ["JSTS"])).intent == U  # any iterable
    assert classify("JSTS", extra_unsubscribe_keywords=["", "  "]).intent == O


def test_tenant_keyword_table_is_built_once_per_keyword_set() -> None:
    rules.tenant_table.cache_clear()
    for text in ["QX", "TD", "hello", "别再发了"] * 25:
        classify(text, extra_unsubscribe_keywords=["QX", "结束推送"])
    info = rules.tenant_table.cache_info()
    # one build for the unsubscribe set, one for the (empty) resubscribe set, then only look-ups
    assert info.misses == 2 and info.hits >= 170, info


# --- normalisation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＴＤ", "td"),
        ("Ｓ.Ｔ.Ｏ.Ｐ!!", "stop"),
        ("s t o p please", "stop please"),
        ("T-D", "td"),
        ("【退订】", "退订"),
        ("退 訂", "退订"),
        ("回复TD退订", "回复 td 退订"),
        ("OPT-OUT", "opt out"),
        ("Don’t", "dont"),
        ("ARRÊT", "arret"),
        ("stoppppp", "stopp"),
        ("I am a fan", "i am a fan"),
        ("😀👍", "xyesx"),
        ("", ""),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_pinyin_reads_same_sound_slips_alike() -> None:
    assert {
        pinyin(normalise(t)) for t in ["退订", "腿订", "退定", "推订", "tui ding", "TUIDING", "tuì dìng"]
    } == {"tuiding"}


# --- the commands ----------------------------------------------------------------------------------


def run_command(stdin: str, *args: str) -> list[dict[str, object]]:
    out = StringIO()
    call_command("classify_intent", *args, stdin=StringIO(stdin), stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_classify_intent_writes_one_json_object_per_line() -> None:
    rows = run_command("TD\n退订成功了吗\n\n取消退订\nhello\nHELP\n是\n")
    assert [(r["intent"], r["action"]) for r in rows] == [
        (U, "act"),
        (S, "reply_status"),
        (O, "none"),
        (R, "act"),
        (O, "none"),
        (H, "reply_help"),
        (O, "none"),
    ]
    for row in rows:
        assert list(row) == ["text", "intent", "confidence", "action"]
        assert isinstance(row["confidence"], float) and 0 <= row["confidence"] <= 1
        assert row["confidence"] == round(row["confidence"], 2)
    assert rows[0] == {"text": "TD", "intent": U, "confidence": 0.99, "action": "act"}


def test_classify_intent_context_option() -> None:
    rows = run_command("是\nno\nTD\n", "--context", "clarification")
    assert [(r["intent"], r["action"]) for r in rows] == [(U, "act"), (O, "none"), (U, "act")]


def test_classify_intent_tenant_keyword_options() -> None:
    rows = run_command(
        "QX\nfoo bar\nDY\nTD\n", "--keywords-unsubscribe", "QX, foo bar", "--keywords-resubscribe", "DY"
    )
    assert [row["intent"] for row in rows] == [U, U, R, U]


def test_classify_intent_in_a_real_process_reads_and_writes_utf8() -> None:
    """The pipe other tools use, under a C locale and with a BOM and Windows line endings."""
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii", "DEBUG": "1"}
    completed = subprocess.run(
        [sys.executable, "manage.py", "classify_intent", "--keywords-unsubscribe", "QX"],
        input="\ufeffTD\r\n退訂\n\nQX\n".encode(),
        capture_output=True,
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        timeout=60,
        check=True,
    )
    lines = completed.stdout.decode("utf-8").splitlines()
    assert lines[1] == '{"text": "退訂", "intent": "unsubscribe", "confidence": 0.99, "action": "act"}'
    assert [json.loads(line)["text"] for line in lines] == ["TD", "退訂", "", "QX"]


def test_intent_eval_prints_scores_and_confusion_matrices() -> None:
    out = StringIO()
    call_command("intent_eval", stdout=out)
    text = out.getvalue()
    for name in ("dev", "test"):
        assert f"== {name}:" in text
    assert text.count("confusion (rows: true, columns: predicted)") == 2
    for label in intent_model.LABELS:
        assert label in text


# --- the corpus, the scores, the shipped model -----------------------------------------------------


def test_corpus_is_large_labelled_and_split_by_family() -> None:
    splits = {name: training.load_split(name) for name in ("train", "dev", "test")}
    assert sum(len(rows) for rows in splits.values()) >= 3000
    families = {name: {row.family for row in rows} for name, rows in splits.items()}
    assert not families["train"] & families["dev"]
    assert not families["train"] & families["test"]
    assert not families["dev"] & families["test"]
    for rows in splits.values():
        assert {row.label for row in rows} == set(intent_model.LABELS)
        assert {row.context for row in rows} <= {"", "clarification"}
    texts = [(row.text, row.context) for rows in splits.values() for row in rows]
    assert len(texts) == len(set(texts))  # one label per reply


def test_corpus_generator_is_reproducible(tmp_path: Path) -> None:
    from unsubscribe.inbound.intent.data import build_corpus

    build_corpus.build(tmp_path)
    for name in ("train", "dev", "test"):
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (training.DATA_DIR / f"{name}.jsonl").read_bytes()


def test_scores_on_the_test_split_meet_the_targets() -> None:
    report = training.evaluate("test", training.load_split("test"))
    scores = report.per_class()
    assert scores[U][0] >= 0.98 and scores[U][1] >= 0.98, report.format()
    for label in (R, H, S):
        assert scores[label][1] >= 0.9, report.format()


def test_shipped_model_is_what_training_produces(tmp_path: Path) -> None:
    out = tmp_path / "model.npz"
    call_command("intent_train", output=out, stdout=StringIO())
    trained, shipped = intent_model.load(out), intent_model.load(intent_model.MODEL_PATH)
    assert trained.vocabulary == shipped.vocabulary
    np.testing.assert_allclose(trained.idf, shipped.idf, rtol=1e-6)
    np.testing.assert_allclose(trained.coef, shipped.coef, atol=1e-5)
    np.testing.assert_allclose(trained.intercept, shipped.intercept, atol=1e-5)
    assert trained.temperature == shipped.temperature
    assert trained.thresholds == shipped.thresholds


def test_serving_features_are_the_training_features() -> None:
    """The word-cached featuriser used when serving finds exactly the n-grams training counted."""
    params = intent_model.shipped()
    for row in training.load_split("dev")[::7]:
        text, sound = training.model_input(row.text)
        served = sorted(params.message_indices(text, sound))
        assert served == sorted(intent_model.indices(intent_model.ngrams(text, sound), params.vocabulary)), (
            row
        )
