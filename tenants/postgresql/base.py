"""PostgreSQL backend that keeps `app.tenant_id` (row-level security) in step with
`tenants.db_scope` before every statement (see tenants/db_scope.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from django.db import InterfaceError, OperationalError
from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus

from tenants import db_scope


class DatabaseWrapper(base.DatabaseWrapper):
    # What the server's `app.tenant_id` holds on this connection; None: not known
    # (a new connection, or a rollback that may have undone the last set_config).
    _db_scope_sent: str | None = None
    _prepared_cursor: psycopg.Cursor[Any] | None = None  # execute_prepared's, on this connection

    def init_connection_state(self) -> None:
        super().init_connection_state()
        self._db_scope_sent = None
        # Only the statements run by execute_prepared() are prepared (Django's own cursors bind
        # on the client and never are); None, Django's default, would refuse those too.
        self.connection.prepare_threshold = 2**31 - 1
        if self._send_db_scope not in self.execute_wrappers:
            self.execute_wrappers.append(self._send_db_scope)

    def _send_db_scope(self, execute: Any, sql: Any, params: Any, many: bool, context: Any) -> Any:
        self.sync_db_scope()
        return execute(sql, params, many, context)

    def sync_db_scope(self) -> None:
        """Send `app.tenant_id` if the server's value differs from db_scope's. Statements run
        through Django get it by the execute wrapper; call this before one run on the raw
        psycopg connection (a prepared statement on a hot path)."""
        wanted = db_scope.current()
        if (
            wanted != self._db_scope_sent
            and self.connection is not None
            # A failed transaction takes nothing but its rollback (ROLLBACK TO SAVEPOINT runs here too).
            and self.connection.info.transaction_status != TransactionStatus.INERROR
        ):
            # Session-wide (is_local false): it outlives the transaction, so a connection
            # reused by the next request or task keeps no stale value only because we
            # compare before every statement; a rollback marks it unknown (below).
            # Wrapped as Django's own statements are: a lost connection is then closed at the
            # end of the request (errors_occurred), not kept for the next one.
            with self.wrap_database_errors:
                self.connection.execute("SELECT set_config(%s, %s, false)", [db_scope.SETTING, wanted])
            self._db_scope_sent = wanted

    def execute_prepared(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        """The rows of one statement run as a prepared statement: planned once per connection,
        not at every call (on hot paths, planning a query over tables with row-level security
        costs more than running it). The tenant scope is sent first, as for Django's cursors.
        For reads: on a connection the server closed (a restart, a failover, an idle timeout),
        outside a transaction, it runs once more on a new connection."""
        try:
            return self._run_prepared(sql, params)
        except (OperationalError, InterfaceError):
            if not self._replace_lost_connection():
                raise
            return self._run_prepared(sql, params)

    def _run_prepared(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        self.ensure_connection()
        self.sync_db_scope()
        with self.wrap_database_errors:
            # One cursor per connection, kept: it keeps the dumpers it found for the parameters'
            # types (a new cursor looks them up again: ~0.1 ms of a single check's ~0.5 ms).
            cursor = self._prepared_cursor
            if cursor is None or cursor.closed or cursor.connection is not self.connection:
                cursor = self._prepared_cursor = psycopg.Cursor(self.connection)
            cursor.execute(sql, params, prepare=True)
            return cursor.fetchall()

    def _replace_lost_connection(self) -> bool:
        """After an error: if the server had closed the connection and no transaction was open,
        a new connection (True: the caller runs its read again); else False."""
        if self.in_atomic_block or self.connection is None or not self.connection.closed:
            return False
        self.close()
        self.ensure_connection()
        return True

    @contextlib.contextmanager
    def prepared_ahead(self, sql: str, params: list[Any]) -> Iterator[Callable[[], list[tuple[Any, ...]]]]:
        """Send one prepared statement now and read its rows later (the callable): the server
        runs it while this process does other work, instead of this process waiting a round
        trip. Until the rows are read (or the block ends) the connection is in pipeline mode:
        nothing else may use it. For reads: a lost connection is replaced as execute_prepared
        replaces it, and the statement run there."""
        found: list[list[tuple[Any, ...]]] = []
        cursor: psycopg.Cursor[Any] | None = None  # outlives the pipeline: its rows are read after it
        try:
            with contextlib.ExitStack() as pipeline:
                try:
                    self.ensure_connection()
                    self.sync_db_scope()
                    with self.wrap_database_errors:
                        cursor = psycopg.Cursor(self.connection)
                        pipeline.enter_context(self.connection.pipeline())
                        cursor.execute(sql, params, prepare=True)
                except (OperationalError, InterfaceError) as error:
                    # Leave the pipeline opened on the dead connection (its own error is this one).
                    pipeline.__exit__(type(error), error, error.__traceback__)
                    if not self._replace_lost_connection():
                        raise
                    yield lambda: self.execute_prepared(sql, params)
                    return

                def rows() -> list[tuple[Any, ...]]:
                    if not found:
                        assert cursor is not None  # noqa: S101  # sent above
                        try:
                            with self.wrap_database_errors:
                                pipeline.close()  # leaving the pipeline sends its Sync and takes the results
                                found.append(cursor.fetchall())
                        except (OperationalError, InterfaceError):
                            if not self._replace_lost_connection():
                                raise
                            found.append(self.execute_prepared(sql, params))
                    return found[0]

                yield rows
        finally:
            if cursor is not None:
                cursor.close()

    def _rollback(self) -> None:
        super()._rollback()  # type: ignore[misc]  # private: not in django-stubs
        self._db_scope_sent = None

    def _savepoint_rollback(self, sid: str) -> None:
        super()._savepoint_rollback(sid)  # type: ignore[misc]  # private: not in django-stubs
        self._db_scope_sent = None
