"""`python manage.py audit_verify [--tenant SLUG]`: check every tenant's audit record.

Recomputes each hash chain, checks every checkpoint's signature against the published keys and
cross-checks the rows the record covers (unsubscribe/audit/verify.py). Prints one line per
tenant, OK or the first break (the entry's position, kind and request reference, and what is
wrong). Exit status 0 only when every record checked is intact; 1 on any break; 2 for an
unknown tenant.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.models import Tenant
from unsubscribe.audit.verify import audit_verify_all


class Command(BaseCommand):
    help = "Verify the tamper-evident audit record: chains, signed checkpoints and the rows they record."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Only this tenant's record (its slug).")

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["tenant"]
        if slug and not Tenant.objects.filter(slug=slug).exists():
            raise CommandError(f"no tenant {slug!r}", returncode=2)
        broken = 0
        for report in audit_verify_all(slug=slug):
            counts = f"{report.entries} entries, {report.checkpoints} checkpoints, {report.rows} rows"
            if report.ok:
                self.stdout.write(f"{report.tenant.slug}: OK ({counts})")
                continue
            broken += 1
            self.stdout.write(f"{report.tenant.slug}: BROKEN at {report.first} ({counts})")
            for more in report.breaks[1:6]:
                self.stdout.write(f"  also {more}")
            if len(report.breaks) > 6:
                self.stdout.write(f"  and {len(report.breaks) - 6} more")
        if broken:
            raise CommandError(f"{broken} tenant(s) with a broken audit record", returncode=1)
