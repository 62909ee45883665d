"""The bulk check's answer as JSON text, written in one pass from the look-up's arrays.

Same document as `_status_json` per number through DRF's renderer (compact, not ASCII-escaped):
{"service", "count", "suppressed", "invalid", "results": [...]}, each result with the keys in
the same order. A number read by the vectorised parse holds only digits and "+", so it is
written as it came; everything else (odd forms, errors, non-strings) goes through json.dumps.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from django.utils.timezone import localtime

from unsubscribe.suppressions.batch import NEVER, BatchAnswer, since_datetime


def _dumps(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")  # as DRF's renderer


_HEAD = b'{"phone":"'
_MID = b'","valid":true,"e164":"+'


def _plain_rows(raws: list[str], suffixes: Any) -> list[bytes]:
    """The answers of numbers read by the vectorised parse (CN mobiles written "+86…", "86…" or
    as 11 digits), built in arrays: the E.164 form is "+86" and the item's last 11 digits; rows
    of one length take the same columns; each row ends with its own suffix (an (n, w) uint8
    matrix, zeros after)."""
    total = len(raws)
    raw = np.array(raws, dtype="S20").view(np.uint8).reshape(total, 20)
    raw_len = (raw != 0).sum(axis=1)
    head, mid = (np.frombuffer(text, dtype=np.uint8) for text in (_HEAD, _MID + b"86"))
    width = len(head) + 20 + len(mid) + 11 + suffixes.shape[1]
    out = np.zeros((total, width), dtype=np.uint8)
    for r in np.unique(raw_len).tolist():
        rows = np.flatnonzero(raw_len == r)
        block = np.zeros((len(rows), width), dtype=np.uint8)
        at = len(head)
        block[:, :at] = head
        block[:, at : at + r] = raw[rows, :r]
        at += r
        block[:, at : at + len(mid)] = mid
        at += len(mid)
        block[:, at : at + 11] = raw[rows, r - 11 : r]
        at += 11
        block[:, at : at + suffixes.shape[1]] = suffixes[rows]
        out[rows] = block
    built: list[bytes] = out.view(f"S{width}").ravel().tolist()  # each row's zeros are at its end
    return built


def _suffixes(answer: BatchAnswer, at: Any) -> Any:
    """What follows the E.164 form in each answer, as an (n, w) uint8 matrix: one string per
    distinct (suppressed, since, scopes, platform-wide) of the batch."""
    hit = answer.suppressed[at]
    since = np.where(hit, answer.since[at], -1)  # -1: not suppressed (since is then null)
    masks, mask_no = np.unique(answer.scope_mask[at], return_inverse=True)
    everywhere = answer.everywhere[at].astype(np.int64)
    # One int64 per combination (since is below 2^53 µs, and a batch has few scope masks).
    width = 2 * len(masks)
    unique, inverse = np.unique((since + 1) * width + mask_no.ravel() * 2 + everywhere, return_inverse=True)
    scopes = answer.scope_tuples
    texts = []
    for key in unique.tolist():
        when_us, rest = divmod(key, width)
        mask = int(masks[rest // 2])
        when = f'"{localtime(since_datetime(when_us - 1)).isoformat()}"' if when_us else "null"
        listed = _dumps(["all" if scope == "*" else scope for scope in scopes[mask]])
        tail = ',"platform_do_not_market":true}' if rest % 2 else "}"
        texts.append(
            f'","suppressed":{"true" if when_us else "false"},"since":{when},"scopes":{listed}{tail}'.encode()
        )
    table = np.array(texts, dtype=bytes)
    return table[inverse.ravel()].view(np.uint8).reshape(len(at), table.itemsize)


def check_answer_json(*, service: str | None, answer: BatchAnswer) -> bytes:
    parsed = answer.parsed
    count = len(parsed.valid)
    suppressed = answer.suppressed
    rows = np.empty(count, dtype=object)
    plain = parsed.plain & parsed.valid
    plain_at = np.flatnonzero(plain)
    if len(plain_at):
        raws = parsed.raw
        rows[plain_at] = _plain_rows([raws[i] for i in plain_at.tolist()], _suffixes(answer, plain_at))
    others = np.flatnonzero(~plain)
    if len(others):
        rows[others] = _other_rows(answer, others.tolist())
    head = (
        f'{{"service":{_dumps(service)},"count":{count},"suppressed":{int(suppressed.sum())},'
        f'"invalid":{count - int(parsed.valid.sum())},"results":['
    )
    return head.encode() + b",".join(rows.tolist()) + b"]}"


def _other_rows(answer: BatchAnswer, at: list[int]) -> list[bytes]:
    parsed = answer.parsed
    suppressed = answer.suppressed
    scopes_json = {
        mask: _dumps(["all" if scope == "*" else scope for scope in scopes])
        for mask, scopes in answer.scope_tuples.items()
    }
    since_json: dict[int, str] = {
        int(us): f'"{localtime(since_datetime(int(us))).isoformat()}"'
        for us in np.unique(answer.since[suppressed]).tolist()
        if us != NEVER
    }
    raws = parsed.raw
    errors = parsed.errors
    dumped: dict[tuple[type, Any], str] = {}

    def dumps(value: Any) -> str:  # the same error (or odd item) is written once
        try:
            key = (type(value), value)
            found = dumped.get(key)
        except TypeError:  # a list or an object: not hashable
            return _dumps(value)
        if found is None:
            found = dumped[key] = _dumps(value)
        return found

    parts = []
    for i, ok, digits_i, hit, since, mask, everywhere, simple in zip(
        at,
        parsed.valid[at].tolist(),
        parsed.values[at].astype("U15").tolist(),
        suppressed[at].tolist(),
        answer.since[at].tolist(),
        answer.scope_mask[at].tolist(),
        answer.everywhere[at].tolist(),
        parsed.plain[at].tolist(),
        strict=True,
    ):
        phone = f'"{raws[i]}"' if simple else dumps(raws[i])
        if not ok:
            parts.append(f'{{"phone":{phone},"valid":false,"error":{dumps(errors[i])}}}'.encode())
            continue
        tail = ',"platform_do_not_market":true}' if everywhere else "}"
        parts.append(
            f'{{"phone":{phone},"valid":true,"e164":"+{digits_i}","suppressed":{"true" if hit else "false"},'
            f'"since":{since_json[since] if hit else "null"},"scopes":{scopes_json[mask]}{tail}'.encode()
        )
    return parts
