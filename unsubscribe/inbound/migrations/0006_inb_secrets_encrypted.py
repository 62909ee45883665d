"""Secrets encrypted at rest (lanzuan/fields.py): the column becomes text holding
"fernet1:<token>", and the rows stored in clear text are encrypted (back to clear text on reverse)."""

import lanzuan.fields
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("inbound", "0005_inb2_number_sweep_schedule"),
    ]

    operations = [
        migrations.AlterField(
            model_name="inboundcredential",
            name="secret",
            field=lanzuan.fields.EncryptedTextField(max_length=200, verbose_name="secret"),
        ),
        migrations.AlterField(
            model_name="platforminboundcredential",
            name="secret",
            field=lanzuan.fields.EncryptedTextField(max_length=200, verbose_name="secret"),
        ),
        migrations.RunPython(
            lanzuan.fields.encrypt_column("inbound", "InboundCredential", "secret"),
            lanzuan.fields.decrypt_column("inbound", "InboundCredential", "secret"),
        ),
        migrations.RunPython(
            lanzuan.fields.encrypt_column("inbound", "PlatformInboundCredential", "secret"),
            lanzuan.fields.decrypt_column("inbound", "PlatformInboundCredential", "secret"),
        ),
    ]
