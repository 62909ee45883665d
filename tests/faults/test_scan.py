"""The every-place scan finds a planted number in each place it looks, in each form, and
nothing where there is none: a scan that cannot fail would pass every fault test."""

from __future__ import annotations

import gzip
import json
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

import pytest
import redis
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.core.cache import cache
from django.core.cache.backends.filebased import FileBasedCache
from django.db import connection
from django.utils import timezone

from lanzuan import phones
from notifications.models import Message
from unsubscribe.models import Step

from ..pipeline_helpers import file
from ..workers import purge_queue
from .scan import (
    database_findings,
    file_findings,
    national_digits,
    number_pattern,
    raw_number_findings,
    redis_findings,
    redis_urls,
    unique_number,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pytest_django import Settings

    from tenants.models import Tenant


def written_forms(e164: str) -> list[str]:
    """The forms a number is written in: by people, systems and encoders."""
    national = national_digits(e164)
    spaced = f"{national[:3]} {national[3:7]} {national[7:]}"
    dashed = spaced.replace(" ", "-")
    return [
        e164,
        e164[1:],
        "00" + e164[1:],
        national,
        spaced,
        dashed,
        f"+86 {dashed}",
        json.dumps({"to": e164}, ensure_ascii=True),
        json.dumps(spaced)[1:-1].replace(" ", "\\u0020"),
        "".join(f"\\u{ord(c):04x}" for c in national),  # every digit escaped
        quote(e164),  # %2B86…
        quote(spaced),  # 138%200013%208000
        urlencode({"phone": f"+86 {spaced}"}),  # phone=%2B86+138+0013+8000
        "".join(f"%{ord(c):02X}" for c in national),
    ]


@pytest.mark.parametrize("index", range(14))
def test_the_pattern_matches_every_written_form(index: int) -> None:
    import re

    number = unique_number()
    form = written_forms(number)[index]
    assert re.search(number_pattern(number), f"xx {form} yy"), form


def test_the_pattern_does_not_match_other_numbers_or_the_masked_form() -> None:
    import re

    number = unique_number()
    pattern = number_pattern(number)
    national = national_digits(number)
    near_misses = [
        national[:-1],  # one digit short
        national[:5] + "9" + national[6:] if national[5] != "9" else national[:5] + "8" + national[6:],
        phones.mask(number),
        phones.platform_phone_hash(number),
        f"{national[:3]}, {national[3:7]}, {national[7:]}",  # a list of numbers, not one number
        unique_number(),
    ]
    for text in near_misses:
        assert not re.search(pattern, text), text


def test_unique_numbers_are_valid_and_distinct() -> None:
    numbers = [unique_number() for _ in range(50)]
    assert len(set(numbers)) == 50
    assert all(phones.normalise(n) == n for n in numbers)


# --- the database ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_finds_a_number_in_any_table_column_and_row(tenant_a: Tenant) -> None:
    number, other = unique_number(), unique_number()
    national = national_digits(number)
    # a text column, in a spaced form
    message = Message.objects.create(
        tenant=tenant_a,
        channel="sms",
        event="otp",
        language="zh-hans",
        to="",
        body=f"call {national[:3]} {national[3:7]} {national[7:]}",
    )
    # a history table, in a percent-encoded form
    request = file(tenant_a, phone=other)
    step = Step.objects.for_tenant(tenant_a).filter(request=request).first()
    assert step is not None
    Step.history.filter(id=step.pk).update(last_error="HTTP 400: phone=" + quote(number))
    # a jsonb column, every digit JSON-escaped inside a string
    escaped = "".join(f"\\u{ord(c):04x}" for c in national)
    Message.objects.unscoped(reason="test").filter(pk=message.pk).update(error=f'{{"to": "{escaped}"}}')

    findings = database_findings(number)

    assert f"table notifications_message.body row {message.pk}: {phones.mask(number)}" in findings
    assert f"table notifications_message.error row {message.pk}: {phones.mask(number)}" in findings
    history = [f for f in findings if f.startswith("table unsubscribe_historicalstep.last_error row ")]
    assert history, findings
    # the other number is where the request keeps it, not where this one was planted
    others = database_findings(other)
    assert any(f.startswith("table unsubscribe_unsubscriberequest.phone row ") for f in others)
    assert not any("notifications_message" in f for f in others)


@pytest.mark.django_db
def test_finds_a_number_in_a_bytea_column_and_inside_compressed_data(db: None) -> None:
    number = unique_number()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE faults_scan_blob (id serial PRIMARY KEY, data bytea, note jsonb)")
        cursor.execute(
            "INSERT INTO faults_scan_blob (data, note) VALUES (%s, %s), (%s, %s)",
            [
                gzip.compress(f"to={number}".encode()),
                json.dumps({"ok": True}),
                b"\x00\x01 nothing here",
                json.dumps({"msisdn": number}),
            ],
        )
    findings = [f for f in database_findings(number) if "faults_scan_blob" in f]
    masked = phones.mask(number)
    assert findings == [
        f"table faults_scan_blob.data row 1: {masked} (gzip)",
        f"table faults_scan_blob.note row 2: {masked}",
    ]


@pytest.mark.django_db
def test_finds_a_number_in_a_signed_and_compressed_session(db: None) -> None:
    number = unique_number()
    session = SessionStore()
    session["phone"] = number
    session["padding"] = "x" * 500  # long enough for Django to compress it
    session.save()
    assert session.session_key is not None
    stored = session.model.objects.get(session_key=session.session_key).session_data
    assert number not in stored and stored.startswith(".")  # compressed, then base64

    findings = database_findings(number)

    assert findings == [
        f"table django_session.session_data row {session.session_key}: {phones.mask(number)} (base64 zlib)"
    ]


@pytest.mark.django_db
def test_a_clean_database_has_no_findings(tenant_a: Tenant) -> None:
    number = unique_number()
    file(tenant_a, phone=unique_number())
    assert database_findings(number) == []


# --- files -----------------------------------------------------------------------------------


@pytest.fixture
def planted_dir() -> Iterator[Path]:
    folder = Path(settings.VAR_DIR) / f"faults-scan-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_finds_a_number_in_files_under_the_var_dir_and_media_root(
    planted_dir: Path, settings: Settings, tmp_path: Path
) -> None:
    number, clean = unique_number(), unique_number()
    (planted_dir / "plain.log").write_text(f"sent to {number}\n")
    (planted_dir / "clean.log").write_text(f"sent to {phones.mask(clean)}\n")
    media = Path(settings.MEDIA_ROOT) / "imports" / f"{planted_dir.name}.csv"
    media.parent.mkdir(parents=True, exist_ok=True)
    media.write_text(f"phone\n{national_digits(number)}\n")
    # Django's file cache: a pickled expiry, then the value pickled and zlib-compressed
    FileBasedCache(str(planted_dir / "cache"), {}).set("code", {"to": number})
    try:
        findings = file_findings(number)
    finally:
        media.unlink()
    masked = phones.mask(number)
    assert f"file $LANZUAN_VAR_DIR/{planted_dir.name}/plain.log: {masked}" in findings
    assert any(
        f.startswith(f"file $LANZUAN_VAR_DIR/media/imports/{planted_dir.name}.csv: ") for f in findings
    )
    assert any(
        f.startswith(f"file $LANZUAN_VAR_DIR/{planted_dir.name}/cache/") and f.endswith("(zlib)")
        for f in findings
    ), findings
    assert len(findings) == 3
    assert file_findings(clean) == []


def test_finds_a_number_in_the_outbox_and_its_rotated_and_gzipped_files(
    settings: Settings, tmp_path: Path
) -> None:
    settings.OUTBOX_PATH = tmp_path / "outbox.jsonl"
    number, rotated_only, gzipped_only = unique_number(), unique_number(), unique_number()
    line = {"to": number, "channel": "sms", "body": "x", "tenant": "t", "sent_at": timezone.now().isoformat()}
    (tmp_path / "outbox.jsonl").write_text(json.dumps(line) + "\n")
    (tmp_path / "outbox.jsonl.20260101T000000Z").write_text(json.dumps({**line, "to": rotated_only}) + "\n")
    (tmp_path / "outbox.jsonl.20251231T000000Z.gz").write_bytes(
        gzip.compress(json.dumps({**line, "to": gzipped_only}).encode())
    )
    (tmp_path / "elsewhere.txt").write_text(number)  # not ours to scan: outside every root

    assert file_findings(number) == [f"file {tmp_path / 'outbox.jsonl'}: {phones.mask(number)}"]
    assert file_findings(rotated_only) == [
        f"file {tmp_path / 'outbox.jsonl.20260101T000000Z'}: {phones.mask(rotated_only)}"
    ]
    assert file_findings(gzipped_only) == [
        f"file {tmp_path / 'outbox.jsonl.20251231T000000Z.gz'}: {phones.mask(gzipped_only)} (gzip)"
    ]
    assert file_findings(number, skip_outbox=True) == []


# --- Redis: the cache and the broker ---------------------------------------------------------


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    urls = redis_urls()
    if not urls:
        pytest.skip("no Redis configured (CACHE_URL, CELERY_BROKER_URL)")
    client = redis.Redis.from_url(urls[0])
    planted = f"{settings.REDIS_KEY_PREFIX}:faults-scan:{uuid.uuid4().hex[:8]}"
    yield client
    for key in client.scan_iter(match=planted.rsplit(":", 1)[0] + ":*"):
        client.delete(key)


def test_finds_a_number_in_every_kind_of_redis_value_and_key(redis_client: redis.Redis) -> None:
    numbers = {kind: unique_number() for kind in ("string", "list", "hash", "set", "zset", "name")}
    base = f"{settings.REDIS_KEY_PREFIX}:faults-scan:{uuid.uuid4().hex[:8]}"
    redis_client.set(f"{base}:string", json.dumps({"to": numbers["string"]}))
    redis_client.rpush(f"{base}:list", "a", f"to={quote(numbers['list'])}")
    redis_client.hset(f"{base}:hash", "to", national_digits(numbers["hash"]))
    redis_client.sadd(f"{base}:set", numbers["set"][1:])
    redis_client.zadd(f"{base}:zset", {f"+86 {national_digits(numbers['zset'])}": 1.0})
    redis_client.set(f"{base}:otp:{numbers['name']}", "1")
    # and outside our prefix: another session's, never ours to report
    outside = unique_number()
    redis_client.set(f"someone-else:{uuid.uuid4().hex[:8]}:{outside}", outside, ex=60)

    for kind, number in numbers.items():
        findings = redis_findings(number)
        assert len(findings) == 1 and base in findings[0] and f"({kind}):" in findings[0], (kind, findings)
    assert redis_findings(outside) == []


def test_finds_a_number_in_the_cache(redis_client: redis.Redis) -> None:
    number = unique_number()
    key = f"faults-scan-{uuid.uuid4().hex[:8]}"
    cache.set(key, {"to": number, "body": "验证码 123456"}, 60)  # pickled by Django's Redis cache
    try:
        findings = redis_findings(number)
    finally:
        cache.delete(key)
    assert len(findings) == 1 and f":{key} (string): {phones.mask(number)}" in findings[0]
    assert redis_findings(number) == []


def test_finds_a_number_in_a_queued_and_in_an_unacknowledged_broker_message(
    settings: Settings, db: None
) -> None:
    """A task message keeps its arguments base64-encoded in a kombu envelope (and, unless
    the caller hides it, their repr in clear in its headers): in the queue while it waits,
    in the unacknowledged hash while a worker holds it."""
    from lanzuan.celery import app
    from unsubscribe.tasks import process_request

    on_redis = str(settings.CELERY_BROKER_URL).startswith("redis")
    in_clear, in_body, held = unique_number(), unique_number(), unique_number()
    purge_queue()
    try:
        process_request.apply_async(args=(in_clear,))
        # argsrepr: Celery's message option, which its type stubs leave out
        process_request.apply_async(args=(in_body,), argsrepr="(hidden)")  # type: ignore[call-arg]
        clear, body = raw_number_findings(in_clear), raw_number_findings(in_body)
        assert len(clear) == 1 and len(body) == 1, (clear, body)
        if on_redis:
            assert clear[0].endswith(f":pipeline (list): {phones.mask(in_clear)}"), clear
            assert body[0].endswith(f":pipeline (list): {phones.mask(in_body)} (base64)"), body
        else:
            assert "/broker/" in clear[0] and "/broker/" in body[0] and body[0].endswith("(base64)")
        purge_queue()
        assert raw_number_findings(in_clear, in_body) == []
        if not on_redis:
            return  # the file broker has no unacknowledged store
        process_request.apply_async(args=(held,), argsrepr="(hidden)")  # type: ignore[call-arg]
        with app.connection_for_read() as conn:
            queue = conn.SimpleQueue("pipeline")
            message = queue.get(timeout=5)  # a worker has it, and has not acknowledged it
            try:
                findings = redis_findings(held)
                assert len(findings) == 1, findings
                assert findings[0].endswith(f":unacked (hash): {phones.mask(held)} (base64)"), findings
            finally:
                message.ack()
                queue.close()
        assert redis_findings(held) == []
    finally:
        purge_queue()
