"""Phone numbers: normalise to E.164, hash with a server key, mask for display and logs."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re

import phonenumbers
from django.conf import settings
from django.utils.translation import gettext_lazy as _


class InvalidPhoneNumber(ValueError):
    """The text is not a valid phone number; str(exc) is a user-facing message."""


def normalise(raw: str, region: str | None = None) -> str:
    """'138 0013 8000', '+86 13800138000', '008613800138000' → '+8613800138000'."""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber(_("Enter a phone number."))
    if len(text) > 32:
        raise InvalidPhoneNumber(_("That is not a valid phone number."))
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region or settings.PHONE_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneNumber(_("That is not a valid phone number.")) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(_("That is not a valid phone number."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_fixed_line(e164: str) -> bool:
    """A landline, which cannot take an SMS (FIXED_LINE_OR_MOBILE counts as mobile)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.FIXED_LINE


_CN_MOBILE = re.compile(r"^(?:\+?86)?(1[3-9]\d{9})$")


def normalise_fast(raw: str) -> str:
    """normalise() for bulk paths: the common canonical forms (E.164 CN mobiles,
    11-digit CN mobiles) by a regex, phonenumbers (~20 µs each) only for the rest."""
    match = _CN_MOBILE.match(raw.strip())
    if match:
        return "+86" + match.group(1)
    return normalise(raw)


@functools.lru_cache(maxsize=4)
def _keyed(key: str) -> hmac.HMAC:
    # The key schedule once per key, copied per number: bulk paths hash millions.
    return hmac.new(key.encode(), digestmod=hashlib.sha256)


def phone_digest(e164: str) -> bytes:
    mac = _keyed(settings.PHONE_HASH_KEY).copy()
    mac.update(e164.encode())
    return mac.digest()


def phone_hash(e164: str) -> str:
    """Keyed hash (HMAC-SHA256) of a normalised number: what we keep once the number is erased."""
    return phone_digest(e164).hex()


def mask(e164: str) -> str:
    """'+8613800138000' → '138****8000'; other countries keep their code: '+1 415***2671'."""
    if not e164:
        return ""
    if len(e164) == 14 and e164.startswith("+861"):  # CN mobiles, without phonenumbers (bulk paths)
        return f"{e164[3:6]}****{e164[-4:]}"
    try:
        number = phonenumbers.parse(e164, None)
        national = str(number.national_number)
        country = number.country_code
    except phonenumbers.NumberParseException:
        national, country = e164.lstrip("+"), 0
    if len(national) >= 11:
        masked = national[:3] + "****" + national[-4:]
    elif len(national) > 6:
        masked = national[:3] + "*" * (len(national) - 7) + national[-4:]
    else:
        masked = "*" * max(len(national) - 2, 1) + national[-2:]
    return masked if country == 86 else f"+{country} {masked}"


# A run of digits with the separators people and systems put inside numbers.
_DIGIT_RUN = re.compile(r"\+?\d(?:[\s\-.()/]*\d)*")
MIN_MASKED_DIGITS = 4


def mask_digit_runs(text: str, *, min_digits: int = MIN_MASKED_DIGITS) -> str:
    """Every run of `min_digits` digits or more (a phone number in any form: +86,
    national, with spaces or dashes) with its digits replaced by "*"; the wording stays.
    The one place numbers are taken out of free text (replies, receipts, errors)."""

    def hide(match: re.Match[str]) -> str:
        run = match.group(0)
        if sum(ch.isdigit() for ch in run) < min_digits:
            return run
        return "".join("*" if ch.isdigit() else ch for ch in run)

    return _DIGIT_RUN.sub(hide, text or "")


# Stored excerpts of other systems' answers (receipts, errors): a phone number has at
# least 7 digits, so shorter runs (HTTP statuses, counts, small ids) stay readable.
EXCERPT_MIN_DIGITS = 7


# Control characters (NUL above all: PostgreSQL text cannot hold it) in a remote system's answer.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def redact(text: str) -> str:
    """A provider's or gateway's text fit to store: no phone number in any form, no
    control characters."""
    return mask_digit_runs(_CONTROL.sub("\ufffd", text or ""), min_digits=EXCERPT_MIN_DIGITS)
