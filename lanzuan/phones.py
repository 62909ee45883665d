"""Phone numbers: normalise to E.164, digest with a server key (per tenant), mask for display and logs."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable

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


# --- digests ------------------------------------------------------------------------------
# A tenant sees and stores only its own digest of a number, so two tenants' records of one
# person cannot be joined:
#   platform digest P = HMAC-SHA256(PHONE_HASH_KEY, e164)
#   tenant key     K_t = HMAC-SHA256(PHONE_HASH_KEY, "tenant-digest:<tenant id>")
#   tenant digest  T  = HMAC-SHA256(K_t, P)
# T derives from P, so rows stored with P were converted to T without the numbers (the
# migration unsubscribe.*_tenant_digests). P itself serves only platform-wide work: the hub's
# look-up across tenants (it computes P once and T per tenant), the platform-wide one-time-code
# limits and the replies no tenant could be given. There is deliberately no plain
# `phone_hash()`: a call site says which digest it means.


@functools.lru_cache(maxsize=256)
def _keyed(key: bytes) -> hmac.HMAC:
    # The key schedule once per key, copied per number: bulk paths hash millions.
    return hmac.new(key, digestmod=hashlib.sha256)


def _platform_key() -> bytes:
    return settings.PHONE_HASH_KEY.encode()


def platform_phone_digest(e164: str) -> bytes:
    mac = _keyed(_platform_key()).copy()
    mac.update(e164.encode())
    return mac.digest()


def platform_phone_hash(e164: str) -> str:
    """The platform digest P of a normalised number (hex). Never stored in a tenant's
    table nor shown to a tenant: use tenant_phone_hash() for that."""
    return platform_phone_digest(e164).hex()


@functools.lru_cache(maxsize=1024)
def _tenant_key(platform_key: bytes, tenant_id: int) -> bytes:
    return hmac.digest(platform_key, b"tenant-digest:" + str(int(tenant_id)).encode(), "sha256")


def _tenant_keyed(tenant_id: int) -> hmac.HMAC:
    return _keyed(_tenant_key(_platform_key(), tenant_id))


def tenant_phone_digester(tenant_id: int) -> Callable[[str], bytes]:
    """The tenant digest T as a function of a normalised number, for many numbers (bulk
    paths: checks, scrubs, imports): both key schedules are computed once."""
    platform, tenant = _keyed(_platform_key()), _tenant_keyed(tenant_id)

    def digest(e164: str) -> bytes:
        inner = platform.copy()
        inner.update(e164.encode())
        outer = tenant.copy()
        outer.update(inner.digest())
        return outer.digest()

    return digest


def tenant_phone_hasher(tenant_id: int) -> Callable[[str], str]:
    """tenant_phone_hash() for many numbers of one tenant (hex)."""
    digest = tenant_phone_digester(tenant_id)
    return lambda e164: digest(e164).hex()


def tenant_phone_hash(tenant_id: int, e164: str) -> str:
    """The tenant digest T of a normalised number (hex): what a tenant's rows keep once the
    number is erased, and what its API, webhooks and exports show. Differs between tenants."""
    return tenant_phone_digester(tenant_id)(e164).hex()


def tenant_hash_from_platform(tenant_id: int, platform_digest: bytes) -> str:
    """T from P: for the hub (P once, T per tenant) and for converting stored digests."""
    mac = _tenant_keyed(tenant_id).copy()
    mac.update(platform_digest)
    return mac.hexdigest()


def tenant_phone_hashes(e164: str, tenant_ids: Iterable[int]) -> dict[int, str]:
    """One number's tenant digest at each of `tenant_ids` (the hub, staff searching by
    number across the tenants they see)."""
    platform = platform_phone_digest(e164)
    return {tenant_id: tenant_hash_from_platform(tenant_id, platform) for tenant_id in tenant_ids}


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
