"""Row-level security policies: PostgreSQL's own check of `tenants.db_scope`.

Every table with a `tenant_id` column (tenant-owned models and their history tables)
gets, idempotently, after every `migrate` (post_migrate, so a new table is covered
the moment it exists):

    ALTER TABLE t ENABLE ROW LEVEL SECURITY;
    ALTER TABLE t FORCE ROW LEVEL SECURITY;   -- binds the table's owner too
    CREATE POLICY lanzuan_tenant ON t USING (<visible>) WITH CHECK (<visible>);

where <visible> reads `app.tenant_id`: '*' every row, a list of ids those tenants'
rows, unset or '' none. Superusers and roles with BYPASSRLS skip every policy, so the
application must connect as an ordinary role (README, "Production"; CI does).
Foreign-key and unique checks are the database's own and see every row.
"""

from __future__ import annotations

from typing import Any

from . import db_scope

POLICY = "lanzuan_tenant"

# CASE, not OR: PostgreSQL does not promise to evaluate OR left to right, and '*'
# must never reach the cast to bigint[].
VISIBLE = (
    f"CASE current_setting('{db_scope.SETTING}', true) "
    f"WHEN '{db_scope.SYSTEM}' THEN true "
    f"ELSE tenant_id = ANY (string_to_array(current_setting('{db_scope.SETTING}', true), ',')::bigint[]) "
    "END"
)

_TENANT_TABLES = """
    SELECT c.table_name
      FROM information_schema.columns c
      JOIN information_schema.tables t USING (table_schema, table_name)
     WHERE c.table_schema = current_schema()
       AND c.column_name = 'tenant_id'
       AND t.table_type = 'BASE TABLE'
     ORDER BY c.table_name
"""


def tenant_tables(cursor: Any) -> list[str]:
    cursor.execute(_TENANT_TABLES)
    return [row[0] for row in cursor.fetchall()]


def ensure_policies(connection: Any) -> list[str]:
    """Enable, force and (re)create the policy on every table with a tenant_id; returns them."""
    if connection.vendor != "postgresql":
        return []
    quote = connection.ops.quote_name
    reason = "row-level security policies are (re)created after migrate"
    with db_scope.system_scope(reason=reason), connection.cursor() as cursor:
        tables = tenant_tables(cursor)
        for table in tables:
            name = quote(table)
            cursor.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
            cursor.execute(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY")
            cursor.execute(f"DROP POLICY IF EXISTS {POLICY} ON {name}")
            cursor.execute(f"CREATE POLICY {POLICY} ON {name} USING ({VISIBLE}) WITH CHECK ({VISIBLE})")
    return tables


def post_migrate(using: str = "default", **_: Any) -> None:
    from django.db import connections  # noqa: PLC0415 (a signal receiver: the alias is known only here)

    ensure_policies(connections[using])
