"""Compute open deadlines again on the working-day calendars as they are now: after
upgrading `chinese-calendar` or `holidays` (a new year's official days), provisional due
times become real ones. Staff saving a calendar day does the same for its calendar."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tenants.models import Tenant
from unsubscribe.deadlines.services import deadlines_recompute
from unsubscribe.models import WorkCalendar


class Command(BaseCommand):
    help = "Compute the open working-day deadlines again (after a calendar library upgrade)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Only this tenant's (its slug).")

    def handle(self, *args: Any, **options: Any) -> None:
        tenants = Tenant.objects.filter(is_active=True).order_by("slug")
        if options["tenant"]:
            tenants = tenants.filter(slug=options["tenant"])
        total = 0
        for tenant in tenants:
            for calendar in WorkCalendar.values:
                total += deadlines_recompute(tenant=tenant, calendar=calendar)
        self.stdout.write(f"{total} deadline(s) changed")
