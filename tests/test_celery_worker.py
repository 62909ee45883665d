"""A real Celery worker (another process) runs tasks from the configured broker:
Redis in CI, the file-system broker of `make run` otherwise."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.files.base import ContentFile

from unsubscribe.imports import subscription_import_start
from unsubscribe.models import Service, Subscription, SubscriptionImport

from .workers import celery_worker, purge_queue, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_worker_imports_subscriptions_from_the_broker(tenant_a, tmp_path):
    # given a CSV of subscriptions uploaded for tenant A
    Service.objects.create(tenant=tenant_a, name="Offers", code="offers")
    csv = "phone,service,consent_source\n13800138000,offers,web\n+8613912345678,offers,app\nnot-a-number,offers,x\n"
    import_ = SubscriptionImport.objects.create(
        tenant=tenant_a, file=ContentFile(csv.encode(), name="subs.csv")
    )
    purge_queue()

    with celery_worker(tmp_path) as worker:
        # when the import is dispatched through the broker
        from django.db import transaction

        with transaction.atomic():
            subscription_import_start(import_=import_)

        # then the worker process does the work and records it in the database
        wait_for(
            lambda: SubscriptionImport.objects.get(pk=import_.pk).status == "done",
            60,
            message=worker.output(),
        )
    import_.refresh_from_db()
    assert (import_.created, import_.invalid, import_.rows_done) == (2, 1, 3)
    assert Subscription.objects.for_tenant(tenant_a).count() == 2
    assert "unsubscribe.tasks.import_subscriptions" in worker.output()
    if "redis" in settings.CELERY_BROKER_URL:
        assert "redis://" in worker.output()  # the banner names the transport it used
