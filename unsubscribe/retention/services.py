"""Retention: how long the paperwork of a finished request is kept."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from tenants.models import Tenant
from unsubscribe.models import Step, UnsubscribeRequest

logger = logging.getLogger(__name__)
State = UnsubscribeRequest.State


def records_purge_expired(*, now: datetime | None = None) -> int:
    """Delete finished requests older than their tenant's record retention, with
    their steps and history rows. The suppression stays (keyed by hash): the
    opt-out is honoured for good even after its paperwork is gone."""
    now = now or timezone.now()
    purged = 0
    for tenant in Tenant.objects.all():
        cutoff = now - timedelta(days=tenant.record_retention_days)
        ids = list(
            UnsubscribeRequest.objects.for_tenant(tenant)
            .filter(state=State.COMPLETED, completed_at__lt=cutoff)
            .values_list("pk", flat=True)[:5000]
        )
        if not ids:
            continue
        with transaction.atomic():
            UnsubscribeRequest.objects.for_tenant(tenant).filter(
                pk__in=ids
            ).delete()  # steps cascade; suppressions keep their row
            # after the delete: it writes "deleted" history rows, which go too
            Step.history.filter(request_id__in=ids).delete()
            UnsubscribeRequest.history.filter(id__in=ids).delete()
        purged += len(ids)
        logger.info(
            "purged %d request record(s) of %s past %d days",
            len(ids),
            tenant.slug,
            tenant.record_retention_days,
        )
    return purged
