"""Secrets encrypted at rest (lanzuan/fields.py): the column becomes text holding
"fernet1:<token>", and the rows stored in clear text are encrypted (back to clear text on reverse)."""

import lanzuan.fields
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0006_r19c_outbox_expire_schedule"),
    ]

    operations = [
        migrations.AlterField(
            model_name="gatewayconfig",
            name="secret",
            field=lanzuan.fields.EncryptedTextField(
                blank=True,
                help_text="Twilio auth token, Aliyun AccessKey secret, SMTP password or HTTP signing secret.",
                max_length=300,
                verbose_name="secret",
            ),
        ),
        migrations.RunPython(
            lanzuan.fields.encrypt_column("notifications", "GatewayConfig", "secret"),
            lanzuan.fields.decrypt_column("notifications", "GatewayConfig", "secret"),
        ),
    ]
