"""Every periodic task is in settings.CELERY_BEAT_SCHEDULE; beat's DatabaseScheduler writes it
into PeriodicTask rows when it starts. After migrate (older data migrations made rows of the
same names) and a start of beat, each task is there once, on the schedule it always had."""

from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from lanzuan.celery import app

SCHEDULED = {
    "unsubscribe.tasks.pipeline_sweep": timedelta(seconds=30),
    "unsubscribe.tasks.purge_expired_records": timedelta(hours=1),
    "unsubscribe.tasks.expire_stored_files": timedelta(hours=1),
    "notifications.tasks.messages_sweep": timedelta(seconds=60),
    "notifications.tasks.outbox_expire": timedelta(days=1),
    "unsubscribe.partner.tasks.partner_sweep": timedelta(seconds=30),
    "unsubscribe.optout.tasks.verifications_sweep": timedelta(seconds=60),
    "unsubscribe.inbound.tasks.inbound_numbers_sweep": timedelta(days=1),
    "unsubscribe.voice.tasks.end_stale_voice_calls": timedelta(minutes=15),
    "unsubscribe.tasks.audit_checkpoints": timedelta(hours=1),
    "unsubscribe.tasks.audit_verify_daily": timedelta(days=1),
}


def ours() -> list[PeriodicTask]:
    # celery.backend_cleanup is Celery's own, added by the scheduler.
    return list(PeriodicTask.objects.exclude(task__startswith="celery.").select_related("interval"))


@pytest.mark.django_db
def test_each_periodic_task_is_scheduled_once_after_migrate_and_beat(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: a migrated database; beat would close the test's connection (it closes old
    # connections between ticks, and one inside a transaction looks unusable to Django)
    monkeypatch.setattr("django_celery_beat.schedulers.close_old_connections", lambda: None)
    # when: beat starts, and starts again
    DatabaseScheduler(app=app)
    DatabaseScheduler(app=app)

    # then
    rows = ours()
    assert Counter(row.task for row in rows) == Counter(SCHEDULED.keys())  # each once
    assert {row.name for row in rows} == set(settings.CELERY_BEAT_SCHEDULE)
    for row in rows:
        assert row.enabled and row.interval is not None
        assert row.interval.schedule.run_every == SCHEDULED[row.task], row.task


def test_the_settings_hold_every_task_of_the_apps() -> None:
    assert {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} == set(SCHEDULED)
