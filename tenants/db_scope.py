"""The second wall: which tenants' rows PostgreSQL itself lets this connection see.

Querysets are scoped in Python (`tenants.scoping`); a mistake there, raw SQL or a
library reading `_default_manager` would still reach every tenant. So every
tenant-owned table (and its history table) carries a row-level security policy on
`current_setting('app.tenant_id')` with FORCE ROW LEVEL SECURITY
(`tenants/row_security.py`), and this module says what that setting is:

- `""` (the default, and what a new thread or request starts with): no tenant's rows;
- `"3"` or `"3,5"`: those tenants' rows (a key's tenant, a staff member's tenants);
- `"*"`: every tenant's rows, for system work, entered explicitly with a reason.

The value lives in a context variable; the database backend (`tenants/postgresql/`)
sends it to the server before the next statement whenever it differs from what the
connection has, so it holds per statement and per transaction without a round trip
per query. Who sets it: `tenants.middleware.DatabaseScopeMiddleware` per web request
(the admin acts for the signed-in staff member's tenants), `TenantScopedAPIView` (the
API key's tenant), Celery's task signals and `manage.py` (system work).

This module imports nothing from Django's models: the database backend loads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

SETTING = "app.tenant_id"
NOTHING = ""
SYSTEM = "*"

_scope: ContextVar[str] = ContextVar("lanzuan_db_scope", default=NOTHING)
_reason: ContextVar[str] = ContextVar("lanzuan_db_scope_reason", default="")


def current() -> str:
    """The value of `app.tenant_id` the next statement runs with."""
    return _scope.get()


def current_reason() -> str:
    """Why the current scope is system-wide ('' unless it is)."""
    return _reason.get()


def tenants_value(tenant_ids: Iterable[int]) -> str:
    ids = sorted({int(t) for t in tenant_ids})
    return ",".join(str(t) for t in ids)


def enter_tenants(tenant_ids: Iterable[int]) -> Token[str]:
    """Narrow to these tenants' rows until the returned token is reset (an empty list: none)."""
    return _scope.set(tenants_value(tenant_ids))


def enter_system(*, reason: str) -> tuple[Token[str], Token[str]]:
    """Every tenant's rows until the returned tokens are reset; `reason` says why."""
    if not reason or not reason.strip():
        raise ValueError("system database scope needs a reason")
    return _scope.set(SYSTEM), _reason.set(reason.strip())


def leave(token: Token[str] | tuple[Token[str], Token[str]]) -> None:
    if isinstance(token, tuple):
        _scope.reset(token[0])
        _reason.reset(token[1])
    else:
        _scope.reset(token)


@contextmanager
def tenants_scope(tenant_ids: Iterable[int]) -> Iterator[None]:
    token = enter_tenants(tenant_ids)
    try:
        yield
    finally:
        leave(token)


@contextmanager
def system_scope(*, reason: str) -> Iterator[None]:
    token = enter_system(reason=reason)
    try:
        yield
    finally:
        leave(token)
