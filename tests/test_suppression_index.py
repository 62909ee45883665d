"""The suppression index (unsubscribe/suppressions/index.py) and the bulk look-up over it
(suppressions/batch.py): it answers exactly what PostgreSQL's rows answer, through adds, lifts,
pauses, rows of digest version 1, the platform-wide list, refreshes and concurrent writers."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import timedelta
from itertools import count
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lanzuan import phones
from tenants import db_scope
from tenants.models import Tenant
from unsubscribe.donotmarket.services import platform_do_not_market_lift, platform_do_not_market_set
from unsubscribe.models import SCOPE_ALL, PlatformDoNotMarket, Service, Suppression, SuppressionEvent
from unsubscribe.suppressions import index
from unsubscribe.suppressions.batch import NEVER, batch_check
from unsubscribe.suppressions.selectors import relevant_scopes
from unsubscribe.suppressions.services import suppression_lift, suppressions_add

from .workers import suppression_added_by_another_process

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the index is PostgreSQL's")

POOL = [f"+86139{n:08d}" for n in (11, 22, 33, 44, 55, 66)]
SERVICES = ["deals", "news"]
_slugs = count()


def _tenant() -> Tenant:
    tenant = Tenant.objects.create(
        slug=f"idx-{next(_slugs)}-{time.monotonic_ns()}", name="Index", allow_resubscribe=True
    )
    for code in SERVICES:
        Service.objects.create(tenant=tenant, code=code, name=code)
    return tenant


def _add(tenant: Tenant, e164: str, scopes: list[str], *, keyed: bool = True, pause: bool = False) -> None:
    suppressions_add(
        tenant=tenant,
        phone_hash=phones.tenant_phone_hash(tenant.pk, e164),
        phone_masked=phones.mask(e164),
        scopes=scopes,
        channel="api",
        e164=e164 if keyed else None,
        ends_at=timezone.now() + timedelta(days=30) if pause else None,
    )


def _expected(tenant: Tenant, numbers: list[str], service: str | None) -> list[tuple[Any, ...]]:
    """What the table's rows say of each number (the single-number selectors' rule)."""
    wanted = relevant_scopes(service)
    platform = dict(PlatformDoNotMarket.objects.values_list("phone_hash", "created_at"))
    answers = []
    for e164 in numbers:
        rows = list(
            Suppression.objects.for_tenant(tenant)
            .filter(phone_hash=phones.tenant_phone_hash(tenant.pk, e164))
            .values_list("scope", "created_at")
        )
        since = [c for s, c in rows if s in wanted]
        everywhere = platform.get(phones.platform_phone_hash(e164))
        if everywhere is not None:
            since.append(everywhere)
        answers.append(
            (
                bool(since),
                min(since) if since else None,
                tuple(sorted(s for s, _c in rows)),
                everywhere is not None,
            )
        )
    return answers


def _answered(
    tenant: Tenant, numbers: list[str], service: str | None, *, ahead: bool = False
) -> list[tuple[Any, ...]]:
    """batch_check's answer; `ahead`: with the changed rows asked for before the parse, as the
    lean bulk check asks (index.lookahead: the query in flight while the numbers are parsed)."""
    with index.lookahead(tenant.pk) if ahead else contextlib.nullcontext() as begun:
        answer = batch_check(
            tenant_id=tenant.pk, parsed=phones.parse_batch(numbers), service_code=service, ahead=begun
        )
    return [
        (
            bool(answer.suppressed[i]),
            index.since_datetime(int(answer.since[i])) if answer.since[i] != NEVER else None,
            answer.scopes_of(int(answer.scope_mask[i])),
            bool(answer.everywhere[i]),
        )
        for i in range(len(numbers))
    ]


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.sampled_from(POOL),
            st.sets(st.sampled_from([SCOPE_ALL, *SERVICES]), min_size=1).map(sorted),
            st.booleans(),  # with a lookup key (version 2) or version 1 only
            st.booleans(),  # a pause
        ),
        st.tuples(st.just("lift"), st.sampled_from(POOL), st.sets(st.sampled_from(SERVICES)).map(sorted)),
        st.tuples(st.just("platform"), st.sampled_from(POOL), st.booleans()),
        st.tuples(st.just("refresh"), st.booleans()),
        st.tuples(st.just("check"), st.sampled_from([None, *SERVICES])),
    ),
    max_size=14,
)


@pytest.mark.django_db(transaction=True)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations)
def test_the_index_answers_what_postgresql_answers(steps: list[tuple[Any, ...]]) -> None:
    tenant = _tenant()
    numbers = [*POOL, POOL[0], "+8613700000000", "not a number"]
    try:
        for step in [*steps, ("check", None), ("check", "deals")]:
            kind = step[0]
            if kind == "add":
                _add(tenant, step[1], step[2], keyed=step[3], pause=step[4])
            elif kind == "lift":
                suppression_lift(
                    tenant=tenant,
                    phone=step[1],
                    channel="web",
                    verification_method="otp",
                    evidence={},
                    services=step[2],
                )
            elif kind == "platform":
                (platform_do_not_market_set if step[2] else platform_do_not_market_lift)(
                    e164=step[1], evidence={}
                )
            elif kind == "refresh":
                index.index_refresh(tenant.pk, full=step[1])
                index.index_refresh(index.PLATFORM, full=step[1])
            else:
                checked = [n for n in numbers if n.startswith("+")]
                expected = _expected(tenant, checked, step[1])
                assert _answered(tenant, [*checked, "not a number"], step[1])[:-1] == expected
                assert _answered(tenant, [*checked, "not a number"], step[1], ahead=True)[:-1] == expected
    finally:  # through the writer, as in production: the platform-wide index is shared
        for e164 in POOL:
            platform_do_not_market_lift(e164=e164, evidence={})


@pytest.mark.django_db(transaction=True)
def test_a_writer_in_flight_while_the_index_is_built_is_not_lost() -> None:
    # given a tenant whose index exists, and a writer whose transaction is open when a build starts
    tenant = _tenant()
    _add(tenant, POOL[0], [SCOPE_ALL])
    index.index_refresh(tenant.pk, full=True)
    started, done = threading.Event(), threading.Event()

    def writer() -> None:
        try:
            # A writer's steps without the audit record (whose chain lock would order the two
            # writers anyway): the index's lock, the row, its event.
            with db_scope.tenants_scope([tenant.pk]), transaction.atomic():
                index.writers_lock(tenant.pk)
                digest = phones.tenant_phone_hash(tenant.pk, POOL[1])
                key = phones.tenant_lookup_key(tenant.pk, POOL[1])
                Suppression.objects.create(tenant=tenant, phone_hash=digest, lookup_key=key, phone_masked="x")
                SuppressionEvent.objects.create(
                    tenant=tenant, phone_hash=digest, phone_masked="x", scope=SCOPE_ALL, action="added"
                )
                started.set()
                time.sleep(1)  # the build waits for this commit before it reads its mark
        finally:
            connection.close()
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert started.wait(10)
    # when a later event commits first (its id is above the writer's) and the index is built anew
    _add(tenant, POOL[2], [SCOPE_ALL])
    index.index_refresh(tenant.pk, full=True)
    thread.join(10)
    # then the next check sees every number; and so does one after an incremental refresh
    assert [a[0] for a in _answered(tenant, POOL[:4], None)] == [True, True, True, False]
    index.index_refresh(tenant.pk)
    assert [a[0] for a in _answered(tenant, POOL[:4], None)] == [True, True, True, False]


@pytest.mark.django_db(transaction=True)
def test_a_suppression_committed_by_another_process_is_seen_by_the_next_check() -> None:
    # given a tenant whose index is built and checked once
    tenant = _tenant()
    index.index_refresh(tenant.pk, full=True)
    assert _answered(tenant, [POOL[2]], None)[0][0] is False
    # when another process files an opt-out of the number
    suppression_added_by_another_process(tenant.pk, POOL[2])
    # then the next check in this process says suppressed, without a rebuild
    before = index._current(tenant.pk)  # noqa: SLF001
    assert _answered(tenant, [POOL[2]], None)[0][0] is True
    after = index._current(tenant.pk)  # noqa: SLF001
    assert before is not None and after is not None and after.mark == before.mark


def test_parse_batch_reads_canonical_forms_as_normalise_does() -> None:
    raw = [
        "+8613800138000",
        "13800138000",
        "8613800138000",
        " 138 0013 8000",
        "+14155552671",
        "12345",
        "+8612800138000",
    ]
    parsed = phones.parse_batch(raw)
    expected: list[str | None] = []
    for item in raw:
        try:
            expected.append(phones.normalise_fast(item))
        except phones.InvalidPhoneNumber:
            expected.append(None)
    assert parsed.e164() == expected


_NATIONAL = st.integers(min_value=10_000_000_000, max_value=29_999_999_999).map(str)
_ITEM: st.SearchStrategy[Any] = st.one_of(
    st.tuples(st.sampled_from(["+86", "86", "", "+86 ", "0086", "+85", "+860", "8", "+"]), _NATIONAL).map(
        "".join
    ),
    st.text(alphabet="0123456789+86 -()\n\x00１３８號a", max_size=16),
    st.text(max_size=15),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.sampled_from([None, True, False, 1.5, [], {}]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ITEM, max_size=40))
def test_parse_batch_reads_any_list_as_normalise_reads_each_item(raw: list[Any]) -> None:
    """The vectorised parse (two 8-byte words per item, digits checked and summed inside the
    words) gives every item the answer normalise_fast() gives it alone."""
    parsed = phones.parse_batch(raw)
    for i, item in enumerate(raw):
        expected = None
        if isinstance(item, str | int) and not isinstance(item, bool):
            with contextlib.suppress(phones.InvalidPhoneNumber):
                expected = phones.normalise_fast(str(item))
        assert parsed.e164()[i] == expected, item
        assert (i in parsed.errors) == (expected is None), item
        if parsed.plain[i]:  # written "+86…", "86…" or as 11 digits, and read as such
            assert isinstance(item, str) and expected is not None and item.endswith(expected[3:])
            words = parsed.national[i].astype("<u8").tobytes()
            assert words[:8] + words[13:] == expected[3:].encode()


@given(st.lists(st.integers(min_value=13_000_000_000, max_value=19_999_999_999), min_size=1, max_size=50))
def test_lookup_keys_are_distinct_per_number_and_per_tenant(nationals: list[int]) -> None:
    numbers = [f"+86{n}" for n in nationals]
    parsed = phones.parse_batch(numbers)
    platform = phones.platform_lookup_keys(parsed.blocks)
    mine = phones.tenant_lookup_keys_from_platform(1, platform)
    theirs = phones.tenant_lookup_keys_from_platform(2, platform)
    distinct = len(set(numbers))
    assert len({bytes(k) for k in mine}) == distinct
    assert not {bytes(k) for k in mine} & {bytes(k) for k in theirs}
    assert bytes(mine[0]) == phones.tenant_lookup_key(1, numbers[0])
    assert np.array_equal(platform[0], np.frombuffer(phones.platform_lookup_key(numbers[0]), dtype=np.uint8))


@given(st.integers(min_value=13_000_000_000, max_value=19_999_999_999))
def test_a_lookup_key_does_not_decrypt_to_its_number_even_with_the_key(national: int) -> None:
    # Fed forward (AES(x) XOR x), the key is a digest: with the server's key it can be recomputed
    # from a guessed number, not turned back into the number (plain AES would give the block back).
    block = phones.parse_batch([f"+86{national}"]).blocks
    platform = phones.platform_lookup_keys(block)
    key = phones._lookup_cipher_key(phones._platform_key(), "lookup-key:v2:platform")
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305
    decrypted = decryptor.update(bytes(platform[0])) + decryptor.finalize()
    assert decrypted != bytes(block[0])
    assert bytes(platform[0]) != bytes(block[0])


@pytest.mark.django_db(transaction=True)
def test_a_deleted_tenants_index_goes_with_it() -> None:
    tenant = _tenant()
    _add(tenant, POOL[0], [SCOPE_ALL])
    index.index_refresh(tenant.pk, full=True)
    where = index.index_root() / f"tenant-{tenant.pk}"
    assert (where / "current").exists()
    with db_scope.tenants_scope([tenant.pk]):
        Suppression.objects.for_tenant(tenant).delete()
        SuppressionEvent.objects.for_tenant(tenant).delete()
        Service.objects.for_tenant(tenant).delete()
    tenant.delete()
    assert not where.exists()


_LINE = st.one_of(
    st.sampled_from(["+8613800138000", "13800138001", "8613800138002", "12345", "+86 138 0013 8003", "abc"]),
    st.text(alphabet="0123456789+86 \t\x1f", max_size=15),
)
_LINE_END = st.sampled_from(["\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\n\n", "  \n"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_LINE, _LINE_END), max_size=30), _LINE)
def test_parse_lines_reads_a_text_as_its_non_blank_lines(lines: list[tuple[str, str]], last: str) -> None:
    """A scrub chunk's bytes parsed without a string per line: the same lines as splitlines()
    without the blank and space-only ones (CSV's rows), and the same answers as parse_batch."""
    text = "".join(line + end for line, end in lines) + last
    parsed = phones.parse_lines(text.encode())
    expected = [line for line in text.splitlines() if line and not line.isspace()]
    assert parsed is not None
    assert list(parsed.raw[:]) == expected
    batch = phones.parse_batch(expected)
    assert parsed.e164() == batch.e164() and parsed.errors == batch.errors
    assert phones.parse_lines("１３８００１３８０００\n".encode()) is None  # beyond ASCII: read as text
