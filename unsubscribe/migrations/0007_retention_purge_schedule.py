"""Purge request records past each tenant's retention, once a day."""

from django.db import migrations

TASK = "unsubscribe.tasks.purge_expired_records"
NAME = "Lanzuan record retention purge"


def add_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=1, period="days")
    PeriodicTask.objects.update_or_create(name=NAME, defaults={"task": TASK, "interval": every, "enabled": True})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("unsubscribe", "0006_channel_help_is_a_template")]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
