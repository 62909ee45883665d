"""Suppression checks read from a streaming replica (`DATABASE_REPLICA_URL`) without ever missing a
suppression committed before the check began.

Why it is exact. Before a check reads, it asks the primary how far its WAL is known durable,
`pg_current_wal_flush_lsn()` (a cheap statement: no table is touched). A transaction that commits
with `synchronous_commit` on (PostgreSQL's default; Lanzuan never turns it off) flushes its commit
record before it becomes visible, so every suppression committed before the check began lies
before that point. Where the server, database or role sets `synchronous_commit = off`, a commit
is visible before it is flushed, and the check takes the insert position,
`pg_current_wal_insert_lsn()`, instead (the same statement decides). The replica applies the WAL in
order, and once `pg_last_wal_replay_lsn()` (the end of the last record it applied) has reached
that point, every snapshot it takes afterwards sees those commits. So the check polls the replica
until it has replayed that far, and then reads in a new statement: in READ COMMITTED each
statement takes its snapshot when it starts, so the read's snapshot is taken after replay passed
the point (folding the condition into the read itself would not do: its snapshot would be taken
before the condition is evaluated). A replica that has not got there within
`DATABASE_REPLICA_WAIT_MS`, is not in recovery (promoted, or not a replica at all), cannot be
reached or fails in any way: the check reads from the primary, and says so in the log and in
`counts()`. The client never sees an error or a stale answer.

A replica once seen past a point stays past it while its connection lasts, so the replay position
last seen on a connection spares the poll when the primary has written nothing since. A reconnect
forgets it (a restarted replica may start behind where it was).

Without `DATABASE_REPLICA_URL` there is no `replica` alias and `consistent_read` just calls the
read: nothing else changes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db import Error as DjangoDatabaseError

logger = logging.getLogger(__name__)

REPLICA = "replica"
T = TypeVar("T")

# The alias ORM reads go to (ReplicaRouter); None: Django's default.
_read_alias: ContextVar[str | None] = ContextVar("lanzuan_read_alias", default=None)
# After a replica error, checks go straight to the primary for this long (a replica that is down
# would otherwise cost every check a failed connection attempt).
RETRY_AFTER_SECONDS = 1.0
_down_until = [0.0]  # monotonic time (a list: one value the threads share)
# After a check waited the whole DATABASE_REPLICA_WAIT_MS in vain, the checks of the next second
# look once and do not wait (a paused or overloaded replica would cost each of them the wait).
LAGGING_SECONDS = 1.0
_lagging_until = [0.0]
_counts: dict[str, int] = {}
_logged: dict[str, float] = {}  # reason → when last logged
LOG_EVERY_SECONDS = 1.0
_counts_lock = threading.Lock()

_PRIMARY_LSN_SQL = (
    "SELECT (CASE WHEN current_setting('synchronous_commit') = 'off' "
    "THEN pg_current_wal_insert_lsn() ELSE pg_current_wal_flush_lsn() END)::text"
)
_REPLICA_LSN_SQL = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"


def enabled() -> bool:
    return REPLICA in settings.DATABASES


def read_alias() -> str:
    """The alias a check's raw SQL runs on (the ORM's reads are routed by ReplicaRouter)."""
    return _read_alias.get() or DEFAULT_DB_ALIAS


def counts() -> dict[str, int]:
    """Checks served by the replica (`replica`) and by the primary, by why (`lag`, `not_replica`,
    `error`, `down`, `primary_error`, `in_transaction`), since the process started."""
    with _counts_lock:
        return dict(_counts)


def _count(what: str) -> None:
    with _counts_lock:
        _counts[what] = _counts.get(what, 0) + 1


def lsn_value(text: str) -> int:
    """'16/B374D848' → an integer that orders as the WAL does."""
    high, _sep, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


class ReplicaRouter:
    """Reads go where consistent_read says (the replica only inside one); writes always to the primary."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return _read_alias.get()

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return True  # the same database, one of them a copy

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return db != REPLICA  # the replica gets the schema by replaying the primary's migrations


def _primary_lsn() -> int:
    primary = connections[DEFAULT_DB_ALIAS]
    primary.ensure_connection()
    # On the raw connection: the statement needs no tenant scope (the backend would send one).
    row = primary.connection.execute(_PRIMARY_LSN_SQL, prepare=True).fetchone()
    return lsn_value(row[0])


def _replica_reached(target: int) -> str | None:
    """None once the replica has replayed up to `target` (within the wait), else why not."""
    replica = connections[REPLICA]
    replica.ensure_connection()
    raw = replica.connection
    seen = getattr(replica, "_lanzuan_replayed", None)
    if seen is not None and seen[0] is raw and seen[1] >= target:
        return None
    now = time.monotonic()
    deadline = now if now < _lagging_until[0] else now + settings.DATABASE_REPLICA_WAIT_MS / 1000
    pause = 0.0005
    while True:
        in_recovery, replayed = raw.execute(_REPLICA_LSN_SQL, prepare=True).fetchone()
        if not in_recovery or replayed is None:
            return "not_replica"
        position = lsn_value(replayed)
        replica._lanzuan_replayed = (raw, position)  # type: ignore[attr-defined]
        if position >= target:
            return None
        if time.monotonic() + pause > deadline:
            if deadline > now:
                _lagging_until[0] = time.monotonic() + LAGGING_SECONDS
            return "lag"
        time.sleep(pause)
        pause = min(pause * 2, 0.004)


def _source() -> str:
    """Where this check reads: REPLICA, or why the primary."""
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return "in_transaction"  # the caller's own uncommitted writes are on the primary only
    if time.monotonic() < _down_until[0]:
        return "down"
    try:
        target = _primary_lsn()
    except (DjangoDatabaseError, psycopg.Error):
        logger.warning("replica reads: the primary's WAL position is unavailable", exc_info=True)
        return "primary_error"
    try:
        why = _replica_reached(target)
    except (DjangoDatabaseError, psycopg.Error) as exc:
        _replica_failed(exc)
        return "error"
    return why or REPLICA


def _replica_failed(exc: BaseException) -> None:
    _down_until[0] = time.monotonic() + RETRY_AFTER_SECONDS
    logger.warning(
        "replica reads: the replica failed (%s: %s); checks read from the primary for %.0f s",
        type(exc).__name__,
        str(exc).splitlines()[0] if str(exc) else "",
        RETRY_AFTER_SECONDS,
    )
    with contextlib.suppress(DjangoDatabaseError, psycopg.Error):
        connections[REPLICA].close()


def consistent_read(read: Callable[[], T]) -> T:
    """`read()` (a check's reads, no writes) on the replica when the replica has replayed everything
    committed on the primary so far, else on the primary. A replica error during the read: read
    again on the primary."""
    if not enabled():
        return read()
    source = _source()
    if source != REPLICA:
        _fell_back(source)
        return read()
    token = _read_alias.set(REPLICA)
    failed: BaseException | None = None
    try:
        answer = read()
    except (DjangoDatabaseError, psycopg.Error) as exc:
        failed = exc
    finally:
        _read_alias.reset(token)
    if failed is not None:
        _replica_failed(failed)
        _fell_back("error")
        return read()
    _count(REPLICA)
    return answer


def _fell_back(why: str) -> None:
    _count(why)
    # One line a second per reason at most: a lagging replica under load would log every check.
    now = time.monotonic()
    with _counts_lock:
        if now - _logged.get(why, -LOG_EVERY_SECONDS) < LOG_EVERY_SECONDS:
            return
        _logged[why] = now
    logger.info("replica reads: a check read from the primary (%s; %d so far)", why, counts()[why])
