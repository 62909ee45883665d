"""A real Celery worker (another process) runs tasks from a broker: the configured
one (Redis in CI) and the embedded file-system broker that `make run` uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.conf import settings
from django.core.files.base import ContentFile

from lanzuan.celery import app
from unsubscribe.models import Service, Subscription, SubscriptionImport
from unsubscribe.tasks import import_subscriptions

from .workers import celery_worker, purge_queue, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    from tenants.models import Tenant

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def embedded_broker_options() -> dict[str, str]:
    base = settings.VAR_DIR / "broker"
    for folder in ("queue", "processed", "control"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(base / "queue"),
        "data_folder_out": str(base / "queue"),
        "processed_folder": str(base / "processed"),
        "control_folder": str(base / "control"),
    }


@pytest.mark.parametrize("broker", ["configured", "embedded"])
def test_worker_runs_a_task_from_the_broker_and_writes_the_database(
    broker: str, tenant_a: Tenant, tmp_path: Path
) -> None:
    if broker == "configured" and settings.CELERY_BROKER_URL.startswith("filesystem"):
        pytest.skip("the configured broker is the embedded one here; CI runs this on Redis")
    # given a CSV of subscriptions uploaded for tenant A
    Service.objects.create(tenant=tenant_a, name="Offers", code="offers")
    csv = "phone,service,consent_source\n13800138000,offers,web\n+8613912345678,offers,app\nnot-a-number,offers,x\n"
    import_ = SubscriptionImport.objects.create(
        tenant=tenant_a, file=ContentFile(csv.encode(), name="subs.csv")
    )
    url = settings.CELERY_BROKER_URL if broker == "configured" else "filesystem://"
    options = (
        settings.CELERY_BROKER_TRANSPORT_OPTIONS if broker == "configured" else embedded_broker_options()
    )
    purge_queue()

    with celery_worker(tmp_path, CELERY_BROKER_URL=url) as worker:
        # when the import task is published to that broker
        with app.connection_for_write(url, transport_options=options) as connection:
            # Celery passes **options (here the connection) on to send_task; its stubs list only some
            import_subscriptions.apply_async(args=(import_.pk,), connection=connection)  # type: ignore[call-arg]
        # then the worker process does the work and records it in the database
        wait_for(
            lambda: SubscriptionImport.objects.unscoped(reason="test").get(pk=import_.pk).status == "done",
            60,
            message=worker.output(),
        )
    import_.refresh_from_db()
    assert (import_.created, import_.invalid, import_.rows_done) == (2, 1, 3)
    assert Subscription.objects.for_tenant(tenant_a).count() == 2
    assert "unsubscribe.tasks.import_subscriptions" in worker.output()
    assert ("redis://" if url.startswith("redis") else "filesystem://") in worker.output()
