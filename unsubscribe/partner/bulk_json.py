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


def check_answer_json(*, service: str | None, answer: BatchAnswer) -> bytes:
    parsed = answer.parsed
    count = len(parsed.valid)
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
    digits = parsed.values.astype("U15").tolist()
    raws = parsed.raw
    errors = parsed.errors
    plain = parsed.plain.tolist()  # read by the vectorised parse: digits and "+" only
    parts = []
    for i, (ok, digits_i, hit, since, mask, everywhere, simple) in enumerate(
        zip(
            parsed.valid.tolist(),
            digits,
            suppressed.tolist(),
            answer.since.tolist(),
            answer.scope_mask.tolist(),
            answer.everywhere.tolist(),
            plain,
            strict=True,
        )
    ):
        phone = f'"{raws[i]}"' if simple else _dumps(raws[i])
        if not ok:
            parts.append(f'{{"phone":{phone},"valid":false,"error":{_dumps(errors[i])}}}')
            continue
        tail = ',"platform_do_not_market":true}' if everywhere else "}"
        parts.append(
            f'{{"phone":{phone},"valid":true,"e164":"+{digits_i}","suppressed":{"true" if hit else "false"},'
            f'"since":{since_json[since] if hit else "null"},"scopes":{scopes_json[mask]}{tail}'
        )
    head = (
        f'{{"service":{_dumps(service)},"count":{count},"suppressed":{int(suppressed.sum())},'
        f'"invalid":{count - int(parsed.valid.sum())},"results":['
    )
    return (head + ",".join(parts) + "]}").encode()
