"""Secrets encrypted at rest (lanzuan/fields.py): the column becomes text holding
"fernet1:<token>", and the rows stored in clear text are encrypted (back to clear text on reverse)."""

import lanzuan.fields
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("unsubscribe", "0018_request_states_as_entered"),
    ]

    operations = [
        migrations.AlterField(
            model_name="target",
            name="signing_secret",
            field=lanzuan.fields.EncryptedTextField(
                blank=True, max_length=200, verbose_name="signing secret"
            ),
        ),
        migrations.RunPython(
            lanzuan.fields.encrypt_column("unsubscribe", "Target", "signing_secret"),
            lanzuan.fields.decrypt_column("unsubscribe", "Target", "signing_secret"),
        ),
    ]
