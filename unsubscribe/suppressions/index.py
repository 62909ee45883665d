"""The suppression index: a tenant's suppressions as sorted arrays on disk, memory-mapped, for
the bulk look-ups (checks of 10,000 numbers, scrubs of 10 million) on PostgreSQL.

One index per tenant (and one for the platform-wide do-not-market list) under
settings.SUPPRESSION_INDEX_DIR: the rows that carry a lookup key (digest version 2), sorted by
it, as numpy arrays (key halves, scope, since, a 64-bit prefix of the row's version-1 digest).
Mapped, not read: they live in the page cache, shared by every process of the host, never in
a worker's heap.

Never stale. Each index records its high-water mark: the last suppression event (every
add and lift writes one, in the same transaction as the row) whose effect it holds. A look-up
reads the index and, in one query, the rows of every number with an event after the mark
(current rows from the table, so a lift since then is seen), and lets those replace what the
index says of those numbers. The mark is read under an exclusive advisory lock that every
writer holds shared for its transaction (`writers_lock`): no event at or below the mark can
still be uncommitted, and every later one gets a higher id.

Rows without a lookup key (written before version 2, or by a caller without the number) are
matched by their version-1 digest in PostgreSQL, only while the tenant has any.

Refreshed incrementally: `index_refresh` merges the rows changed since the mark into a new
generation (reading only those from PostgreSQL) once there are many; a full build reads the
table once with a binary COPY. Generations are published by renaming a pointer file; a reader
keeps the one it opened (a deleted file stays readable while mapped).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from tenants import db_scope

# pg_advisory locks: (namespace, tenant id; 0 for the platform-wide list)
LOCK_NAMESPACE = 0x4C5A  # "LZ"
PLATFORM = 0
REBUILD_AFTER = 50_000  # rows changed since the mark: a look-up then refreshes the index first
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in µs since 1970: binary COPY's timestamps
NEVER = np.iinfo(np.int64).max

# A fixed-width tuple of a binary COPY: 4 fields, each with its length.
_COPY_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("klen", ">i4"),
        ("hi", ">u8"),
        ("lo", ">u8"),
        ("slen", ">i4"),
        ("scope", ">i4"),
        ("clen", ">i4"),
        ("created", ">i8"),
        ("vlen", ">i4"),
        ("v1", ">u8"),
    ]
)
_COPY_HEADER = 19


@dataclass(frozen=True)
class _Source:
    """Where an index reads its rows: a tenant's suppressions or the platform-wide list."""

    rows: str
    events: str
    tenant_filter: str  # "tenant_id = %s AND " or ""
    scope_column: str  # "scope" or "'*'"


_TENANT = _Source("unsubscribe_suppression", "unsubscribe_suppressionevent", "tenant_id = %s AND ", "scope")
_PLATFORM = _Source("unsubscribe_platformdonotmarket", "unsubscribe_platformdonotmarketevent", "", "'*'")


def enabled() -> bool:
    return connection.vendor == "postgresql"


def writers_lock(tenant_id: int) -> None:
    """Taken by every writer of suppressions (or of the platform-wide list: PLATFORM) inside
    its transaction, before it writes: an index build waits for those in flight."""
    if enabled():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", [LOCK_NAMESPACE, tenant_id])


def index_root() -> Path:
    """This database's indexes: a database made again (a new oid) starts with none."""
    oid = getattr(connection, "_lanzuan_index_db", None)
    if oid is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT oid FROM pg_database WHERE datname = current_database()")
            oid = int(cursor.fetchone()[0])
        connection._lanzuan_index_db = oid  # type: ignore[attr-defined]
    return Path(settings.SUPPRESSION_INDEX_DIR) / f"db-{oid}"


def _dir(tenant_id: int) -> Path:
    return index_root() / ("platform" if tenant_id == PLATFORM else f"tenant-{int(tenant_id)}")


class NoIndex(Exception):  # noqa: N818
    """No index to read inside a transaction (it is built only from committed rows)."""


def _v1_prefix(hex_digests: Sequence[str]) -> Any:
    return np.array([int(d[:16], 16) for d in hex_digests], dtype=np.uint64)


def key_halves(keys: Any) -> tuple[Any, Any]:
    """(n, 16) uint8 keys → two uint64 arrays (big-endian halves: their order is the bytes')."""
    view = np.ascontiguousarray(keys, dtype=np.uint8).view(">u8").reshape(-1, 2)
    return view[:, 0].astype(np.uint64), view[:, 1].astype(np.uint64)


# --- generations on disk -----------------------------------------------------------------


@dataclass(frozen=True)
class Generation:
    """One published index: sorted by (hi, lo); `scopes` names the scope numbers."""

    mark: int
    scopes: list[str]
    hi: Any
    lo: Any
    scope: Any  # uint16 into scopes
    created: Any  # int64 µs since 1970 (UTC)
    v1: Any  # uint64: first 8 bytes of the row's version-1 digest
    # Where each run of keys with the same top bits starts (2^b + 1 entries; b from the count);
    # None until published.
    starts: Any = None

    def __len__(self) -> int:
        return len(self.hi)


_ARRAYS = ("hi", "lo", "scope", "created", "v1")


def _starts(hi: Any) -> Any:
    """The directory of sorted `hi`: entry t is the first position whose top b bits are ≥ t,
    with 2^b about the count, so a probe finds its one or two candidates in two reads."""
    bits = max(len(hi) - 1, 1).bit_length() - 1
    top = (np.asarray(hi) >> np.uint64(64 - bits)).astype(np.int64) if bits else np.zeros(len(hi), np.int64)
    counts = np.bincount(top, minlength=1 << bits)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.uint32 if len(hi) < 1 << 32 else np.int64)


def _open(path: Path) -> Generation:
    meta = json.loads((path / "meta.json").read_text())
    arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
    try:
        starts = np.load(path / "starts.npy", mmap_mode="r")
    except FileNotFoundError:  # published before the directory was
        starts = _starts(arrays["hi"])
    return Generation(mark=meta["mark"], scopes=meta["scopes"], **arrays, starts=starts)


# This process's mapped generations, by index, with the pointer file's identity when it was read.
_opened: dict[Path, tuple[tuple[int, int, int], Generation]] = {}


def _current(tenant_id: int) -> Generation | None:
    base = _dir(tenant_id)
    pointer = base / "current"
    try:
        # A publish replaces the pointer (a new file): one stat tells whether it changed.
        stat = os.stat(pointer)
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        known = _opened.get(base)
        if known is not None and known[0] == stamp:
            return known[1]
        gen = _open(base / pointer.read_text().strip())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None
    if len(_opened) > 256:  # noqa: PLR2004  # a worker that saw many tenants maps only the recent ones
        _opened.clear()
    _opened[base] = (stamp, gen)
    return gen


def _publish(tenant_id: int, gen: Generation) -> None:
    base = _dir(tenant_id)
    base.mkdir(parents=True, exist_ok=True)
    name = f"g{gen.mark}-{secrets.token_hex(4)}"
    tmp = base / f".{name}"
    tmp.mkdir()
    order = np.lexsort((gen.lo, gen.hi))
    for field in _ARRAYS:
        np.save(tmp / f"{field}.npy", np.asarray(getattr(gen, field))[order])
    np.save(tmp / "starts.npy", _starts(np.load(tmp / "hi.npy", mmap_mode="r")))
    (tmp / "meta.json").write_text(json.dumps({"mark": gen.mark, "scopes": gen.scopes}))
    tmp.rename(base / name)
    pointer = base / f".current-{name}"
    pointer.write_text(name)
    pointer.replace(base / "current")
    for old in base.glob("g*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)  # a reader that mapped it keeps its pages


@contextlib.contextmanager
def _build_lock(tenant_id: int) -> Iterator[None]:
    base = _dir(tenant_id)
    base.mkdir(parents=True, exist_ok=True)
    with (base / "lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _mark_now(tenant_id: int, source: _Source) -> int:
    """The high-water mark: the last event, once no writer of this tenant is in flight."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, tenant_id])
        where = f"WHERE {source.tenant_filter[:-5]}" if source.tenant_filter else ""
        sql = f"SELECT coalesce(max(id), 0) FROM {source.events} {where}"  # noqa: S608  # our table names
        cursor.execute(sql, [tenant_id] if where else [])
        return int(cursor.fetchone()[0])


def _params(tenant_id: int, source: _Source) -> list[Any]:
    return [tenant_id] if source.tenant_filter else []


def _build_full(tenant_id: int) -> Generation:
    source = _PLATFORM if tenant_id == PLATFORM else _TENANT
    mark = _mark_now(tenant_id, source)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT {source.scope_column} FROM {source.rows} WHERE {source.tenant_filter} "  # noqa: S608
            "lookup_key IS NOT NULL",
            _params(tenant_id, source),
        )
        scopes = sorted(row[0] for row in cursor.fetchall())
        connection.sync_db_scope()  # type: ignore[attr-defined]  # COPY runs on the raw cursor
        # A scope unknown here came with a row after the mark (the look-up reads those): left out.
        statement = (
            "COPY (SELECT lookup_key, coalesce(array_position(%s::text[], "  # noqa: S608
            f"{source.scope_column}), 0)::int4, created_at, ('x' || left(phone_hash, 16))::bit(64)::int8 "
            f"FROM {source.rows} WHERE {source.tenant_filter}lookup_key IS NOT NULL "
            "AND octet_length(lookup_key) = 16) TO STDOUT (FORMAT binary)"
        )
        buffer = bytearray()
        with cursor.cursor.copy(statement, [scopes, *_params(tenant_id, source)]) as copy:
            for chunk in copy:
                buffer += chunk
    body = (
        np.frombuffer(bytes(buffer[_COPY_HEADER:-2]), dtype=_COPY_ROW)
        if len(buffer) > _COPY_HEADER + 2
        else np.zeros(0, _COPY_ROW)
    )
    known = body["scope"] > 0
    body = body[known]
    return Generation(
        mark=mark,
        scopes=scopes,
        hi=body["hi"].astype(np.uint64),
        lo=body["lo"].astype(np.uint64),
        scope=(body["scope"] - 1).astype(np.uint16),
        created=body["created"].astype(np.int64) + PG_EPOCH_US,
        v1=body["v1"].astype(np.uint64),
    )


# --- the rows changed since a mark ------------------------------------------------------


@dataclass(frozen=True)
class Delta:
    lost_mark: bool  # the event at the mark is gone (a database emptied and filled again): rebuild
    changed_v1: Any  # uint64 prefixes of the version-1 digests with an event after the mark
    count: int  # how many numbers changed
    rows: list[tuple[bytes, str, datetime, str]]  # their current rows with a key: key, scope, since, digest
    v1_only: bool  # the source holds rows without a key (matched by the version-1 digest)


def _delta_sql(tenant_id: int, mark: int, tag: str) -> tuple[str, list[Any]]:
    source = _PLATFORM if tenant_id == PLATFORM else _TENANT
    params = _params(tenant_id, source)
    sql = (
        f"(WITH changed AS (SELECT DISTINCT phone_hash FROM {source.events} "  # noqa: S608
        f"WHERE {source.tenant_filter}id > %s) "
        f"SELECT '{tag}c', c.phone_hash, s.lookup_key, {source.scope_column}, s.created_at FROM changed c "
        f"LEFT JOIN {source.rows} s ON {source.tenant_filter.replace('tenant_id', 's.tenant_id')}"
        "s.phone_hash = c.phone_hash) "
        f"UNION ALL SELECT '{tag}v', NULL, NULL, NULL, NULL WHERE EXISTS (SELECT 1 FROM {source.rows} "
        f"WHERE {source.tenant_filter}lookup_key IS NULL) "
        f"UNION ALL SELECT '{tag}m', NULL, NULL, NULL, NULL WHERE %s > 0 AND NOT EXISTS "
        f"(SELECT 1 FROM {source.events} WHERE id = %s)"
    )
    return sql, [*params, mark, *params, *params, mark, mark]


def _delta_of(found: list[tuple[Any, ...]]) -> Delta:
    changed = [row[1] for row in found if row[0] == "c"]
    rows = [
        (bytes(key), scope, created, digest)
        for kind, digest, key, scope, created in found
        if kind == "c" and key is not None and created is not None
    ]
    return Delta(
        lost_mark=any(row[0] == "m" for row in found),
        changed_v1=np.unique(_v1_prefix(changed)),
        count=len(set(changed)),
        rows=rows,
        v1_only=any(row[0] == "v" for row in found),
    )


def _deltas_sql(
    marks: list[tuple[int, int]], also_exists: tuple[str, list[Any]] | None = None
) -> tuple[str, list[Any]]:
    """One query of the rows changed since each (index, mark) and, when asked, whether the query
    `also_exists` has a row."""
    parts = [_delta_sql(tenant_id, mark, str(i)) for i, (tenant_id, mark) in enumerate(marks)]
    if also_exists is not None:
        sql, params = also_exists
        parts.append((f"SELECT 'x', NULL, NULL, NULL, NULL WHERE EXISTS ({sql})", params))  # noqa: S608
    return " UNION ALL ".join(sql for sql, _p in parts), [p for _s, params in parts for p in params]


def _deltas_of(found: list[tuple[Any, ...]], count: int, asked: bool) -> tuple[list[Delta], bool | None]:
    deltas = [
        _delta_of([(kind[len(str(i)) :], *rest) for kind, *rest in found if kind[: len(str(i))] == str(i)])
        for i in range(count)
    ]
    return deltas, any(row[0] == "x" for row in found) if asked else None


def _deltas(
    marks: list[tuple[int, int]], also_exists: tuple[str, list[Any]] | None = None
) -> tuple[list[Delta], bool | None]:
    """The rows changed since each (index, mark), in one round trip; in the same round trip,
    whether the query `also_exists` has a row (None when not asked)."""
    # Prepared (planned once per connection): planning it costs more than running it.
    found = connection.execute_prepared(*_deltas_sql(marks, also_exists))  # type: ignore[attr-defined]
    return _deltas_of(found, len(marks), also_exists is not None)


def _delta(tenant_id: int, mark: int) -> Delta:
    return _deltas([(tenant_id, mark)])[0][0]


def _refreshed(tenant_id: int, gen: Generation) -> Generation:
    """The generation with the changed numbers' rows replaced by their current ones."""
    mark = _mark_now(tenant_id, _PLATFORM if tenant_id == PLATFORM else _TENANT)
    delta = _delta(tenant_id, gen.mark)  # read after the new mark: holds everything up to it
    keep = ~np.isin(np.asarray(gen.v1), delta.changed_v1)
    scopes = sorted(set(gen.scopes) | {scope for _k, scope, _c, _d in delta.rows})
    renumber = np.array([scopes.index(s) for s in gen.scopes] or [0], dtype=np.uint16)
    keys = np.frombuffer(b"".join(k for k, _s, _c, _d in delta.rows), dtype=np.uint8).reshape(-1, 16)
    hi, lo = key_halves(keys)
    return Generation(
        mark=mark,
        scopes=scopes,
        hi=np.concatenate([np.asarray(gen.hi)[keep], hi]),
        lo=np.concatenate([np.asarray(gen.lo)[keep], lo]),
        scope=np.concatenate(
            [
                renumber[np.asarray(gen.scope)[keep]],
                np.array([scopes.index(s) for _k, s, _c, _d in delta.rows], dtype=np.uint16),
            ]
        ),
        created=np.concatenate(
            [
                np.asarray(gen.created)[keep],
                np.array([_us(c) for _k, _s, c, _d in delta.rows], dtype=np.int64),
            ]
        ),
        v1=np.concatenate([np.asarray(gen.v1)[keep], _v1_prefix([d for _k, _s, _c, d in delta.rows])]),
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1)


def _rows_scope(tenant_id: int) -> contextlib.AbstractContextManager[None]:
    """Row-level security: the tenant's rows (the platform-wide list is no tenant's)."""
    return contextlib.nullcontext() if tenant_id == PLATFORM else db_scope.tenants_scope([tenant_id])


def index_refresh(tenant_id: int, *, full: bool = False) -> Generation:
    """Bring the index up to date: incrementally (only the changed rows are read) when there
    is one, a full build otherwise. One builder per tenant and host at a time."""
    with _rows_scope(tenant_id), _build_lock(tenant_id):
        gen = None if full else _current(tenant_id)
        gen = _build_full(tenant_id) if gen is None else _refreshed(tenant_id, gen)
        _publish(tenant_id, gen)
        current = _current(tenant_id)
        assert current is not None  # noqa: S101  # just published
        return current


def index_drop(tenant_id: int) -> None:
    shutil.rmtree(_dir(tenant_id), ignore_errors=True)


def tenant_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    """post_delete of a tenant (connected in apps.py): its index files go after the commit."""
    if enabled():
        tenant_id = int(instance.pk)
        transaction.on_commit(lambda: index_drop(tenant_id))


# --- look-ups ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Hits:
    """Rows found for a batch of probes: probe number, scope, since (µs since 1970, UTC)."""

    probe: Any
    scope: list[str]  # names of the scope numbers below
    scope_no: Any
    created: Any

    @staticmethod
    def empty() -> Hits:
        return Hits(np.zeros(0, np.int64), [], np.zeros(0, np.int64), np.zeros(0, np.int64))


_PROBES_AT_ONCE = 1 << 16  # a scrub chunk's million probes in slices: the candidates' arrays stay small


def _index_hits(gen: Generation, hi: Any, lo: Any) -> tuple[Any, Any]:
    """(probe numbers, entry positions) of the entries whose key equals a probe's: each probe's
    candidates are the entries of its top bits (the directory), one or two on average."""
    if not len(gen) or not len(hi):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    found = [
        _slice_hits(gen, hi[start : start + _PROBES_AT_ONCE], lo[start : start + _PROBES_AT_ONCE], start)
        for start in range(0, len(hi), _PROBES_AT_ONCE)
    ]
    if len(found) == 1:
        return found[0]
    return np.concatenate([p for p, _ in found]), np.concatenate([q for _, q in found])


def _slice_hits(gen: Generation, hi: Any, lo: Any, offset: int) -> tuple[Any, Any]:
    starts = np.asarray(gen.starts)
    bits = (len(starts) - 1).bit_length() - 1
    top = (hi >> np.uint64(64 - bits)).astype(np.int64) if bits else np.zeros(len(hi), np.int64)
    first = starts[top].astype(np.int64)
    counts = starts[top + 1].astype(np.int64) - first
    probes = np.repeat(np.arange(len(hi)), counts)
    # a probe's k-th candidate sits at first + k, and is the (cumsum - counts + k)-th of all
    positions = np.repeat(first - (np.cumsum(counts) - counts), counts) + np.arange(len(probes))
    # The first halves rule out nearly every candidate: the second halves are read for the rest only.
    same = np.asarray(gen.hi)[positions] == hi[probes]
    probes, positions = probes[same], positions[same]
    same = np.asarray(gen.lo)[positions] == lo[probes]
    return probes[same] + offset, positions[same]


def _current_or_built(
    tenant_id: int, known: Delta | None = None, opened: Generation | None = None
) -> tuple[Generation, Delta]:
    """The index (`opened`, the generation `known` was read for, when given) and what changed since."""
    gen = _current(tenant_id) if known is None or opened is None else opened
    delta = None if gen is None else known or _delta(tenant_id, gen.mark)
    if gen is None or delta is None or delta.lost_mark or delta.count >= REBUILD_AFTER:
        if connection.in_atomic_block:  # it would read this transaction's uncommitted rows
            raise NoIndex
        gen = index_refresh(tenant_id, full=gen is None or delta is None or delta.lost_mark)
        delta = _delta(tenant_id, gen.mark)
    return gen, delta


def lookup(tenant_id: int, keys: Any) -> tuple[Hits, bool]:
    """Every row of these lookup keys ((n, 16) uint8), as PostgreSQL has it now, and whether
    the source also has rows without a key (the caller then asks by version-1 digest)."""
    with _rows_scope(tenant_id):
        return _lookup(tenant_id, keys)


@dataclass(frozen=True)
class Ahead:
    """A tenant's index and the platform-wide list's, opened, with their changed rows asked
    for before the caller's own work (lookahead): `deltas` reads the answer."""

    tenant_id: int
    mine: Generation
    platform: Generation
    deltas: Callable[[], tuple[list[Delta], bool | None]]


@contextlib.contextmanager
def lookahead(tenant_id: int, also_exists: tuple[str, list[Any]] | None = None) -> Iterator[Ahead | None]:
    """Ask now for what lookup_with_platform() will need from PostgreSQL, so PostgreSQL runs the
    query while the caller parses its numbers (the bulk check: a round trip not waited for).
    None where there is nothing to ask ahead (no index yet, SQLite). Inside the block, until
    lookup_with_platform() has run, nothing else may use the database connection."""
    if not enabled():
        yield None
        return
    with _rows_scope(tenant_id):
        mine, platform = _current(tenant_id), _current(PLATFORM)
        if mine is None or platform is None:
            yield None
            return
        marks = [(tenant_id, mine.mark), (PLATFORM, platform.mark)]
        with connection.prepared_ahead(*_deltas_sql(marks, also_exists)) as rows:  # type: ignore[attr-defined]
            yield Ahead(tenant_id, mine, platform, lambda: _deltas_of(rows(), 2, also_exists is not None))


def lookup_with_platform(
    tenant_id: int,
    keys: Any,
    platform_keys: Any,
    *,
    also_exists: tuple[str, list[Any]] | None = None,
    ahead: Ahead | None = None,
) -> tuple[tuple[Hits, bool], tuple[Hits, bool], bool | None]:
    """lookup() of a tenant's keys and of the platform-wide list's, the two indexes' changed
    rows read in one round trip when both indexes are there; in the same round trip, whether
    the query `also_exists` (SQL, parameters) has a row (None when it was not asked). `ahead`:
    that round trip, begun by lookahead() (with the same `also_exists`)."""
    with _rows_scope(tenant_id):
        mine: Generation | None
        platform: Generation | None
        if ahead is not None and ahead.tenant_id == tenant_id:
            mine, platform = ahead.mine, ahead.platform
            deltas, exists = ahead.deltas()
            known: list[Delta | None] = list(deltas)
        else:
            mine, platform = _current(tenant_id), _current(PLATFORM)
            known = [None, None]
            exists = None
            if mine is not None and platform is not None:
                deltas, exists = _deltas([(tenant_id, mine.mark), (PLATFORM, platform.mark)], also_exists)
                known = list(deltas)
        return (
            _lookup(tenant_id, keys, known[0], mine),
            _lookup(PLATFORM, platform_keys, known[1], platform),
            exists,
        )


def _lookup(
    tenant_id: int, keys: Any, known: Delta | None = None, opened: Generation | None = None
) -> tuple[Hits, bool]:
    try:
        gen, delta = _current_or_built(tenant_id, known, opened)
    except NoIndex:
        return _table_lookup(tenant_id, keys)
    hi, lo = key_halves(keys)
    probes, positions = _index_hits(gen, hi, lo)
    scope_no = np.asarray(gen.scope)[positions].astype(np.int64)
    created = np.asarray(gen.created)[positions]
    names = list(gen.scopes)
    if delta.count:
        # The changed numbers: what the table says now replaces what the index says.
        stale = np.isin(np.asarray(gen.v1)[positions], delta.changed_v1)
        unsure = {bytes(k) for k in np.asarray(keys)[probes[stale]]}  # a lift, or a prefix's twin
        probes, scope_no, created = probes[~stale], scope_no[~stale], created[~stale]
        fresh = {key: [] for key in unsure}  # type: dict[bytes, list[tuple[str, datetime]]]
        for key, scope, since, _digest in delta.rows:
            fresh.setdefault(key, []).append((scope, since))
        twins = [k for k in unsure if not fresh.get(k)]
        if twins:  # rows of a key whose digest prefix merely equals a changed one's
            for key, scope, since in _rows_by_key(tenant_id, twins):
                fresh.setdefault(key, []).append((scope, since))
        position_of: dict[bytes, list[int]] = {}
        if fresh:
            wanted = np.isin(
                hi, key_halves(np.frombuffer(b"".join(fresh), dtype=np.uint8).reshape(-1, 16))[0]
            )
            for i in np.flatnonzero(wanted).tolist():
                position_of.setdefault(bytes(np.asarray(keys)[i]), []).append(i)
        extra_p, extra_s, extra_c = [], [], []
        for key, found in fresh.items():
            for at in position_of.get(key, []):
                for scope, since in found:
                    if scope not in names:
                        names.append(scope)
                    extra_p.append(at)
                    extra_s.append(names.index(scope))
                    extra_c.append(_us(since))
        probes = np.concatenate([probes, np.array(extra_p, dtype=np.int64)])
        scope_no = np.concatenate([scope_no, np.array(extra_s, dtype=np.int64)])
        created = np.concatenate([created, np.array(extra_c, dtype=np.int64)])
    return Hits(probes, names, scope_no, created), delta.v1_only


def _table_lookup(tenant_id: int, keys: Any) -> tuple[Hits, bool]:
    """lookup() from the table alone (inside a transaction, before the index is built)."""
    source = _PLATFORM if tenant_id == PLATFORM else _TENANT
    at: dict[bytes, list[int]] = {}
    for i, key in enumerate(np.asarray(keys)):
        at.setdefault(bytes(key), []).append(i)
    names: list[str] = []
    probes, scope_no, created = [], [], []
    v1_only = False
    with connection.cursor() as cursor:  # the rows, and whether any lacks a key: one query
        cursor.execute(
            f"SELECT lookup_key, {source.scope_column}, created_at FROM {source.rows} "  # noqa: S608
            f"WHERE {source.tenant_filter}lookup_key = ANY(%s) "
            f"UNION ALL SELECT NULL, NULL, NULL WHERE EXISTS (SELECT 1 FROM {source.rows} "
            f"WHERE {source.tenant_filter}lookup_key IS NULL)",
            [*_params(tenant_id, source), list(at), *_params(tenant_id, source)],
        )
        found = cursor.fetchall()
    for key, scope, since in found:
        if key is None:
            v1_only = True
            continue
        if scope not in names:
            names.append(scope)
        for i in at.get(bytes(key), []):
            probes.append(i)
            scope_no.append(names.index(scope))
            created.append(_us(since))
    return Hits(_int64(probes), names, _int64(scope_no), _int64(created)), v1_only


def _int64(items: list[int]) -> Any:
    return np.array(items, dtype=np.int64)


def _rows_by_key(tenant_id: int, keys: list[bytes]) -> list[tuple[bytes, str, datetime]]:
    source = _PLATFORM if tenant_id == PLATFORM else _TENANT
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT lookup_key, {source.scope_column}, created_at FROM {source.rows} "  # noqa: S608
            f"WHERE {source.tenant_filter}lookup_key = ANY(%s)",
            [*_params(tenant_id, source), keys],
        )
        return [(bytes(k), s, c) for k, s, c in cursor.fetchall()]


def since_datetime(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)
