"""PostgreSQL backend that keeps `app.tenant_id` (row-level security) in step with
`tenants.db_scope` before every statement (see tenants/db_scope.py)."""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus

from tenants import db_scope


class DatabaseWrapper(base.DatabaseWrapper):
    # What the server's `app.tenant_id` holds on this connection; None: not known
    # (a new connection, or a rollback that may have undone the last set_config).
    _db_scope_sent: str | None = None

    def init_connection_state(self) -> None:
        super().init_connection_state()
        self._db_scope_sent = None
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
            self.connection.execute("SELECT set_config(%s, %s, false)", [db_scope.SETTING, wanted])
            self._db_scope_sent = wanted

    def _rollback(self) -> None:
        super()._rollback()  # type: ignore[misc]  # private: not in django-stubs
        self._db_scope_sent = None

    def _savepoint_rollback(self, sid: str) -> None:
        super()._savepoint_rollback(sid)  # type: ignore[misc]  # private: not in django-stubs
        self._db_scope_sent = None
