from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from lanzuan.fields import field_keys_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (gateway tokens, signing and webhook secrets, inbound "
        "credentials) with the first key of LANZUAN_FIELD_KEYS. Rotation: put the new key first, "
        "run this, then drop the old key."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rewritten = field_keys_rotate()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        for column, count in rewritten.items():
            self.stdout.write(f"{column}: {count} re-encrypted")
        self.stdout.write(f"Done: {sum(rewritten.values())} secrets now under the first key.")
