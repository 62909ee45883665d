"""Secrets encrypted at rest (lanzuan/fields.py): the column becomes text holding
"fernet1:<token>", and the rows stored in clear text are encrypted (back to clear text on reverse)."""

import lanzuan.fields
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("voice", "0004_i18n_labels"),
    ]

    operations = [
        migrations.AlterField(
            model_name="voicecredential",
            name="secret",
            field=lanzuan.fields.EncryptedTextField(max_length=200, verbose_name="secret"),
        ),
        migrations.RunPython(
            lanzuan.fields.encrypt_column("voice", "VoiceCredential", "secret"),
            lanzuan.fields.decrypt_column("voice", "VoiceCredential", "secret"),
        ),
    ]
