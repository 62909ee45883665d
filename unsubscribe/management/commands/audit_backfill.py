"""`python manage.py audit_backfill`: start the audit chain of every tenant that has none.

Run once after upgrading to a version with the audit record (the hourly checkpoint task does
the same). Each chain starts at its genesis entry, which names the newest row of each
cross-checked table at that moment: older rows predate the record and are not cross-checked.
Then every head is signed, so the start itself is covered by a checkpoint.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from unsubscribe.audit.services import audit_chains_start, audit_checkpoints_sign


class Command(BaseCommand):
    help = "Start the audit chain of every tenant that has none, and sign every chain head."

    def handle(self, *args: Any, **options: Any) -> None:
        started = audit_chains_start()
        signed = audit_checkpoints_sign()
        self.stdout.write(f"{started} chain(s) started, {signed} checkpoint(s) signed")
