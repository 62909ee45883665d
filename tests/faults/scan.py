"""Where is a raw phone number still kept? The every-place scan of the fault suite.

`raw_number_findings(*numbers)` looks for each number, in every form it may take, in:

- every column of every table of the test database (history tables, sessions and beat's
  tables included), each value also decoded where it carries base64 or zlib data (Django's
  signed sessions, kombu envelopes);
- every file under LANZUAN_VAR_DIR and MEDIA_ROOT, and the file gateway's outbox wherever
  settings.OUTBOX_PATH points, with its rotated files (gzip, zlib and base64 decoded);
- every Redis key under this session's prefix (settings.REDIS_KEY_PREFIX) in the cache and
  the broker: its name and its value, whatever the type (string, list, hash, set, sorted set,
  stream), with the broker's queued and unacknowledged messages' base64 bodies decoded.

It returns one human-readable finding per place ("table unsubscribe_step.receipt row 3 …",
"file $LANZUAN_VAR_DIR/outbox.jsonl …", "redis key …:pipeline …"), naming the number only
masked. An empty list is the pass.

The forms: a number is found by its national digits (13800138000 for +8613800138000), so
E.164, 8613800138000, 008613800138000 and the national form all match, and so do the digits
split by spaces, dashes, dots or pluses ("138 0013 8000", "+86 138-0013-8000"), their JSON
escapes (\\u0020, \\u002d) and percent-encodings (%2B86…, 138%200013%208000), and digits
written %3N or \\u003N. The masked form (138****8000) and the keyed digest do not match.

Files and Redis keys live as long as the session (tests/sandbox.py): a test that scans
should use numbers no other test uses (`unique_number()`), so that what an earlier test left
cannot be blamed on it.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import itertools
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import phonenumbers
from django.conf import settings
from django.db import connection

from lanzuan import phones

# Between two digits: nothing, or up to two separators as people, systems and encoders write them.
_SEPARATOR = r"(?:[ \t.+\-/()]|%20|%2[bBdDfF]|\\u00(?:20|2[bBdD]|[aA]0)){0,2}"
# Runs that may be base64 (standard or URL-safe, as Django's signing writes it).
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{16,}={0,2}")
_ZLIB_MAGIC = (b"\x78\x9c", b"\x78\xda", b"\x78\x01", b"\x78\x5e")
_MAX_FILE_BYTES = 64 * 1024 * 1024
_MAX_DEPTH = 3

_numbers = itertools.count(1)


def unique_number() -> str:
    """A valid mainland mobile number (E.164) that no other call in this process returns."""
    return f"+86199{os.getpid() % 10_000:04d}{next(_numbers) % 10_000:04d}"


def national_digits(number: str) -> str:
    """'+8613800138000' → '13800138000': what every written form of the number contains."""
    parsed = phonenumbers.parse(number if number.startswith("+") else phones.normalise(number), None)
    return phonenumbers.national_significant_number(parsed)


def number_pattern(number: str) -> str:
    """A regular expression (Python's, and PostgreSQL's) for every form of the number."""
    digits = [rf"(?:{d}|%3{d}|\\u003{d})" for d in national_digits(number)]
    return _SEPARATOR.join(digits)


class _Matcher:
    def __init__(self, numbers: Iterable[str]) -> None:
        self.numbers = list(numbers)
        if not self.numbers:
            raise ValueError("name at least one number to look for")
        self.patterns = [re.compile(number_pattern(n).encode()) for n in self.numbers]

    def in_bytes(self, data: bytes) -> list[tuple[str, str]]:
        """(masked number, how it was found) for each number the data holds, in any layer."""
        found: dict[str, str] = {}
        for layer, how in _layers(data, "", 0):
            for number, pattern in zip(self.numbers, self.patterns, strict=True):
                if number not in found and pattern.search(layer):
                    found[number] = how
            if len(found) == len(self.numbers):
                break
        return [(phones.mask(n), how) for n, how in found.items()]

    def in_text(self, text: str) -> list[tuple[str, str]]:
        return self.in_bytes(text.encode("utf-8", errors="surrogateescape"))


def _layers(data: bytes, how: str, depth: int) -> Iterator[tuple[bytes, str]]:
    """The data, then what it decodes to: gzip, zlib streams anywhere in it (Django's file
    cache writes one after a pickled expiry), and base64 runs (kombu bodies, signed values)."""
    yield data, how
    if depth >= _MAX_DEPTH or len(data) < 16:
        return
    if data.startswith(b"\x1f\x8b"):
        try:
            unzipped = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            unzipped = b""
        yield from _layers(unzipped, f"{how}gzip ", depth + 1)
    for magic in _ZLIB_MAGIC:
        start = data.find(magic)
        while start != -1:
            try:
                inflated = zlib.decompressobj().decompress(data[start:])
            except zlib.error:
                inflated = b""
            if inflated:
                yield from _layers(inflated, f"{how}zlib ", depth + 1)
            start = data.find(magic, start + 1)
    for run in _BASE64_RUN.finditer(data):
        decoded = _b64(run.group())
        if decoded:
            yield from _layers(decoded, f"{how}base64 ", depth + 1)


def _b64(run: bytes) -> bytes:
    text = run.rstrip(b"=").replace(b"-", b"+").replace(b"_", b"/")
    text += b"=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _describe(place: str, hits: list[tuple[str, str]]) -> list[str]:
    return [f"{place}: {masked}" + (f" ({how.strip()})" if how else "") for masked, how in hits]


# --- the database ----------------------------------------------------------------------------


def database_findings(*numbers: str) -> list[str]:
    """Every column of every table, cast to text (bytea as escaped text), looked at row by row."""
    matcher = _Matcher(numbers)
    findings: list[str] = []
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names(cursor)):
            columns = connection.introspection.get_table_description(cursor, table)
            key = connection.introspection.get_primary_key_column(cursor, table)
            names = [column.name for column in columns]
            cursor.execute(f"SELECT * FROM {qn(table)}")  # noqa: S608 — names from the catalogue
            for number, row in enumerate(cursor.fetchall(), start=1):
                row_id = row[names.index(key)] if key in names else f"#{number}"
                for name, value in zip(names, row, strict=True):
                    data = _value_bytes(value)
                    if data is not None and (hits := matcher.in_bytes(data)):
                        findings += _describe(f"table {table}.{name} row {row_id}", hits)
    return findings


def _value_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, memoryview | bytes | bytearray):
        return bytes(value)
    return str(value).encode("utf-8", errors="surrogateescape")


# --- files -----------------------------------------------------------------------------------


def file_roots() -> list[Path]:
    """LANZUAN_VAR_DIR and MEDIA_ROOT, walked whole (the outbox is looked for where it is)."""
    return [Path(settings.VAR_DIR), Path(settings.MEDIA_ROOT)]


def _is_outbox(path: Path) -> bool:
    outbox = Path(settings.OUTBOX_PATH).resolve()
    resolved = path.resolve()
    return resolved.parent == outbox.parent and resolved.name.startswith(outbox.name)


def _files(*, skip_outbox: bool) -> Iterator[Path]:
    seen: set[Path] = set()
    for root in file_roots():
        if not root.is_dir():
            continue
        for folder, _dirs, names in os.walk(root):
            for name in names:
                path = Path(folder, name)
                if path.is_file() and not path.is_symlink() and path.resolve() not in seen:
                    seen.add(path.resolve())
                    if not (skip_outbox and _is_outbox(path)):
                        yield path
    outbox = Path(settings.OUTBOX_PATH)
    if outbox.parent.is_dir() and not skip_outbox:
        for path in sorted(outbox.parent.glob(outbox.name + "*")):
            if path.is_file() and path.resolve() not in seen:
                seen.add(path.resolve())
                yield path


def _shown(path: Path) -> str:
    var_dir = Path(settings.VAR_DIR).resolve()
    resolved = path.resolve()
    if resolved.is_relative_to(var_dir):
        return f"$LANZUAN_VAR_DIR/{resolved.relative_to(var_dir)}"
    return str(resolved)


def file_findings(*numbers: str, skip_outbox: bool = False) -> list[str]:
    """`skip_outbox`: leave out the file gateway's outbox (settings.OUTBOX_PATH and its
    rotations), for a test that reads what was sent from it: that file holds every number
    by design (development and tests only, README) until it expires. A test that can
    should send through an HTTP gateway instead (tests/faults/conftest.py) and scan it all."""
    matcher = _Matcher(numbers)
    findings: list[str] = []
    for path in _files(skip_outbox=skip_outbox):
        try:
            if path.stat().st_size > _MAX_FILE_BYTES:
                findings.append(f"file {_shown(path)}: too large to scan, so not known to be clean")
                continue
            data = path.read_bytes()
        except FileNotFoundError:  # deleted while we looked (a rotation, a cache expiry)
            continue
        findings += _describe(f"file {_shown(path)}", matcher.in_bytes(data))
    return findings


# --- Redis: the cache and the broker ---------------------------------------------------------


def redis_urls() -> list[str]:
    urls = [str(settings.CELERY_BROKER_URL)]
    urls += [str(c.get("LOCATION", "")) for c in settings.CACHES.values() if "Redis" in str(c["BACKEND"])]
    return sorted({url for url in urls if url.startswith(("redis://", "rediss://"))})


def _redis_values(client: Any, key: bytes) -> Iterator[tuple[str, bytes]]:
    kind = client.type(key).decode()
    if kind == "string":
        yield kind, client.get(key) or b""
    elif kind == "list":
        for item in client.lrange(key, 0, -1):
            yield kind, item
    elif kind == "hash":
        for field, value in client.hgetall(key).items():
            yield kind, field + b"=" + value
    elif kind == "set":
        for member in client.smembers(key):
            yield kind, member
    elif kind == "zset":
        for member, _score in client.zrange(key, 0, -1, withscores=True):
            yield kind, member
    elif kind == "stream":
        for _id, fields in client.xrange(key):
            for field, value in fields.items():
                yield kind, field + b"=" + value


def redis_findings(*numbers: str) -> list[str]:
    """Every key under this session's prefix (all keys when there is none), name and value."""
    import redis  # noqa: PLC0415 — only where a Redis is configured

    matcher = _Matcher(numbers)
    prefix = settings.REDIS_KEY_PREFIX
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + ":*" if prefix else "*"
    findings: list[str] = []
    for url in redis_urls():
        client = redis.Redis.from_url(url)
        where = url.rsplit("@", 1)[-1]  # no credentials in a finding
        for key in sorted(client.scan_iter(match=pattern, count=1000)):
            shown = key.decode(errors="replace")
            findings += _describe(f"redis {where} key {shown} (name)", matcher.in_bytes(key))
            for kind, value in _redis_values(client, key):
                findings += _describe(f"redis {where} key {shown} ({kind})", matcher.in_bytes(value))
    return sorted(set(findings))


def raw_number_findings(*numbers: str, skip_outbox: bool = False) -> list[str]:
    """Every place the database, the files and Redis still hold any of `numbers`
    (`skip_outbox`: see file_findings)."""
    return (
        database_findings(*numbers)
        + file_findings(*numbers, skip_outbox=skip_outbox)
        + redis_findings(*numbers)
    )


def tables_holding(*texts: str) -> list[str]:
    """Columns of any table that hold one of `texts` verbatim (a one-time code, say: not a
    number, so `database_findings` would not look for it)."""
    found = []
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            for column in connection.introspection.get_table_description(cursor, table):
                for text in texts:
                    cursor.execute(
                        f"SELECT COUNT(*) FROM {qn(table)} WHERE CAST({qn(column.name)} AS TEXT) LIKE %s",  # noqa: S608
                        [f"%{text}%"],
                    )
                    row = cursor.fetchone()
                    if row and row[0]:
                        found.append(f"{table}.{column.name} ({text})")
    return found
