"""Targets are for the provider's other systems only: the internal kind and its source go."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("unsubscribe", "0014_pipe_internal_targets_to_steps"),
    ]

    operations = [
        migrations.RemoveField(
            model_name='historicaltarget',
            name='internal_source',
        ),
        migrations.RemoveField(
            model_name='target',
            name='internal_source',
        ),
        migrations.AlterField(
            model_name='historicaltarget',
            name='kind',
            field=models.CharField(choices=[('http', 'Provider HTTPS endpoint')], default='http', max_length=10, verbose_name='kind'),
        ),
        migrations.AlterField(
            model_name='target',
            name='kind',
            field=models.CharField(choices=[('http', 'Provider HTTPS endpoint')], default='http', max_length=10, verbose_name='kind'),
        ),
    ]
