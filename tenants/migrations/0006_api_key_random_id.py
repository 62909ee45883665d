"""API keys get a random id: the library's "<prefix>.<hash of the key>" put the hash in the
primary key, and from there in the history table, admin URLs and log entries, and throttle
keys. Existing keys keep working (the hash stays in `hashed_key`); their history rows and
admin log entries follow the new id."""

import uuid
from typing import Any

from django.db import migrations, models

KEYS = "tenants_tenantapikey"
HISTORY = "tenants_historicaltenantapikey"
ADMIN_LOG = (
    "UPDATE django_admin_log SET object_id = %s WHERE object_id = %s AND content_type_id IN "
    "(SELECT id FROM django_content_type WHERE app_label = 'tenants' AND model = 'tenantapikey')"
)


def random_ids(apps: Any, schema_editor: Any) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {KEYS}")  # noqa: S608
        old_ids = {row[0] for row in cursor.fetchall()}
        cursor.execute(f"SELECT DISTINCT id FROM {HISTORY}")  # noqa: S608
        old_ids |= {row[0] for row in cursor.fetchall()}
        for old in old_ids:
            new = uuid.uuid4()
            # .hex: the form a UUID column reads on PostgreSQL and stores on SQLite
            cursor.execute(f"UPDATE {KEYS} SET id = %s WHERE id = %s", [new.hex, old])  # noqa: S608
            cursor.execute(f"UPDATE {HISTORY} SET id = %s WHERE id = %s", [new.hex, old])  # noqa: S608
            cursor.execute(ADMIN_LOG, [str(new), old])  # as the admin writes it


def library_ids(apps: Any, schema_editor: Any) -> None:
    """Back to "<prefix>.<hash>" (the hash comes back into the history rows too)."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT id, prefix, hashed_key FROM {KEYS}")  # noqa: S608
        for old, prefix, hashed_key in cursor.fetchall():
            new = f"{prefix}.{hashed_key}"
            cursor.execute(f"UPDATE {KEYS} SET id = %s WHERE id = %s", [new, old])  # noqa: S608
            cursor.execute(f"UPDATE {HISTORY} SET id = %s WHERE id = %s", [new, old])  # noqa: S608
            for logged in {old, old.replace("-", "")}:
                cursor.execute(ADMIN_LOG, [new, logged])


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0005_i18n_labels"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(random_ids, library_ids),
        migrations.AlterField(
            model_name="historicaltenantapikey",
            name="id",
            field=models.UUIDField(db_index=True, default=uuid.uuid4, editable=False, verbose_name="id"),
        ),
        migrations.AlterField(
            model_name="tenantapikey",
            name="id",
            field=models.UUIDField(
                default=uuid.uuid4, editable=False, primary_key=True, serialize=False, verbose_name="id"
            ),
        ),
    ]
