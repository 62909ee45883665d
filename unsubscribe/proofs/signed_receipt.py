"""The person's signed receipt: what happened to their request, signed with the platform's
Ed25519 key (`lanzuan.signing_keys`), so that anyone can check it without trusting our database.

The document is canonical JSON (`canonical.py`) with the signature beside it:

    {"format": "lanzuan-receipt/1", "reference": ..., "number": "138****8000",
     "tenant": {"slug", "name", "time_zone"}, "scope": {"all_marketing", "services": [{"code", "name"}]},
     "channel": ..., "verification": {"method", "at"}, "state": ...,
     "times": {"filed", "verified", "suppressed", "services_ended", "erasing", "completed"},
     "steps": [{"kind", "place", "label": {"en", "zh-hans"}, "status", "completed_at", "receipt",
                "receipt_lines"}],
     "deadlines": [{"regime", "rule", "measure", "due_at", "met_at", "breached_at"}],
     "chain": {"seq", "hash"} or null, "issued_at": ...,
     "signature": {"kid", "alg": "Ed25519", "value"}}

The signature is over the canonical bytes of the document without its "signature" key. Times are
UTC, ISO 8601 to the second with "Z". The document holds the masked number only, never the number.

A receipt is made when it is asked for (the page, the download), so it says what is true at that
moment; one made earlier stays genuine after the key that signed it is retired (the retired public
key stays published). The compact text form (`compact`) is the same document, base64url-encoded
behind `COMPACT_PREFIX`, for copying where a file cannot go.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from lanzuan import phones, signing_keys
from unsubscribe.models import Step, UnsubscribeRequest

from ..pipeline.selectors import step_public_label
from .canonical import NotCanonical, canonical_bytes, instant
from .chain import request_chain_position

FORMAT = "lanzuan-receipt/1"
ALGORITHM = "Ed25519"
COMPACT_PREFIX = "LZR1."
# A receipt of a request with many steps is a few kilobytes; anything far larger is not one.
MAX_RECEIPT_BYTES = 64 * 1024
LANGUAGES = ("en", "zh-hans")


def _verified_at(request: UnsubscribeRequest) -> str | None:
    # A one-time code is verified before the request is filed (its evidence says when); the
    # other methods verify the number by the filing itself (the SMS came from it, the partner
    # asserted it), so their time is the filing's.
    evidence = request.verification_evidence if isinstance(request.verification_evidence, dict) else {}
    raw = evidence.get("verified_at")
    if isinstance(raw, str):
        try:
            return instant(datetime.fromisoformat(raw))
        except ValueError:
            pass
    return instant(request.received_at)


def _step(step: Step) -> dict[str, Any]:
    done = step.status == Step.Status.SUCCEEDED
    return {
        "kind": step.kind,
        # A built-in data source by its key; a provider's system as "target" (its staff name is
        # not for the person); the confirmation as "confirmation".
        "place": step.source or ("target" if step.target_id else "confirmation"),
        "label": {language: step_public_label(step, language) for language in LANGUAGES},
        "status": step.status,
        "completed_at": instant(step.finished_at) if done else None,
        "receipt": phones.redact(step.receipt),
        "receipt_lines": [[str(key), int(count)] for key, count in step.receipt_lines],
    }


def receipt_document(request: UnsubscribeRequest) -> dict[str, Any]:
    """The request's receipt as it stands now, without its signature."""
    tenant = request.tenant
    steps = request.steps.select_related("target").order_by("id")
    services = sorted(request.services.all(), key=lambda service: service.code)
    return {
        "format": FORMAT,
        "issued_at": instant(timezone.now()),
        "reference": request.reference,
        "number": request.phone_masked,
        "tenant": {"slug": tenant.slug, "name": tenant.name, "time_zone": tenant.time_zone},
        "scope": {
            "all_marketing": request.scope_all,
            "services": [{"code": service.code, "name": service.name} for service in services],
        },
        "channel": request.channel,
        "verification": {"method": request.verification_method, "at": _verified_at(request)},
        "state": request.state,
        "times": {
            "filed": instant(request.received_at),
            "verified": _verified_at(request),
            "suppressed": instant(request.suppressed_at),
            "services_ended": instant(request.confirming_at),
            "erasing": instant(request.erasing_at),
            "completed": instant(request.completed_at),
        },
        "steps": [_step(step) for step in steps],
        "deadlines": [
            {
                "regime": deadline.regime,
                "rule": deadline.rule,
                "measure": deadline.measure,
                "due_at": instant(deadline.due_at),
                "met_at": instant(deadline.met_at),
                "breached_at": instant(deadline.breached_at),
            }
            for deadline in request.deadlines.order_by("due_at", "regime", "rule")
        ],
        "chain": request_chain_position(request),
    }


def receipt_sign(document: dict[str, Any]) -> dict[str, Any]:
    """The document with its signature (by the platform's current key)."""
    unsigned = {key: value for key, value in document.items() if key != "signature"}
    signature = signing_keys.sign(canonical_bytes(unsigned))
    return {
        **unsigned,
        "signature": {"kid": signature.key_id, "alg": ALGORITHM, "value": signature.value_b64},
    }


def signed_receipt(request: UnsubscribeRequest) -> dict[str, Any]:
    return receipt_sign(receipt_document(request))


def receipt_file(receipt: dict[str, Any]) -> bytes:
    """The downloadable file: the signed document, readable (indented); checking it
    re-canonicalises, so the layout does not matter."""
    return (json.dumps(receipt, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")


def receipt_filename(receipt: dict[str, Any]) -> str:
    return f"lanzuan-receipt-{receipt.get('reference', 'unknown')}.json"


def compact(receipt: dict[str, Any]) -> str:
    """The copyable text form: the prefix, then the canonical signed document in base64url."""
    encoded = base64.urlsafe_b64encode(canonical_bytes(receipt)).decode("ascii").rstrip("=")
    return COMPACT_PREFIX + encoded


# --- checking -----------------------------------------------------------------------------------


GENUINE = "genuine"
MALFORMED = "malformed"  # not a receipt at all: not JSON, no signature, a float, another format
UNKNOWN_KEY = "unknown_key"  # signed by a key we never published
ALTERED = "altered"  # the signature does not match the content: changed after signing, or forged


@dataclass(frozen=True)
class ReceiptCheck:
    outcome: str  # GENUINE, MALFORMED, UNKNOWN_KEY or ALTERED
    detail: str = ""  # for MALFORMED: what is wrong, in English (logs, tests); pages say it in words
    document: dict[str, Any] = field(default_factory=dict)  # the receipt; trust it only when genuine
    key: dict[str, str] = field(default_factory=dict)  # the published key that verified it

    @property
    def genuine(self) -> bool:
        return self.outcome == GENUINE


class MalformedReceipt(ValueError):
    pass


def receipt_parse(text: str) -> dict[str, Any]:
    """The receipt in `text`: the JSON file's content, or the compact form. MalformedReceipt if neither."""
    text = text.strip().lstrip("\ufeff")
    if not text:
        raise MalformedReceipt("empty")
    if len(text.encode("utf-8", "replace")) > MAX_RECEIPT_BYTES * 2:
        raise MalformedReceipt("too large")
    if text.startswith(COMPACT_PREFIX):
        packed = "".join(text[len(COMPACT_PREFIX) :].split())
        try:
            text = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)).decode("utf-8")
        except (binascii.Error, ValueError):
            raise MalformedReceipt("the compact form is not base64url of UTF-8") from None
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise MalformedReceipt("not JSON") from None
    if not isinstance(document, dict):
        raise MalformedReceipt("not a JSON object")
    return document


def receipt_check_document(document: dict[str, Any]) -> ReceiptCheck:
    if document.get("format") != FORMAT:
        return ReceiptCheck(MALFORMED, "not a Lanzuan receipt (format)", document)
    signature = document.get("signature")
    if not isinstance(signature, dict) or not all(
        isinstance(signature.get(name), str) for name in ("kid", "alg", "value")
    ):
        return ReceiptCheck(MALFORMED, "no signature", document)
    if signature["alg"] != ALGORITHM:
        return ReceiptCheck(MALFORMED, "not an Ed25519 signature", document)
    unsigned = {key: value for key, value in document.items() if key != "signature"}
    try:
        data = canonical_bytes(unsigned)
    except NotCanonical as exc:
        return ReceiptCheck(MALFORMED, str(exc), document)
    key = next((key for key in signing_keys.public_keys() if key["kid"] == signature["kid"]), None)
    if key is None:
        return ReceiptCheck(UNKNOWN_KEY, "", document)
    if not signing_keys.verify(data, signature["kid"], signature["value"]):
        return ReceiptCheck(ALTERED, "", document)
    return ReceiptCheck(GENUINE, "", document, key)


def receipt_check(text: str) -> ReceiptCheck:
    """Whether `text` (the file or the compact form) is a genuine receipt, and what it says."""
    try:
        document = receipt_parse(text)
    except MalformedReceipt as exc:
        return ReceiptCheck(MALFORMED, str(exc))
    return receipt_check_document(document)
