"""Secrets encrypted at rest (lanzuan/fields.py): the column becomes text holding
"fernet1:<token>", and the rows stored in clear text are encrypted (back to clear text on reverse)."""

import lanzuan.fields
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("partner", "0005_i18n_labels"),
    ]

    operations = [
        migrations.AlterField(
            model_name="webhookendpoint",
            name="secret",
            field=lanzuan.fields.EncryptedTextField(max_length=200, verbose_name="signing secret"),
        ),
        migrations.RunPython(
            lanzuan.fields.encrypt_column("partner", "WebhookEndpoint", "secret"),
            lanzuan.fields.decrypt_column("partner", "WebhookEndpoint", "secret"),
        ),
    ]
