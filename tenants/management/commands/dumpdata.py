"""Django's dumpdata, able to read tenant-owned models (their default manager fails closed)."""

from __future__ import annotations

from typing import Any

from django.core.management.commands import dumpdata

from tenants.scoping import unscoped_internals


class Command(dumpdata.Command):
    def handle(self, *app_labels: str, **options: Any) -> None:
        # A dump is of the whole database, every tenant's rows included, as before.
        with unscoped_internals(reason="dumpdata exports every tenant's rows"):
            super().handle(*app_labels, **options)
