"""Phone numbers: normalise to E.164, digest with a server key (per tenant), mask for display and logs."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
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


# --- lookup keys (digest version 2): whole batches in native code ----------------------------
# The bulk paths (checks of 10,000 numbers, scrubs of 10 million) cannot afford two HMACs per
# number in Python (~1.3 µs each). Version 2 is AES-256 in ECB mode over one 16-byte block per
# number, one `cryptography` (OpenSSL) call for a whole batch, fed forward (Matyas–Meyer–Oseas:
# the block XOR its encryption), which makes the permutation a pseudo-random function:
#   block(e164)    = b"LZ" 0x02 <digit count> <digits as a big-endian uint64> 0x00 × 4
#   F_k(x)         = AES_k(x) XOR x
#   platform key   P2 = F_{PK2}(block(e164)),  PK2  = HMAC-SHA256(PHONE_HASH_KEY, "lookup-key:v2:platform")
#   tenant key     T2 = F_{K2_t}(P2),          K2_t = HMAC-SHA256(PHONE_HASH_KEY, "lookup-key:v2:tenant:<id>")
# Same structure as version 1 (T from P, per tenant), so the hub still computes P2 once and T2
# per tenant. Without the key the output tells nothing of the number and cannot be computed for a
# guessed number (the brute force of the 10^11 mobile numbers that a plain hash allows needs the
# key). The feed-forward means a key is not decrypted back into the number, even with the key:
# like an HMAC it can only be recomputed from a guessed number. Collisions (128 bits: odds ~1e-17
# over every mobile number) could only make a number read as suppressed, never the reverse.
# Rows keep their version-1 HMAC digest (`phone_hash`) as well: everything else still joins on
# it; `lookup_key` (T2, P2 on the platform-wide list) serves the bulk look-ups (README,
# "Digests of numbers").

LOOKUP_KEY_BYTES = 16
_E164_BLOCK_TAG = (ord("L"), ord("Z"), 2)


@functools.lru_cache(maxsize=1024)
def _lookup_cipher_key(platform_key: bytes, label: str) -> bytes:
    return hmac.digest(platform_key, label.encode(), "sha256")  # 256 bits: AES-256


def _keyed_blocks(key: bytes, blocks: Any) -> Any:
    """F_key of each 16-byte block: AES-256 of the block XOR the block (see above), (n, 16) uint8."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: PLC0415

    plain = np.ascontiguousarray(blocks, dtype=np.uint8)
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305  # one block per number, fed forward
    out = encryptor.update(plain.tobytes()) + encryptor.finalize()
    return np.frombuffer(out, dtype=np.uint8).reshape(-1, LOOKUP_KEY_BYTES) ^ plain.reshape(
        -1, LOOKUP_KEY_BYTES
    )


def e164_blocks(digit_counts: Any, values: Any) -> Any:
    """The 16-byte blocks (an (n, 16) uint8 array) of numbers given as their digit count and
    the digits' value (E.164 without the "+": at most 15 digits, below 2^50)."""
    count = len(values)
    blocks = np.zeros((count, LOOKUP_KEY_BYTES), dtype=np.uint8)
    blocks[:, 0], blocks[:, 1], blocks[:, 2] = _E164_BLOCK_TAG
    blocks[:, 3] = np.asarray(digit_counts, dtype=np.uint8)
    blocks[:, 4:12] = np.asarray(values, dtype=">u8").view(np.uint8).reshape(count, 8)
    return blocks


def platform_lookup_keys(blocks: Any) -> Any:
    """P2 of each block: (n, 16) uint8."""
    return _keyed_blocks(_lookup_cipher_key(_platform_key(), "lookup-key:v2:platform"), blocks)


def tenant_lookup_keys_from_platform(tenant_id: int, platform_keys: Any) -> Any:
    """T2 from P2 (the hub: P2 once, T2 per tenant): (n, 16) uint8."""
    return _keyed_blocks(
        _lookup_cipher_key(_platform_key(), f"lookup-key:v2:tenant:{int(tenant_id)}"), platform_keys
    )


def _e164_digits(e164: str) -> tuple[int, int]:
    digits = e164[1:]
    if not (e164.startswith("+") and digits.isdigit() and 0 < len(digits) <= 15):  # noqa: PLR2004
        raise ValueError("not a normalised number")
    return len(digits), int(digits)


def e164_blocks_of(e164s: Sequence[str]) -> Any:
    """Blocks of normalised numbers (strings): for the few, and for tests."""
    pairs = [_e164_digits(e) for e in e164s]
    return e164_blocks([c for c, _v in pairs], [v for _c, v in pairs])


def platform_lookup_key(e164: str) -> bytes:
    """P2 of one normalised number: what PlatformDoNotMarket.lookup_key holds."""
    return bytes(platform_lookup_keys(e164_blocks_of([e164]))[0])


def tenant_lookup_key(tenant_id: int, e164: str) -> bytes:
    """T2 of one normalised number: what a tenant's Suppression.lookup_key holds."""
    platform = platform_lookup_keys(e164_blocks_of([e164]))
    return bytes(tenant_lookup_keys_from_platform(tenant_id, platform)[0])


@dataclass(frozen=True)
class ParsedBatch:
    """A batch of raw numbers, parsed. Per item: `valid` (a boolean mask), the E.164 digits as
    `values` (int64) and their count `counts` (0 where invalid), the error of an invalid item in
    `errors` (by index), and the 16-byte block of the lookup key (zeros where invalid)."""

    raw: Sequence[Any]  # the items as given
    values: Any  # (n,) int64
    counts: Any  # (n,) uint8
    valid: Any  # (n,) bool
    errors: dict[int, str]
    plain: Any  # (n,) bool: read by the vectorised parse (a CN mobile written "+86…", "86…" or as 11 digits)
    # (n,) uint8: how the plain items were written: 3 ("+86…"), 2 ("86…") or 0 (11 digits); None: not known
    prefix: Any = None
    # (n, 2) uint64: a plain item's last 11 characters (its national digits) as two overlapping
    # little-endian words, characters [end-11, end-3) and [end-8, end); None: not known
    national: Any = None

    @property
    def blocks(self) -> Any:
        return e164_blocks(self.counts, self.values)

    def e164(self) -> list[str | None]:
        """The E.164 text of every item (None where invalid)."""
        texts = self.values.astype("U15").tolist()
        return [f"+{t}" if ok else None for t, ok in zip(texts, self.valid.tolist(), strict=True)]


_CN_NATIONAL = 11


_DIGITS_HIGH = 0xF0F0F0F0F0F0F0F0
_DIGITS_ZERO = 0x3030303030303030


def _all_digits(words: Any) -> Any:
    """Whether each uint64 holds 8 ASCII digits: every high nibble 3, and no low nibble past 9
    (adding 6 to each byte then carries into its high nibble)."""
    high, zero = np.uint64(_DIGITS_HIGH), np.uint64(_DIGITS_ZERO)
    return ((words & high) == zero) & (((words + np.uint64(0x0606060606060606)) & high) == zero)


def _eight_digits(words: Any) -> Any:
    """The number written by 8 ASCII digits in each uint64 (first digit in the low byte): pairs,
    then fours, then eights, added up inside the word (overflow wraps, and is masked away)."""
    value = words - np.uint64(_DIGITS_ZERO)
    value = (value * np.uint64(10) + (value >> np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    value = (value * np.uint64(100) + (value >> np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    return (value * np.uint64(10000) + (value >> np.uint64(32))) & np.uint64(0xFFFFFFFF)


def _plain_columns(raw: Sequence[Any]) -> tuple[Any, Any, Any] | None:
    """Per item, read from the items joined into one ASCII buffer: the national number (11
    digits, -1 where the last 11 characters are not all digits), those characters as two
    words (ParsedBatch.national), and the characters before them (3: "+86", 2: "86", 0: none, 255: anything else).
    None when the items cannot be joined (one is not a string, holds a line break or anything
    beyond ASCII). Every item is read as two unaligned 8-byte words, not byte by byte."""
    try:
        data = "\n".join(raw).encode("ascii")
    except (TypeError, UnicodeEncodeError):
        return None
    breaks = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
    if len(breaks) != len(raw) - 1:  # a line break inside an item
        return None
    return _read_plain(data, np.concatenate([[0], breaks + 1]), np.concatenate([breaks, [len(data)]]))


def _read_plain(data: bytes, starts: Any, ends: Any) -> tuple[Any, Any, Any]:
    """_plain_columns() of the items data[starts[i]:ends[i]] of an ASCII buffer."""
    padded = data + bytes(16)  # every word read below lies inside
    lengths = ends - starts
    words = np.ndarray((len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))  # one at every byte
    first = np.maximum(ends - _CN_NATIONAL, 0)
    head8, tail8 = words[first], words[first + 3]  # characters [end-11, end-3) and [end-8, end)
    digits = _all_digits(head8) & _all_digits(tail8) & (lengths >= _CN_NATIONAL)
    last3 = (tail8 >> np.uint64(40)) - np.uint64(0x303030)
    national = _eight_digits(head8).astype(np.int64) * 1000 + (
        (last3 & np.uint64(0xFF)) * np.uint64(100)
        + ((last3 >> np.uint64(8)) & np.uint64(0xFF)) * np.uint64(10)
        + (last3 >> np.uint64(16))
    ).astype(np.int64)
    national = np.where(digits, national, -1)
    words8 = np.stack([head8, tail8], axis=1)
    head = words[starts]
    plus86 = (lengths == 14) & ((head & np.uint64(0xFFFFFF)) == np.uint64(int.from_bytes(b"+86", "little")))  # noqa: PLR2004
    just86 = (lengths == 13) & ((head & np.uint64(0xFFFF)) == np.uint64(int.from_bytes(b"86", "little")))  # noqa: PLR2004
    bare = lengths == _CN_NATIONAL
    prefix = np.where(plus86, 3, np.where(just86, 2, np.where(bare, 0, 255))).astype(np.uint8)
    return national, words8, prefix


# ASCII characters that end a line for str.splitlines(), and those str.isspace() takes for space.
_LINE_ENDS = b"\n\r\x0b\x0c\x1c\x1d\x1e"
_SPACES = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"


class Lines(Sequence[str]):
    """The lines of an ASCII buffer, as parse_lines() found them; each read as text when asked."""

    def __init__(self, data: bytes, starts: Any, ends: Any) -> None:
        self.data, self.starts, self.ends = data, starts, ends

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.data[int(self.starts[i]) : int(self.ends[i])].decode("ascii")


def parse_lines(data: bytes) -> ParsedBatch | None:
    """parse_batch() of the lines of a text (`str.splitlines()`, without the lines that are
    empty or only space), read from the bytes themselves: no string per line. `raw` is a
    Lines. None for text beyond ASCII (the caller splits it as text)."""
    if not data.isascii():
        return None
    buffer = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero(_byte_in(_LINE_ENDS)[buffer])
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(data)]])
    written = np.concatenate([[0], np.cumsum(~_byte_in(_SPACES)[buffer])])  # characters not space, so far
    kept = written[ends] > written[starts]
    starts, ends = starts[kept], ends[kept]
    return _parsed(Lines(data, starts, ends), *_read_plain(data, starts, ends))


@functools.cache
def _byte_in(chars: bytes) -> Any:
    """A table: whether each byte value is one of `chars`."""
    table = np.zeros(256, dtype=bool)
    table[list(chars)] = True
    return table


def parse_batch(raw: Sequence[Any]) -> ParsedBatch:
    """normalise_fast() for a whole list, vectorised: CN mobiles written "+86…", "86…" or as
    11 digits are read by numpy in one pass; only the rest (other forms, other countries,
    non-strings, invalid text) go through normalise() one by one."""
    count = len(raw)
    columns = _plain_columns(raw) if count else None
    if columns is None:  # the items that cannot be joined (not text, a line break, beyond ASCII) as ""
        columns = _plain_columns(
            [item if type(item) is str and item.isascii() and "\n" not in item else "" for item in raw]
        )
    national, words8, prefix = (
        columns
        if columns is not None
        else (np.zeros(0, np.int64), np.zeros((0, 2), np.uint64), np.zeros(0, np.uint8))
    )
    return _parsed(raw, national, words8, prefix)


def _parsed(raw: Sequence[Any], national: Any, words8: Any, prefix: Any) -> ParsedBatch:
    """The batch from what the vectorised read found; the other items one by one."""
    # A CN mobile: 1[3-9] and nine more digits, written in one of the three forms.
    fast = (prefix != 255) & (national >= 13 * 10**9) & (national < 2 * 10**10)  # noqa: PLR2004
    values = np.where(fast, 86 * 10**11 + national, 0)
    counts = np.where(fast, 13, 0).astype(np.uint8)
    errors: dict[int, str] = {}
    valid = fast.copy()
    seen: dict[tuple[type, Any], tuple[int, int] | str] = {}  # an odd item repeated is read once
    for i in np.flatnonzero(~fast).tolist():
        item = raw[i]
        if isinstance(item, bool) or not isinstance(item, str | int):
            errors[i] = str(_("Must be a string."))
            continue
        known = seen.get((type(item), item))
        if known is None:
            try:
                known = _e164_digits(normalise_fast(str(item)))
            except InvalidPhoneNumber as exc:
                known = str(exc)
            seen[(type(item), item)] = known
        if isinstance(known, str):
            errors[i] = known
            continue
        counts[i], values[i] = known
        valid[i] = True
    return ParsedBatch(
        raw, values.astype(np.int64), counts, valid, errors, fast, np.where(fast, prefix, 0), words8
    )
