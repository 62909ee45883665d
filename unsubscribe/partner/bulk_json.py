"""The bulk check's answer as JSON text, written in one pass from the look-up's arrays.

The same document as `_status_json` per number through DRF's renderer (not ASCII-escaped):
{"service", "count", "suppressed", "invalid", "results": [...]}, each result with the same
keys in the same order and the same values. The answers of the numbers read by the vectorised
parse (CN mobiles written "+86…", "86…" or as 11 digits, 99 % of a real list) are the rows of
one byte matrix, every row as wide as the next: where a value is shorter than its slot, the
slot starts with spaces (insignificant whitespace in JSON, after a colon), so no row needs work
of its own. Everything else (odd forms, errors, non-strings) is written one by one, compact,
through json.dumps, and stands between those rows in the items' order.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from lanzuan.iso_times import iso_local_bytes, iso_local_matrix
from unsubscribe.suppressions.batch import NEVER, BatchAnswer


def _dumps(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")  # as DRF's renderer


def _table(texts: list[bytes], width: int | None = None) -> Any:
    """Texts as the rows of a uint8 matrix, each right-aligned in its slot (spaces before)."""
    width = width or max(map(len, texts))
    return np.frombuffer(b"".join(text.rjust(width) for text in texts), dtype=np.uint8).reshape(-1, width)


# The item as written: its prefix (by ParsedBatch.prefix; 255 never reaches here) and the opening quote.
_PHONE = {0: b'   "', 2: b' "86', 3: b'"+86'}
_SINCE_WIDTH = 37  # "YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM:SS" (an offset in seconds: before 1900)
_NULL_SINCE = b"null".rjust(_SINCE_WIDTH)
# A row: the fixed texts, and the slots each row fills (their widths; "ending": the batch's widest).
_ROW: tuple[bytes | tuple[str, int], ...] = (
    b'{"phone":',
    ("phone", 4),
    ("national", 11),
    b'","valid":true,"e164":"+86',
    ("national2", 11),
    b'","suppressed":',
    ("suppressed", 5),
    b',"since":',
    ("since", _SINCE_WIDTH),
    b',"scopes":',
    ("ending", 0),
    b",",
)


def _plain_rows(answer: BatchAnswer, at: Any) -> Any:
    """The answers of the plain items `at`, each followed by a comma, as a (n, w) uint8 matrix.
    Every row starts as the most common answer (a number not suppressed, without scopes,
    written the most common way), copied in one go; then its national digits go in as two
    words, and only the rows that differ from it (suppressed, with scopes, written otherwise)
    are written over, slot by slot."""
    if not len(at):
        return np.zeros((0, 0), dtype=np.uint8)
    parsed = answer.parsed
    hit = answer.suppressed[at]
    prefix = parsed.prefix[at] if parsed.prefix is not None else _prefix_of(parsed.raw, at)
    endings, ending = _endings(answer, at)
    common = int(np.bincount(prefix, minlength=4).argmax())
    fills = {
        "phone": _PHONE[common],
        "suppressed": b"false",
        "since": _NULL_SINCE,
        "ending": endings[0].rjust(max(map(len, endings))),
    }
    column: dict[str, int] = {}
    template = b""
    for part in _ROW:
        if isinstance(part, bytes):
            template += part
            continue
        name, width = part
        column[name] = len(template)
        template += fills.get(name, b"0" * width)
    out = np.empty((len(at), len(template)), dtype=np.uint8)
    out[:] = np.frombuffer(template, dtype=np.uint8)
    head8, tail8 = _national_words(parsed, at)
    for name in ("national", "national2"):
        out[:, column[name] : column[name] + 8].view("<u8")[:, 0] = head8
        out[:, column[name] + 3 : column[name] + 11].view("<u8")[:, 0] = tail8
    for written, text in _PHONE.items():
        rows = np.flatnonzero(prefix == written) if written != common else ()
        if len(rows):
            out[rows, column["phone"] : column["phone"] + 4] = np.frombuffer(text, dtype=np.uint8)
    rows = np.flatnonzero(ending)
    if len(rows):
        table = _table(endings)
        out[rows, column["ending"] : column["ending"] + table.shape[1]] = table[ending[rows]]
    rows = np.flatnonzero(hit)
    if len(rows):
        out[rows, column["suppressed"] : column["suppressed"] + 5] = np.frombuffer(b" true", dtype=np.uint8)
        out[rows, column["since"] : column["since"] + _SINCE_WIDTH] = _since_slots(answer.since[at][rows])
    return out


def _national_words(parsed: Any, at: Any) -> tuple[Any, Any]:
    """ParsedBatch.national of the items `at` (from their values when the parse left it out)."""
    if parsed.national is not None:
        return parsed.national[:, 0][at], parsed.national[:, 1][at]
    ascii_digits = np.zeros((len(at), 16), dtype=np.uint8)
    rest = parsed.values[at] % 10**11
    for place in range(10, -1, -1):
        rest, digit = np.divmod(rest, 10)
        ascii_digits[:, place] = digit + 48
    return ascii_digits[:, :8].view("<u8")[:, 0].copy(), ascii_digits[:, 3:11].copy().view("<u8")[:, 0]


def _since_slots(instants: Any) -> Any:
    """Each `since` quoted and right-aligned in its slot, as the rows of a uint8 matrix."""
    stamps, written = iso_local_matrix(instants)
    quoted = np.full((len(instants), _SINCE_WIDTH), ord(" "), dtype=np.uint8)
    quoted[:, -34] = quoted[:, -1] = ord('"')
    quoted[:, -33:-1] = stamps
    for i in np.flatnonzero(~written).tolist():  # written one by one
        quoted[i] = _table([b'"' + iso_local_bytes(instants[i : i + 1])[0] + b'"'], _SINCE_WIDTH)[0]
    return quoted


def _endings(answer: BatchAnswer, at: Any) -> tuple[list[bytes], Any]:
    """What ends each answer (its scopes, whether the person is on the platform-wide list): the
    distinct texts (the first: no scopes, not listed), and each item's."""
    mask, everywhere = answer.scope_mask[at], answer.everywhere[at]
    endings = [b"[]}"]
    ending = np.zeros(len(at), dtype=np.intp)
    odd = np.flatnonzero((mask != 0) | everywhere)
    if len(odd):
        odd_masks, odd_everywhere = mask[odd], everywhere[odd]
        # kind: (the mask's number among the distinct ones) * 2 + whether on the platform-wide list
        if (odd_masks == odd_masks[0]).all() and (odd_everywhere == odd_everywhere[0]).all():
            # One kind (a tenant whose opt-outs all have one scope, often): no sorting.
            masks, kinds = odd_masks[:1], np.array([int(odd_everywhere[0])])
            kind_no = np.zeros(len(odd), dtype=np.intp)
        else:
            masks, mask_no = np.unique(odd_masks, return_inverse=True)
            kinds, kind_no = np.unique(mask_no.ravel() * 2 + odd_everywhere, return_inverse=True)
        for kind in kinds.tolist():
            scopes = answer.scopes_of(int(masks[kind // 2]))
            endings.append(
                _dumps(["all" if scope == "*" else scope for scope in scopes]).encode()
                + (b',"platform_do_not_market":true}' if kind % 2 else b"}")
            )
        ending[odd] = kind_no.ravel() + 1
    return endings, ending


def _prefix_of(raw: Any, at: Any) -> Any:
    return np.array([len(raw[i]) - 11 for i in at.tolist()], dtype=np.uint8)


def check_answer_json(*, service: str | None, answer: BatchAnswer) -> bytes:
    parsed = answer.parsed
    count = len(parsed.valid)
    plain = parsed.plain & parsed.valid
    rows = _plain_rows(answer, np.flatnonzero(plain))
    others = np.flatnonzero(~plain).tolist()
    head = (
        f'{{"service":{_dumps(service)},"count":{count},"suppressed":{int(answer.suppressed.sum())},'
        f'"invalid":{count - int(parsed.valid.sum())},"results":['
    )
    # Runs of plain rows between the others, in the items' order (the j-th other item has
    # `at - j` plain items before it), joined once (the rows are not copied before).
    flat, width = rows.reshape(-1), rows.shape[1]
    parts: list[Any] = [head.encode()]
    cut = 0
    for j, (at, other) in enumerate(zip(others, _other_rows(answer, others) if others else [], strict=True)):
        parts += [flat[cut * width : (at - j) * width].data, other, b","]
        cut = at - j
    parts.append(flat[cut * width :].data)
    last = len(parts) - 1 if len(parts[-1]) else len(parts) - 2  # the part with the last row's comma
    if last > 0:
        parts[last] = parts[last][:-1]
    parts.append(b"]}")
    return b"".join(parts)


def _other_rows(answer: BatchAnswer, at: list[int]) -> list[bytes]:
    parsed = answer.parsed
    suppressed = answer.suppressed
    scopes_json = {
        mask: _dumps(["all" if scope == "*" else scope for scope in answer.scopes_of(mask)])
        for mask in set(answer.scope_mask[at].tolist())
    }
    instants = np.unique(answer.since[at][suppressed[at]])
    instants = instants[instants != NEVER]
    since_json = {
        us: f'"{text.decode()}"'
        for us, text in zip(instants.tolist(), iso_local_bytes(instants), strict=True)
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
