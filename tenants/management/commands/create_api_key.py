from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.models import Tenant
from tenants.services import api_key_create


class Command(BaseCommand):
    help = "Create a partner API key for a tenant. The key is printed alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the tenant's slug")
        parser.add_argument("--name", required=True, help="what the key is for, e.g. 'app backend'")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = Tenant.objects.get(slug=options["slug"])
        except Tenant.DoesNotExist:
            raise CommandError(f"No tenant with slug {options['slug']!r}.") from None
        api_key, key = api_key_create(tenant=tenant, name=options["name"])
        self.stdout.write(
            f"Created API key {api_key.prefix} '{api_key.name}' for {tenant.slug}. "
            "Store it now; it is not shown again:"
        )
        self.stdout.write(key)
